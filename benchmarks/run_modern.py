"""Benchmark transformers and post-2019 CNNs: original vs TF's chain vs tfopt vs tfopt + XLA.

Models are built locally with random weights (keras_hub backbones from their config, Keras
applications with ``weights=None``), exported with ``model.export()``. Each is timed at each
batch size: the original SavedModel, TensorFlow's chain (freeze + ``optimize_for_inference``),
tfopt's default output and tfopt with ``--xla auto``, a fresh process per model and round,
order alternating. Writes ``benchmarks/MODERN.md`` and ``benchmarks/modern.png``.

Needs ``keras-hub`` (``pip install --no-deps keras-hub regex rich kagglehub sentencepiece
tokenizers``: its tensorflow-text dependency would pull in a second, non-CPU TensorFlow).

    python benchmarks/run_modern.py [--models bert,vit,gpt2,convnext_tiny] [--batch 1,8]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))

from run_zoo import tf_chain  # noqa: E402

import tfopt  # noqa: E402
from tfopt.benchmark import Settings, benchmark  # noqa: E402
from tfopt.options import parse_shapes  # noqa: E402
from tfopt.runtime import summary_line  # noqa: E402
from tfopt.stats import geomean  # noqa: E402

SEQ = 128


def build(name: str, path: str) -> dict[str, tuple[int, ...]]:
    """Export model ``name`` to ``path``; returns the input shapes to time it at (batch 1)."""
    import keras

    from tfopt.zoo import randomize_batch_norm, randomize_constant_weights

    keras.utils.set_random_seed(0)
    text = {"token_ids": (1, SEQ), "padding_mask": (1, SEQ)}
    if name == "bert":
        import keras_hub

        model = keras_hub.models.BertBackbone(vocabulary_size=30522, num_layers=4, num_heads=4,
                                              hidden_dim=256, intermediate_dim=1024,
                                              max_sequence_length=512)
        shapes = {**text, "segment_ids": (1, SEQ)}
    elif name == "gpt2":
        import keras_hub

        model = keras_hub.models.GPT2Backbone(vocabulary_size=50257, num_layers=4, num_heads=4,
                                              hidden_dim=256, intermediate_dim=1024,
                                              max_sequence_length=512)
        shapes = text
    elif name == "vit":
        import keras_hub

        model = keras_hub.models.ViTBackbone(image_shape=(224, 224, 3), patch_size=16,
                                             num_layers=4, num_heads=4, hidden_dim=256,
                                             mlp_dim=1024)
        shapes = {}
    else:
        app = {"convnext_tiny": "ConvNeXtTiny", "mobilenet_v3_small": "MobileNetV3Small",
               "efficientnet_v2_b0": "EfficientNetV2B0"}[name]
        model = getattr(keras.applications, app)(weights=None, input_shape=(224, 224, 3))
        randomize_batch_norm(model)
        shapes = {}
    randomize_constant_weights(model)
    model.export(path, format="tf_saved_model", verbose=False)
    return shapes


def profile(path: str, spec: list[str]):
    """Kernel time per op type of the frozen graph (Session, Grappler on), batch 1."""
    from tfopt.loader import load_model
    from tfopt.profile import profile_graph
    from tfopt.verify import input_hints, make_inputs

    sig = load_model(path, ["serving_default"]).signatures["serving_default"]
    feeds = make_inputs(sig.inputs, 1, parse_shapes(spec), hints=input_hints(sig))
    return profile_graph(sig, feeds)


def _spec(shapes: dict[str, tuple[int, ...]], batch: int) -> list[str]:
    return [f"{k}={batch}," + ",".join(map(str, v[1:])) for k, v in shapes.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="bert,vit,gpt2,convnext_tiny,efficientnet_v2_b0")
    parser.add_argument("--batch", default="1,8")
    parser.add_argument("--num-iter", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "MODERN.md"))
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="tfopt-modern-")
    rows = []
    profiles = []
    try:
        for name in args.models.split(","):
            src = os.path.join(work, name)
            shapes = build(name, src)
            chain, opt, opt_xla = src + "_chain", src + "_tfopt", src + "_xla"
            chain = chain if _chain_loads(src, chain) else None
            spec = _spec(shapes, 1)
            report = tfopt.optimize(src, opt, input_shapes=spec)
            xla_report = tfopt.optimize(src, opt_xla, input_shapes=spec, xla="auto")
            xla_note = next((n for n in xla_report.notes if n.startswith("xla:")), "")
            sig = report.signatures["serving_default"]
            profiles.append((name, profile(src, spec), profile(opt, spec)))
            for batch in (int(b) for b in args.batch.split(",")):
                settings = Settings(batch_size=batch, num_iter=args.num_iter, num_warmup=3,
                                    rounds=args.rounds,
                                    input_shapes=parse_shapes(_spec(shapes, batch)))
                paths = [src, chain, opt, opt_xla] if chain else [src, opt, opt_xla]
                labels = ["original", "tf-chain", "tfopt", "tfopt+xla"] if chain else [
                    "original", "tfopt", "tfopt+xla"]
                res = benchmark(paths, settings, labels=labels)
                models = res.models if chain else [res.models[0], None, *res.models[1:]]
                rows.append((name, batch, models, report.worst.rel, xla_report.worst.rel,
                             sig.nodes_before, sig.nodes_after, xla_note))
                o, c, t, x = models
                print(f"{name} b{batch}: orig {o.throughput:.1f}/s chain "
                      f"{f'{c.ratio:.2f}x' if c else 'n/a'} "
                      f"tfopt {t.verdict} xla {x.verdict}", flush=True)
                write(args, rows, profiles)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _ci(m) -> str:
    if m is None:
        return "n/a (TF's chain output does not load)"
    return m.interval().short()


def _chain_loads(src: str, chain: str) -> bool:
    """TF's own chain, if its output loads at all (on ConvNeXt, optimize_for_inference drops
    the library functions the graph still calls)."""
    import subprocess

    try:
        tf_chain(src, chain)
    except Exception as err:
        print(f"tf-chain failed on {src}: {err}", flush=True)
        return False
    check = subprocess.run([sys.executable, "-c", "import sys, tensorflow as tf; "
                            "tf.saved_model.load(sys.argv[1])", chain], capture_output=True)
    return check.returncode == 0


def write(args, rows, profiles=()) -> None:
    lines = ["# Transformers and modern CNNs", "",
             f"Machine: {summary_line()}. Threads = cores, Grappler on. {args.rounds} rounds, a "
             "fresh process per model and round, order alternating; throughput = median over "
             "rounds; ratios to the original with 95% paired-bootstrap intervals. Random "
             f"weights; text models at sequence length {SEQ}. tf-chain = freeze + "
             "optimize_for_inference; tfopt = default output (portable); tfopt+xla = "
             "`--xla auto` (compiled cluster kept only if measured faster at batch 1).", "",
             "| model | batch | original samples/s | tf-chain | tfopt | tfopt+xla | nodes | "
             "rel diff tfopt / +xla | xla decision |",
             "|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for name, batch, models, d_opt, d_xla, before, after, note in rows:
        o, c, t, x = models
        lines.append(f"| {name} | {batch} | {o.throughput:.2f} | {_ci(c)} | {_ci(t)} | "
                     f"{_ci(x)} | {before} -> {after} | {d_opt:.1e} / {d_xla:.1e} | "
                     f"{note.removeprefix('xla: ')} |")
    for label, index in (("tfopt", 2), ("tfopt+xla", 3)):
        for batch in sorted({r[1] for r in rows}):
            sel = [r[2][index].ratio for r in rows if r[1] == batch and r[0] in
                   ("bert", "vit", "gpt2")]
            if sel:
                lines.append("")
                lines.append(f"Transformers, batch {batch}, {label}: geometric mean "
                             f"{geomean(sel):.2f}x over the original.")
    if profiles:
        lines += ["", "## Where the time goes (batch 1, kernel ms per run by op type as "
                  "executed; frozen graph in a Session, Grappler on)", "",
                  "| model | original: top op types | tfopt: top op types |", "|---|---|---|"]
        for name, before, after in profiles:
            def top(p):
                return ", ".join(f"{op} {ms:.1f}" for op, ms, _ in p.by_op[:4]) + \
                    f" (total {p.total_ms:.1f})"
            lines.append(f"| {name} | {top(before)} | {top(after)} |")
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
