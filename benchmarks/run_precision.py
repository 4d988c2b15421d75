"""Reduced precision: original vs tfopt float32 vs tfopt bf16 (and OpenVINO f32 / bf16).

For each model: the original SavedModel, tfopt's default float32 output and its
``--precision bf16`` output are timed in one interleaved run per batch size (see ``harness``;
the original again is the A/A column). With ``--openvino`` (``pip install openvino``), OpenVINO
reading the same original SavedModel is timed too, at f32 and bf16 (``INFERENCE_PRECISION_HINT``),
a fresh process per variant and round, order alternating, each round beside TensorFlow's
original in the same loop so that its ratio has its own baseline. The digits models, trained
here on scikit-learn's digits, add task accuracy on their held-out split. The transformer
backbones (keras_hub BERT, GPT-2, ViT built as in ``run_modern.py``; needs keras-hub) are timed
at sequence length 128. Both tfopt columns are optimized with XLA off (``time=False``): the
table compares precisions, MODERN_XLA_DEFAULT.md the XLA decision. Writes
``benchmarks/PRECISION.md``.

    python benchmarks/run_precision.py [--models mobilenet_v2,digits_cnn] [--batch 1,8]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import harness
import numpy as np
import run_modern

import tfopt
from tfopt.measure import stats
from tfopt.measure.results import Settings
from tfopt.zoo import builders as zoo

MODELS = ["mobilenet_v2", "resnet50", "densenet121", "efficientnet_b0", "digits_cnn",
          "digits_transformer", "bert", "gpt2", "vit"]
TRANSFORMERS = ("bert", "gpt2", "vit")

# One timing in a fresh process: OpenVINO (or TensorFlow's original) on random inputs.
_TIMER = r"""
import json, sys, time, numpy as np
kind, path, precision, batch, iters, seq = sys.argv[1:7]
batch, iters, seq = int(batch), int(iters), int(seq)
rng = np.random.default_rng(0)
def data(shape, integer):  # token ids / masks in [0, 2): valid for every text model here
    return rng.integers(0, 2, shape).astype(np.int32) if integer else rng.standard_normal(shape).astype(np.float32)
def dims(shape):  # batch first, other unknown dims the sequence length
    return [batch if i == 0 else (seq if d is None else d) for i, d in enumerate(shape)]
if kind == "openvino":
    import openvino as ov
    core = ov.Core()
    model = ov.convert_model(path)
    shapes = {p.get_any_name(): dims([None if d.is_dynamic else d.get_length() for d in p.get_partial_shape()])
              for p in model.inputs}
    model.reshape(shapes)
    hint = {"f32": "f32", "bf16": "bf16"}[precision]
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint})
    feeds = {p.get_any_name(): data(shapes[p.get_any_name()], p.get_element_type().is_integral())
             for p in model.inputs}
    request = compiled.create_infer_request()
    call = lambda: request.infer(feeds)
else:
    import tensorflow as tf
    fn = tf.saved_model.load(path).signatures["serving_default"]
    specs = fn.structured_input_signature[1]
    feeds = {k: tf.constant(data(dims(s.shape.as_list()), s.dtype.is_integer)) for k, s in specs.items()}
    call = lambda: fn(**feeds)
for _ in range(3):
    call()
start = time.perf_counter()
for _ in range(iters):
    call()
print(json.dumps(batch * iters / (time.perf_counter() - start)))
"""


def _time_once(kind: str, path: str, precision: str, batch: int, iters: int) -> float:
    out = subprocess.run([sys.executable, "-c", _TIMER, kind, path, precision, str(batch),
                          str(iters), str(run_modern.SEQ)], capture_output=True, text=True,
                         check=True)
    return float(out.stdout.strip().splitlines()[-1])


def time_openvino(path: str, batch: int, rounds: int, iters: int) -> dict[str, str]:
    """OpenVINO f32 and bf16 against TensorFlow's original, alternating per round."""
    variants = [("tensorflow", "f32"), ("openvino", "f32"), ("openvino", "bf16")]
    runs: dict[tuple[str, str], list[float]] = {v: [] for v in variants}
    for r in range(rounds):
        for kind, precision in (variants if r % 2 == 0 else variants[::-1]):
            runs[(kind, precision)].append(_time_once(kind, path, precision, batch, iters))
    base = runs[("tensorflow", "f32")]
    return {f"openvino {p}": stats.ratio(runs[("openvino", p)], base).short()
            for p in ("f32", "bf16")}


def accuracy(path: str, split: str) -> float:
    import tensorflow as tf

    x = np.load(os.path.join(split, "test.npz"))["image"]
    labels = np.load(os.path.join(split, "labels.npy"))
    probs = tf.saved_model.load(path).signatures["serving_default"](image=tf.constant(x))
    return float(np.mean(next(iter(probs.values())).numpy().argmax(1) == labels))


