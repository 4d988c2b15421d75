"""int8 against float32, bf16 and the original: speed on the zoo CNNs, accuracy on models
trained here.

For each model: the original SavedModel, tfopt's float32 output, its ``--precision bf16`` and
its ``--precision int8`` outputs are timed in one interleaved run per batch size (see
``harness``; the original again is the A/A column). int8 is calibrated on samples apart from
the verification samples: the digits models on 256 training images (``calibration.npz``, saved
by the zoo) and judged on their 450-image test split with its labels; the Keras applications
(random weights, randomised batch norms: speed only, their agreement numbers mean little) on
64 generated images, verified on 8 others. The transformer backbones (``--models bert,gpt2,vit``,
keras_hub, built as in ``run_modern.py``, sequence 128) on 64 generated sequences (token ids
and masks in [0, 2), as their timing uses). Every tfopt column is optimized with XLA off and the
speed check off (``time=False``): the table itself is the timing. Writes
``benchmarks/PRECISION_INT8.md``.

    python benchmarks/run_int8.py [--models resnet50,digits_cnn] [--batch 1,8]
    python benchmarks/run_int8.py --models bert,gpt2,vit --out PRECISION_INT8_TRANSFORMERS.md
"""

from __future__ import annotations

import json
import os

import harness
import numpy as np
import run_modern
from run_precision import accuracy, build, task_files

import tfopt
from tfopt.errors import TfoptError
from tfopt.measure.results import Settings

MODELS = ["resnet50", "mobilenet_v2", "densenet121", "inception_v3", "efficientnet_b0",
          "digits_cnn", "digits_transformer"]
CALIBRATION_SAMPLES = 64


def generated_calibration(src: str, path: str) -> str:
    """``CALIBRATION_SAMPLES`` generated samples for every input of ``src``: standard-normal
    floats, integers (token ids, masks) in [0, 2); unknown dims at ``run_modern.SEQ``."""
    import tensorflow as tf

    specs = tf.saved_model.load(src).signatures["serving_default"].structured_input_signature[1]
    rng = np.random.default_rng(1)

    def sample(spec) -> np.ndarray:
        shape = (CALIBRATION_SAMPLES, *(run_modern.SEQ if d is None else d
                                        for d in spec.shape.as_list()[1:]))
        if spec.dtype.is_integer:
            return rng.integers(0, 2, shape).astype(spec.dtype.as_numpy_dtype)
        return rng.standard_normal(shape).astype(np.float32)

    np.savez(path, **{k: sample(s) for k, s in specs.items()})
    return path


def main() -> None:
    args = harness.arguments(__doc__, "PRECISION_INT8.md", MODELS, batch="1,8", num_iter=40,
                             rounds=5)
    rows: list[harness.Row] = []
    with harness.workdir("tfopt-int8-") as work:
        for name in args.model_list:
            src = os.path.join(work, name)
            shapes = build(name, src)
            out = {p: f"{src}_{p}" for p in ("fp32", "bf16", "int8")}
            given: dict[str, object] = {"time": False, "xla": "off", "input_shapes": shapes,
                                        **task_files(name, src)}
            if name.startswith("digits_"):
                calibration = os.path.join(src, "calibration.npz")
            else:
                calibration = generated_calibration(src, os.path.join(work, f"{name}_cal.npz"))
            tfopt.optimize(src, out["fp32"], **given)
            tfopt.optimize(src, out["bf16"], precision="bf16", **given)
            try:
                report = tfopt.optimize(src, out["int8"], precision="int8",
                                        calibration_file=calibration, **given)
            except TfoptError as err:  # refused: the row says why, int8 is not timed
                report, out["int8"] = None, None
                facts = {"rms": float("nan"), "top1": None, "size": "n/a",
                         "kept": f"int8 refused: {err}"}
            if report is not None:
                checks = [c for s in report.signatures.values() for c in s.checks]
                facts = {"rms": max(c.rel for c in checks),
                         "top1": min((c.top1 for c in checks if c.top1 is not None),
                                     default=None),
                         "size": f"{harness.size_mb(out['fp32']):.1f} -> "
                                 f"{harness.size_mb(out['int8']):.1f}",
                         "kept": "; ".join(n for s in report.signatures.values()
                                           for r in s.passes if r.name == "quantize_int8"
                                           for n in r.notes if "kept" in n) or "none"}
            if name.startswith("digits_"):
                facts["accuracy"] = " / ".join(
                    f"{accuracy(p, src):.2%}" if p else "n/a"
                    for p in (src, out["fp32"], out["bf16"], out["int8"]))
            for batch in args.batches:
                settings = Settings(batch_size=batch, num_iter=args.num_iter, num_warmup=5,
                                    rounds=args.rounds, round_seconds=2.0,
                                    input_shapes=harness.at_batch(shapes, batch))
                variants = {"original": src, "tfopt fp32": out["fp32"],
                            "tfopt bf16": out["bf16"]}
                if out["int8"]:
                    variants["tfopt int8"] = out["int8"]
                row = harness.time_variants(name, batch, variants, settings)
                row.facts.update(facts)
                rows.append(row)
                write(args, rows)
                with open(args.out.replace(".md", ".json"), "w") as f:
                    json.dump([{"model": r.model, "batch": r.batch, **r.facts,
                                **{k: r.ci(k) for k in r.results}} for r in rows], f, indent=1)


def write(args, rows: list[harness.Row]) -> None:
    body = [[r.model, r.batch, f"{r.baseline.throughput:.1f}", r.ci("tfopt fp32"),
             r.ci("tfopt bf16"), *((r.ci("tfopt int8"), r.between("tfopt int8", "tfopt fp32"))
                                   if "tfopt int8" in r.results else ("n/a", "n/a")),
             r.ci(harness.AA), f"{r.facts['rms']:.1e}",
             "n/a" if r.facts["top1"] is None else f"{r.facts['top1']:.1%}",
             r.facts.get("accuracy", ""), r.facts["size"], r.facts["kept"]]
            for r in rows]
    headers = ["model", "batch", "original samples/s", "tfopt fp32", "tfopt bf16", "tfopt int8",
               "int8 / fp32", "A/A", "int8 rel RMS diff", "top-1 agreement",
               "accuracy original / fp32 / bf16 / int8", "MB fp32 -> int8", "kept in float32"]
    summary = [line for label in ("tfopt fp32", "tfopt bf16", "tfopt int8")
               for batch in args.batches if (line := harness.geomean_line(rows, label, batch))]
    summary += [line for batch in args.batches if (line := harness.between_line(
        rows, "tfopt int8", "tfopt fp32", batch, "int8 over float32",
        keep=lambda r: not r.model.startswith("digits_"), name_models=True))]
    harness.write_markdown(
        args.out, "int8 against float32, bf16 and the original",
        harness.METHOD.format(rounds=args.rounds) + " tfopt int8 = `--precision int8 "
        "--calibration-file` (min-max ranges; verified: relative RMS difference <= 5e-2 and "
        "top-1 agreement >= 99%, with oneDNN on and off). Digits models: trained here on "
        "scikit-learn's digits, calibrated on 256 training images, verified on the 450-image "
        "test split with its labels. Keras applications: random weights with randomised batch "
        "norms, calibrated on 64 generated images and verified on 8 others (speed only: "
        "agreement on random weights means little).",
        [harness.table(headers, body, [False] + [True] * (len(headers) - 2) + [False]),
         summary])


if __name__ == "__main__":
    main()
