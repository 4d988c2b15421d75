"""Benchmark the local model zoo: original vs TensorFlow's own tool chain vs tfopt.

For each model (built locally, random weights): the original SavedModel as a user runs it
(``tf.saved_model.load``, default settings); TensorFlow's chain
(``convert_variables_to_constants_v2`` or the v1 session freeze, then
``optimize_for_inference``) as a frozen graph; and tfopt's output. All are timed interleaved in
one run per batch size (see ``harness``), with the original again as the A/A column, and the
table gets throughput, ratios and the worst relative output difference. Writes
benchmarks/RESULTS.md and benchmarks/speedups.png.

    python benchmarks/run_zoo.py [--models ssd_inception,mobilenet_v2] [--batch 1,32]
"""

from __future__ import annotations

import os
import time

import harness
import numpy as np
import tensorflow as tf

import tfopt
from tfopt.measure.profile import OpProfile, profile_graph
from tfopt.measure.results import Settings
from tfopt.model.formats import load_model
from tfopt.runtime import cpu_model
from tfopt.verify.compare import compare
from tfopt.verify.inputs import input_hints, make_inputs
from tfopt.verify.runners import run_saved_model
from tfopt.zoo import builders as zoo

MODELS = ["mobilenet_v2", "resnet50", "inception_v3", "ssd_inception"]
SHAPES = {"ssd_inception": {"inputs": (1, 300, 300, 3)}}

def rel_diff(src: str, other: str, shapes) -> float:
    model = load_model(src, ["serving_default"])
    sig = model.signatures["serving_default"]
    feeds = make_inputs(sig.inputs, 1, shapes, seed=3, hints=input_hints(sig))
    ref = model.reference("serving_default", feeds)
    return max(c.rel for c in compare(ref, run_saved_model(other, "serving_default", feeds)))


def profile(path: str, shapes) -> OpProfile:
    sig = load_model(path, ["serving_default"]).signatures["serving_default"]
    return profile_graph(sig, make_inputs(sig.inputs, 1, shapes))


def main() -> None:
    run(__doc__, "RESULTS.md", "speedups.png", MODELS, batch="1,32")


def run(doc: str, out: str, chart: str, models: list[str], batch: str,
        title: str = "Model-zoo benchmark", per_batch: bool = False) -> None:
    """Build, optimize and time ``models`` (zoo names); write the table ``out`` and the chart
    ``chart`` beside it. ``per_batch``: each batch past 1 times an output optimized for it
    (``--batch-size``, timed choices on), as a user serving that batch would make it."""
    args = harness.arguments(doc, out, models, batch=batch, extra=[
        ("--chart", {"default": chart, "help": "chart file, beside --out"})])
    rows: list[harness.Row] = []
    profiles = []
    with harness.workdir("tfopt-zoo-") as work:
        for name in args.model_list:
            src = os.path.join(work, name)
            zoo.build(name, src)
            shapes = SHAPES.get(name, {})
            chain, opt = src + "_tf_chain", src + "_tfopt"
            harness.tf_chain(src, chain)
            start = time.perf_counter()
            # time=False: this script times every variant itself, with more rounds.
            report = tfopt.optimize(src, opt, input_shapes=shapes, time=False)
            facts = {"optimize_s": time.perf_counter() - start, "diff_opt": report.worst.rel,
                     "diff_chain": rel_diff(src, chain, shapes)}
            profiles.append((name, profile(src, shapes), profile(opt, shapes)))
            for batch in args.batches:
                timed, row_facts = opt, facts  # the batch-1 output, unless made for this batch
                if per_batch and batch > 1:
                    timed = f"{src}_tfopt_b{batch}"
                    start = time.perf_counter()
                    report = tfopt.optimize(src, timed, input_shapes=shapes, batch_size=batch)
                    row_facts = {**facts, "optimize_s": time.perf_counter() - start,
                                 "diff_opt": report.worst.rel}
                # round_seconds: a round of a 2 ms model is otherwise 12 ms of timing
                settings = Settings(batch_size=batch, num_warmup=3, rounds=args.rounds,
                                    num_iter=args.num_iter if batch == 1 else
                                    max(6, args.num_iter // 4), round_seconds=2.0,
                                    input_shapes=harness.at_batch(shapes, batch))
                row = harness.time_variants(name, batch, {"original": src, "tf-chain": chain,
                                                          "tfopt": timed}, settings)
                row.facts.update(row_facts)
                rows.append(row)
    write_table(args, rows, profiles, title)
    write_chart(os.path.join(os.path.dirname(args.out), args.chart), rows)


def write_chart(path: str, rows: list[harness.Row]) -> None:
    """Bar chart: throughput ratio to the original, per model and batch, both tool chains."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r.model}\nbatch {r.batch}" for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(rows)), 4.5))
    ax.bar(x - 0.2, [r.ratio("tf-chain") for r in rows], 0.4,
           label="TF chain (freeze + optimize_for_inference)")
    ax.bar(x + 0.2, [r.ratio("tfopt") for r in rows], 0.4, label="tfopt")
    ax.axhline(1.0, color="grey", lw=1)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("throughput / original")
    from tfopt.runtime import current_runtime, runtime_label

    ax.set_title(f"Speedup over the original (TensorFlow {tf.__version__}, "
                 f"{runtime_label(current_runtime())}, {cpu_model()})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_table(args, rows: list[harness.Row], profiles=(),
                title: str = "Model-zoo benchmark") -> None:
    body = [[r.model, r.batch, f"{r.baseline.throughput:.2f}",
             f"{r.results['tf-chain'].throughput:.2f}", f"{r.results['tfopt'].throughput:.2f}",
             f"{r.ratio('tf-chain'):.2f}x", f"{r.ratio('tfopt'):.2f}x",
             f"{r.ratio('tfopt') / r.ratio('tf-chain'):.2f}x", r.ci("tfopt"), r.ci(harness.AA),
             f"{r.facts['diff_chain']:.1e}", f"{r.facts['diff_opt']:.1e}",
             f"{r.facts['optimize_s']:.1f}"] for r in rows]
    results = harness.table(
        ["model", "batch", "original", "tf-chain", "tfopt", "tf-chain / original",
         "tfopt / original", "tfopt / tf-chain", "tfopt 95% CI", "A/A (original again)",
         "rel diff tf-chain", "rel diff tfopt", "optimize time (s)"], body,
        [False] + [True] * 7 + [False, False] + [True] * 3)
    summary = [harness.geomean_line(rows, "tfopt", 1)]
    where = []
    if profiles:
        def top(p: OpProfile) -> str:
            return (", ".join(f"{op} {ms:.1f} ms" for op, ms, _ in p.by_op[:3])
                    + f" (total {p.total_ms:.1f} ms)")

        where = ["## Where the time goes (batch 1, kernel time per run, frozen graph in a "
                 "Session, Grappler on)", "", *harness.table(
                     ["model", "original (frozen): top op types", "tfopt: top op types",
                      "conv/matmul share of the original"],
                     [[name, top(before), top(after), f"{before.dense_share():.0%}"]
                      for name, before, after in profiles], [False, False, False, True])]
    harness.write_markdown(
        args.out, title,
        harness.METHOD.format(rounds=args.rounds) + " Random weights, built locally. tf-chain "
        "= convert_variables_to_constants_v2 (v1 session freeze for TF1) + "
        "optimize_for_inference, saved as a SavedModel like tfopt's output (only the graph "
        "differs).", [results, summary, where])


if __name__ == "__main__":
    main()