def build(name: str, src: str) -> dict[str, tuple[int, ...]]:
    """Build model ``name`` into ``src`` (a keras_hub transformer or a zoo model); returns
    the input shapes to time it at (empty: its own)."""
    if name in TRANSFORMERS:
        return run_modern.build(name, src)
    zoo.build(name, src)
    return {}


def task_files(name: str, src: str) -> dict[str, str]:
    """The digits models' held-out split and labels (``optimize`` keywords); else nothing."""
    if not name.startswith("digits_"):
        return {}
    return {"inputs_file": os.path.join(src, "test.npz"),
            "labels": os.path.join(src, "labels.npy")}


def main() -> None:
    args = harness.arguments(__doc__, "PRECISION.md", MODELS, batch="1,8", num_iter=40,
                             rounds=5, extra=[("--openvino", {"action": "store_true"})])
    rows: list[harness.Row] = []
    with harness.workdir("tfopt-precision-") as work:
        for name in args.model_list:
            src = os.path.join(work, name)
            shapes = build(name, src)
            fp32, bf16 = src + "_fp32", src + "_bf16"
            given: dict[str, object] = {"input_shapes": shapes, "time": False,
                                        **task_files(name, src)}
            tfopt.optimize(src, fp32, **given)
            report = tfopt.optimize(src, bf16, precision="bf16", **given)
            facts = {"rms": max(c.rel for s in report.signatures.values() for c in s.checks),
                     "top1": min((c.top1 for s in report.signatures.values() for c in s.checks
                                  if c.top1 is not None), default=None),
                     "size": f"{harness.size_mb(fp32):.1f} -> {harness.size_mb(bf16):.1f}"}
            if name.startswith("digits_"):
                facts["accuracy"] = (f"{accuracy(src, src):.2%} / {accuracy(fp32, src):.2%} / "
                                     f"{accuracy(bf16, src):.2%}")
            for batch in args.batches:
                settings = Settings(batch_size=batch, num_iter=args.num_iter, num_warmup=5,
                                    rounds=args.rounds, round_seconds=2.0,
                                    input_shapes=harness.at_batch(shapes, batch))
                row = harness.time_variants(name, batch, {"original": src, "tfopt fp32": fp32,
                                                          "tfopt bf16": bf16}, settings)
                row.facts.update(facts)
                if args.openvino:
                    row.facts.update(time_openvino(src, batch, args.rounds, args.num_iter))
                rows.append(row)
                write(args, rows)
                with open(args.out.replace(".md", ".json"), "w") as f:
                    json.dump([{"model": r.model, "batch": r.batch, **r.facts,
                                **{k: r.ci(k) for k in r.results}} for r in rows], f, indent=1)


def write(args, rows: list[harness.Row]) -> None:
    openvino = ["openvino f32", "openvino bf16"] if args.openvino else []
    body = [[r.model, r.batch, f"{r.baseline.throughput:.1f}", r.ci("tfopt fp32"),
             r.ci("tfopt bf16"), r.between("tfopt bf16", "tfopt fp32"), r.ci(harness.AA),
             *(r.facts.get(k, "n/a") for k in openvino), f"{r.facts['rms']:.1e}",
             "n/a" if r.facts["top1"] is None else f"{r.facts['top1']:.1%}",
             r.facts.get("accuracy", ""), r.facts["size"]]
            for r in rows]
    headers = ["model", "batch", "original samples/s", "tfopt fp32", "tfopt bf16",
               "bf16 / fp32", "A/A", *openvino, "bf16 rel RMS diff", "top-1 agreement",
               "accuracy original / fp32 / bf16", "MB fp32 -> bf16"]
    summary = [line for label in ("tfopt fp32", "tfopt bf16") for batch in args.batches
               if (line := harness.geomean_line(rows, label, batch))]
    summary += [line for batch in args.batches if (line := harness.between_line(
        rows, "tfopt bf16", "tfopt fp32", batch, "bf16 over float32"))]
    harness.write_markdown(
        args.out, "Reduced precision: bf16 against float32, the original and OpenVINO",
        harness.METHOD.format(rounds=args.rounds) + " tfopt bf16 = `--precision bf16` "
        "(verified: relative RMS difference <= 2e-2 and top-1 agreement >= 99%, with oneDNN on "
        "and off). Keras applications: random weights with randomised batch norms, 8 "
        "generated verification samples; digits models: trained here on scikit-learn's "
        "digits, verified on their 450-image test split with its labels. OpenVINO columns: "
        "the original SavedModel read by OpenVINO, ratio to TensorFlow's original timed in "
        "the same alternating loop (a fresh process per variant and round).",
        [harness.table(headers, body, [False] + [True] * (len(headers) - 1)), summary])


if __name__ == "__main__":
    main()
