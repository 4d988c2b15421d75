"""Benchmark the forms tfopt can write, side by side: the original, tfopt's SavedModel, the
model converted for LiteRT and for OpenVINO (each verified in its runtime by tfopt), with the
original timed again as A/A, and which form ``--format auto`` keeps (the fastest verified).

Every model of the zoo list is built locally (random weights, or trained on scikit-learn's
digits), optimized into each form with ``--no-time`` (so the runtime forms are converted from
tfopt's graph, the first verified source), then all forms are timed in one run: rounds in
fresh processes holding every form, called in alternating blocks (``tfopt benchmark``), one
thread per core in every runtime. A form that cannot be written gets the one-line reason.
Writes ``benchmarks/RUNTIMES.md``.

    python benchmarks/run_runtimes.py [--models mobilenet_v2,resnet50] [--batch 1,8]
"""

from __future__ import annotations

import os

import harness

import tfopt
from tfopt.errors import TfoptError
from tfopt.measure.results import Settings
from tfopt.zoo.builders import build

MODELS = ["mobilenet_v2", "efficientnet_b0", "resnet50", "densenet121", "ssd_inception",
          "digits_cnn", "digits_transformer", "toy_tf2", "bilstm_masked", "stacked_gru"]
SHAPES = {"ssd_inception": {"inputs": (1, 300, 300, 3)}}
FORMS = {"tfopt": "saved_model", "LiteRT": "litert", "OpenVINO": "openvino"}


def write_forms(name: str, src: str, work: str) -> tuple[dict[str, str | None], dict]:
    """Each form of ``src`` (label -> path, None when it cannot be written), and per form its
    worst difference from the original or the reason it was not written."""
    paths: dict[str, str | None] = {"original": src}
    facts: dict[str, str] = {}
    for label, fmt in FORMS.items():
        out = os.path.join(work, f"{name}-{fmt}")
        try:
            report = tfopt.optimize(src, out, format=fmt, time=False,
                                    input_shapes=SHAPES.get(name))
        except TfoptError as err:
            paths[label], facts[label] = None, f"fails: {_reason(str(err))}"
            continue
        paths[label] = out
        worst = report.output.get("worst") if report.output else report.worst.rel
        facts[label] = f"{worst:.1e}"
    return paths, facts


def _reason(text: str) -> str:
    """The converter's own reason, without tfopt's candidate framing (first source only)."""
    text = text.split(" cannot hold this model: ", 1)[-1].split("; ", 1)[0]
    return text if len(text) <= 90 else text[:87] + "..."


def main() -> None:
    args = harness.arguments(__doc__, "RUNTIMES.md", MODELS, num_iter=30, rounds=3)
    rows = []
    with harness.workdir("tfopt-runtimes-") as work:
        for name in args.model_list:
            src = os.path.join(work, name)
            build(name, src)
            paths, facts = write_forms(name, src, work)
            for batch in args.batches:
                settings = Settings(batch_size=batch, num_iter=args.num_iter, rounds=args.rounds,
                                    input_shapes=harness.at_batch(SHAPES.get(name), batch),
                                    round_seconds=1.0)
                row = harness.time_variants(name, batch, paths, settings)
                row.facts.update(facts)
                rows.append(row)
    body = []
    for row in rows:
        timed = {label: row.ratio(label) for label in FORMS if row.ratio(label)}
        pick = max(timed, key=timed.get) if timed else "original"
        body.append([row.model, row.batch, *(row.ci(label) if row.ratio(label)
                                              else row.facts.get(label, "n/a")
                                              for label in FORMS),
                     f"{pick} {timed.get(pick, 1.0):.2f}x", row.ci(harness.AA),
                     " / ".join(f"{label} {row.facts[label]}" for label in FORMS
                                if not row.facts.get(label, "fails").startswith("fails"))])
    sections = [harness.table(["model", "batch", *(f"{k} over original" for k in FORMS),
                               "auto keeps", "A/A", "worst relative difference"], body)]
    for batch in args.batches:
        sections.append([line for label in FORMS
                         if (line := harness.geomean_line(rows, label, batch))])
    harness.write_markdown(args.out, "tfopt's forms across runtimes", harness.METHOD.format(
        rounds=args.rounds) + " LiteRT " + str(_version("litert")) + " (XNNPACK), OpenVINO "
        + str(_version("openvino")) + " (CPU, f32 set explicitly). CPU flags: " + _flags(),
        sections)


def _version(fmt: str) -> str | None:
    from tfopt.runtimes import runtime

    return runtime(fmt).available()


def _flags() -> str:
    from tfopt.runtime import _cpu_flags

    keep = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "avx_vnni")
    return ", ".join(f for f in keep if f in _cpu_flags())


if __name__ == "__main__":
    main()
