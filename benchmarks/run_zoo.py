"""Benchmark the local model zoo: original vs TensorFlow's own tool chain vs tfopt.

For each model (built locally, random weights): the original SavedModel as a user runs it
(``tf.saved_model.load``, default settings); TensorFlow's chain
(``convert_variables_to_constants_v2`` or the v1 session freeze, then
``optimize_for_inference``) as a frozen .pb; and tfopt's output. All three are timed
interleaved in one run (``tfopt.benchmark``), at each batch size, and the table gets
throughput, ratios and the worst relative output difference. Writes benchmarks/RESULTS.md.

    python benchmarks/run_zoo.py [--models ssd_inception,mobilenet_v2] [--batch 1,32]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import numpy as np
import tensorflow as tf

import tfopt
from tfopt import stats, zoo
from tfopt.benchmark import Settings, benchmark
from tfopt.loader import load_model
from tfopt.profile import OpProfile, profile_graph
from tfopt.runtime import cpu_model, summary_line
from tfopt.verify import compare, make_inputs, parse_shapes

MODELS = ["mobilenet_v2", "resnet50", "inception_v3", "ssd_inception"]
SHAPES = {"ssd_inception": ["inputs=1,300,300,3"]}


def tf_chain(src: str, dst: str) -> None:
    """TensorFlow's own tools: freeze, then optimize_for_inference.

    The result is written as a SavedModel with the same signature (tfopt's saver), so that it
    is loaded and run exactly like the other two columns: only the graph differs.
    """
    from tensorflow.python.tools import optimize_for_inference_lib

    from tfopt.saver import write_saved_model

    model = load_model(src, ["serving_default"])  # freezing as TF does (v2 / v1 session)
    sig = model.signatures["serving_default"]
    ins = [t.tensor.split(":")[0] for t in sig.inputs.values()]
    outs = [t.tensor.split(":")[0] for t in sig.outputs.values()]
    gd = optimize_for_inference_lib.optimize_for_inference(
        sig.graph_def, ins, outs, [t.dtype.as_datatype_enum for t in sig.inputs.values()])
    write_saved_model({sig.key: sig.with_graph(gd)}, dst)


def rel_diff(src: str, other: str, shapes) -> float:
    from tfopt.verify import run_saved_model

    model = load_model(src, ["serving_default"])
    sig = model.signatures["serving_default"]
    feeds = make_inputs(sig.inputs, 1, parse_shapes(shapes), seed=3)
    ref = model.reference("serving_default", feeds)
    return max(c.rel for c in compare(ref, run_saved_model(other, "serving_default", feeds)))


def profile(path: str, shapes) -> OpProfile:

    sig = load_model(path, ["serving_default"]).signatures["serving_default"]
    return profile_graph(sig, make_inputs(sig.inputs, 1, parse_shapes(shapes)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batch", default="1,32")
    parser.add_argument("--num-iter", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "RESULTS.md"))
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="tfopt-zoo-")
    rows = []
    profiles = []
    for name in args.models.split(","):
        src = os.path.join(work, name)
        zoo.build(name, src)
        shapes = SHAPES.get(name, [])
        chain = os.path.join(work, name + "_tf_chain")
        tf_chain(src, chain)
        opt = os.path.join(work, name + "_tfopt")
        start = time.perf_counter()
        report = tfopt.optimize(src, opt, input_shapes=shapes)
        opt_s = time.perf_counter() - start
        d_tf = rel_diff(src, chain, shapes)
        profiles.append((name, profile(src, shapes), profile(opt, shapes)))
        d_opt = report.worst.rel
        for batch in (int(b) for b in args.batch.split(",")):
            bshapes = [s.replace("=1,", f"={batch},") for s in shapes]

            settings = Settings(batch_size=batch, num_iter=args.num_iter if batch == 1 else
                                max(6, args.num_iter // 4), num_warmup=3, rounds=args.rounds,
                                input_shapes=parse_shapes(bshapes))
            # The original twice: its A/A ratio is this run's noise, beside the real ratios.
            res = benchmark([src, chain, opt, src], settings,
                            labels=["original", "tf-chain", "tfopt", "original again"])
            o, t, f, again = res.models
            rows.append((name, batch, o.throughput, t.throughput,
                         f.throughput, t.ratio, f.ratio, f.ratio / t.ratio,
                         f.interval().short(), d_tf, d_opt, opt_s, again.interval().short()))
            print(rows[-1], flush=True)
    write_table(args.out, rows, args, profiles)
    write_chart(os.path.join(os.path.dirname(args.out), "speedups.png"), rows)


def write_chart(path: str, rows) -> None:
    """Bar chart: throughput ratio to the original, per model and batch, both tool chains."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r[0]}\nbatch {r[1]}" for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(rows)), 4.5))
    ax.bar(x - 0.2, [r[5] for r in rows], 0.4, label="TF chain (freeze + optimize_for_inference)")
    ax.bar(x + 0.2, [r[6] for r in rows], 0.4, label="tfopt")
    ax.axhline(1.0, color="grey", lw=1)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("throughput / original")
    ax.set_title(f"Speedup over the original (TensorFlow {tf.__version__}, {cpu_model()})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_table(path: str, rows, args, profiles=()) -> None:
    lines = ["# Model-zoo benchmark", "",
             f"Machine: {summary_line()}, {platform.system()}; threads = cores; Grappler on "
             f"(as users run models). Median of {args.rounds} rounds (original, tf-chain, tfopt, "
             "original again in turn, a fresh process per model and round, order alternating; "
             "the A/A column is the original against itself: the run's noise); ratio interval: "
             "95% paired bootstrap over rounds; "
             "throughput in samples/s. Random weights, built locally. tf-chain = "
             "convert_variables_to_constants_v2 (v1 session freeze for TF1) + "
             "optimize_for_inference, saved as a SavedModel like tfopt's output (only the graph "
             "differs).", "",
             "| model | batch | original | tf-chain | tfopt | tf-chain / original | "
             "tfopt / original | tfopt / tf-chain | tfopt 95% CI | A/A (original again) | "
             "rel diff tf-chain | rel diff tfopt | optimize time (s) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r[0]} | {r[1]} | {r[2]:.2f} | {r[3]:.2f} | {r[4]:.2f} | {r[5]:.2f}x "
                     f"| {r[6]:.2f}x | {r[7]:.2f}x | {r[8]} | {r[12]} | {r[9]:.1e} | "
                     f"{r[10]:.1e} | {r[11]:.1f} |")
    b1 = [r[6] for r in rows if r[1] == 1]
    if b1:
        lines += ["", f"Geometric-mean speedup of tfopt over the original at batch 1: "
                  f"{stats.geomean(b1):.2f}x"]
    if profiles:
        lines += ["", "## Where the time goes (batch 1, kernel time per run, frozen graph in a "
                  "Session, Grappler on)", "",
                  "| model | original (frozen): top op types | tfopt: top op types | conv/matmul share "
                  "of the original |", "|---|---|---|---:|"]
        for name, before, after in profiles:
            def top(p):
                return ", ".join(f"{op} {ms:.1f} ms" for op, ms, _ in p.by_op[:3])
            share = before.share(("MklNativeFusedConv2D", "MklNativeConv2D", "FusedConv2D",
                                  "Conv2D", "MklNativeFusedDepthwise", "MklNativeDepthwise",
                                  "DepthwiseConv2dNative", "MklNativeFusedMatMul",
                                  "FusedMatMul", "MatMul", "MklNativeMatMul"))
            lines.append(f"| {name} | {top(before)} (total {before.total_ms:.1f} ms) | "
                         f"{top(after)} (total {after.total_ms:.1f} ms) | {share:.0%} |")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
