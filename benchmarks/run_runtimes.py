"""Benchmark the forms tfopt can write, side by side: the original, tfopt's SavedModel, the
model converted for LiteRT and for OpenVINO (each verified in its runtime by tfopt), what
``--format auto`` wrote (its own run: it verifies and times every candidate and keeps the
fastest verified), with the original timed again as A/A.

Every model is built locally (random weights, or trained on scikit-learn's digits; the zoo's
builders, and run_modern.py's for keras_hub backbones and post-2019 CNNs), optimized into each
form with ``--no-time`` (so the runtime forms are converted from tfopt's graph, the first
verified source) and once with ``--format auto`` (choosing at the first batch size), then
all of them are timed in one run per batch size: rounds in fresh processes holding every form, called in
alternating blocks (``tfopt benchmark``), one thread per core in every runtime. A form that
cannot be written gets the one-line reason. Writes ``benchmarks/RUNTIMES.md``.

Needs ``pip install -e ".[litert,openvino]"`` and, for the keras_hub models, ``keras-hub``
(see run_modern.py).

    python benchmarks/run_runtimes.py [--models mobilenet_v2,bert] [--batch 1,8]
"""

from __future__ import annotations

import json
import os

import harness
import run_modern

import tfopt
from tfopt.errors import TfoptError
from tfopt.measure import stats
from tfopt.measure.results import Settings
from tfopt.zoo.builders import build

# held out: no test builds these (the CNNs, transformers and recurrent models of issue #36)
CNNS = ["densenet121", "resnet50_v2", "nasnet_mobile", "xception", "efficientnet_v2_b0",
        "convnext_tiny", "mobilenet_v3_small"]
TRANSFORMERS = ["bert", "gpt2", "vit"]
MODELS = [*CNNS, "ssd_inception", *TRANSFORMERS, "bigru_masked", "lstm_gru", "toy_tf2"]
SHAPES = {"ssd_inception": {"inputs": (1, 300, 300, 3)}}
FORMS = {"tfopt": "saved_model", "LiteRT": "litert", "OpenVINO": "openvino"}
PEERS = ("LiteRT", "OpenVINO")
NAMES = {"saved_model": "tfopt", "litert": "LiteRT", "openvino": "OpenVINO"}


def build_any(name: str, path: str) -> dict[str, tuple[int, ...]] | None:
    """Build ``name`` (zoo, or run_modern's keras_hub / keras.applications list) at ``path``;
    returns the input shapes to time it at (batch 1), None for the graph's own."""
    try:
        build(name, path)
        return SHAPES.get(name)
    except TfoptError:
        return run_modern.build(name, path) or None


def write_forms(name: str, src: str, work: str, shapes: dict | None
                ) -> tuple[dict[str, str | None], dict]:
    """Each form of ``src`` (label -> path, None when it cannot be written), and per form its
    worst difference from the original or the reason it was not written."""
    paths: dict[str, str | None] = {"original": src}
    facts: dict[str, str] = {}
    for label, fmt in FORMS.items():
        out = os.path.join(work, f"{name}-{fmt}")
        try:
            report = tfopt.optimize(src, out, format=fmt, time=False, input_shapes=shapes)
        except TfoptError as err:
            paths[label], facts[label] = None, f"fails: {_reason(str(err))}"
            continue
        paths[label] = out
        worst = report.output.get("worst") if report.output else report.worst.rel
        facts[label] = f"{worst:.1e}"
    return paths, facts


def write_auto(name: str, src: str, work: str, shapes: dict | None, batch: int
               ) -> tuple[str | None, str]:
    """``--format auto``'s own output at ``batch`` and what it chose (the form, its source and
    the speedup its own timing measured), or the reason it wrote nothing."""
    out = os.path.join(work, f"{name}-auto-b{batch}")
    try:
        tfopt.optimize(src, out, format="auto", batch_size=batch,
                       input_shapes=harness.at_batch(shapes, batch) if shapes else None)
    except TfoptError as err:
        print(f"{name}: auto wrote nothing: {err}", flush=True)
        return None, f"fails: {_reason(str(err))}"
    with open(os.path.join(out, "tfopt.json")) as f:
        meta = json.load(f)
    source = (meta.get("runtime_model") or {}).get("source", "")
    speed = next(iter(meta.get("speed", {}).values()), {}).get("ratio")
    said = f" (its own timing at batch {batch}: {speed:.2f}x)" if speed else ""
    form = NAMES.get(meta.get("format", "saved_model"), meta.get("format"))
    chose = f"{form}{' from ' + source if source else ''}{said}"
    print(f"{name}: auto wrote {chose}", flush=True)
    return out, chose


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
            shapes = build_any(name, src)
            paths, facts = write_forms(name, src, work, shapes)
            # auto chooses at the first batch size (its timing's); timed at every one
            auto, chose = write_auto(name, src, work, shapes, args.batches[0])
            for batch in args.batches:
                settings = Settings(batch_size=batch, num_iter=args.num_iter, rounds=args.rounds,
                                    input_shapes=harness.at_batch(shapes, batch),
                                    round_seconds=1.0)
                row = harness.time_variants(name, batch, {**paths, "auto": auto}, settings)
                row.facts.update(facts, auto=chose)
                rows.append(row)
    write(args, rows)


def best_peer(row: harness.Row) -> float | None:
    """The faster of LiteRT and OpenVINO over the original, where either was written."""
    ratios = [r for label in PEERS if (r := row.ratio(label))]
    return max(ratios) if ratios else None


def write(args, rows: list[harness.Row]) -> None:
    body = []
    for row in rows:
        body.append([row.model, row.batch, *(row.ci(label) if row.ratio(label)
                                              else row.facts.get(label, "n/a")
                                              for label in FORMS),
                     f"{row.facts['auto']}: {row.ci('auto')}" if row.ratio("auto")
                     else row.facts["auto"], row.ci(harness.AA),
                     " / ".join(f"{label} {row.facts[label]}" for label in FORMS
                                if not row.facts.get(label, "fails").startswith("fails"))])
    sections = [harness.table(["model", "batch", *(f"{k} over original" for k in FORMS),
                               "--format auto wrote: over original", "A/A",
                               "worst relative difference"], body)]
    for batch in args.batches:
        lines = [line for label in [*FORMS, "auto"]
                 if (line := harness.geomean_line(rows, label, batch))]
        for group, names in (("held-out CNNs", CNNS), ("transformers", TRANSFORMERS)):
            sel = [r for r in rows if r.batch == batch and r.model in names and r.ratio("auto")]
            if sel:
                lines.append(f"--format auto on the {group}, batch {batch}: geometric mean "
                             f"{stats.geomean([r.ratio('auto') for r in sel]):.2f}x over the "
                             f"original ({len(sel)} models).")
            peer = [r for r in sel if best_peer(r)]
            if peer:
                lines.append(f"--format auto over the per-model best of LiteRT and OpenVINO "
                             f"on the {group}, batch {batch}: geometric mean "
                             f"{stats.geomean([r.ratio('auto') / best_peer(r) for r in peer]):.2f}x"
                             f" ({len(peer)} models).")
        sections.append(lines)
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
