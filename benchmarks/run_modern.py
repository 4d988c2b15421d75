"""Benchmark transformers and post-2019 CNNs: original vs TF's chain vs tfopt (default) vs
tfopt with XLA off.

Models are built locally with random weights (keras_hub backbones from their config, Keras
applications with ``weights=None``), exported with ``model.export()``. Each is timed at each
batch size: the original SavedModel, TensorFlow's chain (freeze + ``optimize_for_inference``),
tfopt's default output (``--xla auto``: the convolution-free part compiled when it holds
most of the FLOPs and timing shows a gain) and tfopt with ``--xla off``, a fresh process per
model and round, order alternating; also what each optimize took (``--no-time``, so that only
the XLA decision differs). Writes ``benchmarks/MODERN.md`` and ``benchmarks/modern.png``.

Needs ``keras-hub`` (``pip install --no-deps keras-hub regex rich kagglehub sentencepiece
tokenizers kagglesdk``: its tensorflow-text dependency would pull in a second, non-CPU TensorFlow).

    python benchmarks/run_modern.py [--models bert,vit,gpt2,convnext_tiny] [--batch 1,8]
"""

from __future__ import annotations

import os
import subprocess
import sys

import harness

import tfopt
from tfopt.measure.results import Settings
from tfopt.verify.inputs import input_hints, make_inputs

SEQ = 128


def build(name: str, path: str) -> dict[str, tuple[int, ...]]:
    """Export model ``name`` to ``path``; returns the input shapes to time it at (batch 1)."""
    import keras

    from tfopt.zoo.builders import randomize_batch_norm, randomize_constant_weights

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


def profile(path: str, shapes: dict[str, tuple[int, ...]]):
    """Kernel time per op type of the frozen graph (Session, Grappler on), batch 1."""
    from tfopt.measure.profile import profile_graph
    from tfopt.model.formats import load_model

    sig = load_model(path, ["serving_default"]).signatures["serving_default"]
    feeds = make_inputs(sig.inputs, 1, shapes, hints=input_hints(sig))
    return profile_graph(sig, feeds)


def main() -> None:
    args = harness.arguments(__doc__, "MODERN.md",
                             ["bert", "vit", "gpt2", "convnext_tiny", "efficientnet_v2_b0"],
                             batch="1,8", num_iter=24, rounds=4)
    rows: list[harness.Row] = []
    profiles = []
    with harness.workdir("tfopt-modern-") as work:
        for name in args.model_list:
            src = os.path.join(work, name)
            shapes = build(name, src)
            chain, opt, opt_off = src + "_chain", src + "_tfopt", src + "_xla_off"
            report = tfopt.optimize(src, opt, input_shapes=shapes, xla="auto", time=False)
            off_report = tfopt.optimize(src, opt_off, input_shapes=shapes, xla="off",
                                        time=False)
            sig = report.signatures["serving_default"]
            facts = {"diff": report.worst.rel, "diff_off": off_report.worst.rel,
                     "nodes": f"{sig.nodes_before} -> {sig.nodes_after}",
                     "seconds": f"{report.seconds:.0f} / {off_report.seconds:.0f}",
                     "xla": next((n for n in report.notes if n.startswith("xla:")), "")}
            variants = {"original": src, "tf-chain": chain if _chain_loads(src, chain) else None,
                        "tfopt": opt, "tfopt xla off": opt_off}
            profiles.append((name, profile(src, shapes), profile(opt, shapes)))
            for batch in args.batches:
                settings = Settings(batch_size=batch, num_iter=args.num_iter, num_warmup=3,
                                    rounds=args.rounds,
                                    input_shapes=harness.at_batch(shapes, batch))
                row = harness.time_variants(name, batch, variants, settings)
                row.facts.update(facts)
                rows.append(row)
                write(args, rows, profiles)


def _chain_loads(src: str, chain: str) -> bool:
    """TF's own chain, if its output loads at all (on ConvNeXt, optimize_for_inference drops
    the library functions the graph still calls)."""
    try:
        harness.tf_chain(src, chain)
    except Exception as err:
        print(f"tf-chain failed on {src}: {err}", flush=True)
        return False
    check = subprocess.run([sys.executable, "-c", "import sys, tensorflow as tf; "
                            "tf.saved_model.load(sys.argv[1])", chain], capture_output=True)
    return check.returncode == 0


def write(args, rows: list[harness.Row], profiles=()) -> None:
    body = [[r.model, r.batch, f"{r.baseline.throughput:.2f}", r.ci("tf-chain"), r.ci("tfopt"),
             r.ci("tfopt xla off"), r.ci(harness.AA), r.facts["nodes"],
             f"{r.facts['diff']:.1e} / {r.facts['diff_off']:.1e}", r.facts["seconds"],
             str(r.facts["xla"]).removeprefix("xla: ")] for r in rows]
    results = harness.table(["model", "batch", "original samples/s", "tf-chain", "tfopt",
                             "tfopt xla off", "A/A", "nodes", "rel diff tfopt / xla off",
                             "optimize s (auto / off)", "xla decision"], body,
                            [False, True, True, True, True, True, True, True, False, True,
                             False])
    transformers = [r for r in rows if r.model in ("bert", "vit", "gpt2")]
    summary = [line for label in ("tfopt", "tfopt xla off") for batch in args.batches
               if (line := harness.geomean_line(transformers, label, batch, " (transformers)"))]
    where = []
    if profiles:
        def top(p) -> str:
            return (", ".join(f"{op} {ms:.1f}" for op, ms, _ in p.by_op[:4])
                    + f" (total {p.total_ms:.1f})")

        where = ["## Where the time goes (batch 1, kernel ms per run by op type as executed; "
                 "frozen graph in a Session, Grappler on)", "",
                 *harness.table(["model", "original: top op types", "tfopt: top op types",
                                 "matmul/conv share of the original",
                                 "float32 ceiling (1 / share)"],
                                [[n, top(b), top(a), f"{b.dense_share():.0%}",
                                  f"{1 / max(b.dense_share(), 1e-9):.2f}x"]
                                 for n, b, a in profiles], [False, False, False, True, True]),
                 "", "The ceiling is what a float32 rewrite could reach if every kernel but "
                 "the matmuls, einsums and convolutions took no time at all while those ran "
                 "as fast as in the original (a bound from kernel time, not a measurement). "
                 "Past it, only faster matmul kernels gain: XLA's own dots, or bf16."]
    harness.write_markdown(
        args.out, "Transformers and modern CNNs",
        harness.METHOD.format(rounds=args.rounds) + f" Random weights; text models at sequence "
        f"length {SEQ}. tf-chain = freeze + optimize_for_inference (n/a: its output does not "
        "load); tfopt = default output (portable, `--xla auto`: compiled cluster kept only if "
        "measured faster at batch 1); tfopt xla off = `--xla off`.", [results, summary, where])


if __name__ == "__main__":
    main()
