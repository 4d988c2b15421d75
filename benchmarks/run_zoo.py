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
from tfopt import zoo
from tfopt.benchmark import Settings, benchmark, cpu_model
from tfopt.loader import load_model
from tfopt.verify import compare, make_inputs, run_graph_def

MODELS = ["mobilenet_v2", "resnet50", "inception_v3", "ssd_inception"]
SHAPES = {"ssd_inception": ["inputs=1,300,300,3"]}


def tf_chain(src: str, dst_pb: str) -> None:
    """TensorFlow's own tools: freeze, then optimize_for_inference."""
    from tensorflow.python.tools import optimize_for_inference_lib

    model = load_model(src)  # freezing as TF does (v2 converter / v1 session graph)
    sig = model.signatures["serving_default"]
    ins = [t.tensor.split(":")[0] for t in sig.inputs.values()]
    outs = [t.tensor.split(":")[0] for t in sig.outputs.values()]
    gd = optimize_for_inference_lib.optimize_for_inference(
        sig.graph_def, ins, outs, [t.dtype.as_datatype_enum for t in sig.inputs.values()])
    tf.io.write_graph(gd, os.path.dirname(dst_pb), os.path.basename(dst_pb), as_text=False)


def rel_diff(src: str, other_pb: str | None, other_sm: str | None, shapes) -> float:
    model = load_model(src)
    sig = model.signatures["serving_default"]
    from tfopt.verify import parse_shapes

    feeds = make_inputs(sig.inputs, 1, parse_shapes(shapes), seed=3)
    ref = model.reference("serving_default", feeds)
    if other_pb:
        other = load_model(other_pb).signatures["serving_default"]
        got = run_graph_def(other.graph_def, other, {k: feeds[k] for k in other.inputs}
                            if set(other.inputs) == set(feeds) else
                            dict(zip(other.inputs, feeds.values(), strict=True)))
        got = dict(zip(ref, got.values(), strict=False)) if set(got) != set(ref) else got
    else:
        from tfopt.verify import run_saved_model

        got = run_saved_model(other_sm, "serving_default", feeds)
    return max(c.rel for c in compare(ref, got))


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
    for name in args.models.split(","):
        src = os.path.join(work, name)
        zoo.build(name, src)
        shapes = SHAPES.get(name, [])
        pb = os.path.join(work, name + "_tf.pb")
        tf_chain(src, pb)
        opt = os.path.join(work, name + "_tfopt")
        start = time.perf_counter()
        report = tfopt.optimize(src, opt, input_shapes=shapes)
        opt_s = time.perf_counter() - start
        d_tf = rel_diff(src, pb, None, shapes)
        d_opt = report.worst.rel
        for batch in (int(b) for b in args.batch.split(",")):
            bshapes = [s.replace("=1,", f"={batch},") for s in shapes]
            from tfopt.verify import parse_shapes

            settings = Settings(batch_size=batch, num_iter=args.num_iter if batch == 1 else
                                max(6, args.num_iter // 4), num_warmup=3, rounds=args.rounds,
                                input_shapes=parse_shapes(bshapes))
            res = benchmark([src, pb, opt], settings, labels=["original", "tf-chain", "tfopt"])
            o, t, f = res.models
            rows.append((name, batch, o.median_throughput, t.median_throughput,
                         f.median_throughput, t.ratio, f.ratio, f.ratio / t.ratio,
                         f"{f.ratio_min:.2f}-{f.ratio_max:.2f}", d_tf, d_opt, opt_s))
            print(rows[-1], flush=True)
    write_table(args.out, rows, args)


def write_table(path: str, rows, args) -> None:
    lines = ["# Model-zoo benchmark", "",
             f"Machine: {cpu_model()}, {os.cpu_count()} vCPU, {platform.system()}; TensorFlow "
             f"{tf.__version__}; default threads; Grappler on (as users run models). "
             f"Median of {args.rounds} interleaved rounds (original, tf-chain, tfopt in turn); "
             "throughput in samples/s. Random weights, built locally. tf-chain = "
             "convert_variables_to_constants_v2 (v1 session freeze for TF1) + "
             "optimize_for_inference, run as a frozen GraphDef in a Session.", "",
             "| model | batch | original | tf-chain | tfopt | tf-chain / original | "
             "tfopt / original | tfopt / tf-chain | tfopt ratio range | rel diff tf-chain | "
             "rel diff tfopt | optimize time (s) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r[0]} | {r[1]} | {r[2]:.2f} | {r[3]:.2f} | {r[4]:.2f} | {r[5]:.2f}x "
                     f"| {r[6]:.2f}x | {r[7]:.2f}x | {r[8]} | {r[9]:.1e} | {r[10]:.1e} | "
                     f"{r[11]:.1f} |")
    b1 = [r[6] for r in rows if r[1] == 1]
    if b1:
        lines += ["", f"Geometric-mean speedup of tfopt over the original at batch 1: "
                  f"{float(np.exp(np.mean(np.log(b1)))):.2f}x"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
