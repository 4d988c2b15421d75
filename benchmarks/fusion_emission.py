"""Is it worth baking fused kernels into the graph? Measured under both CPU runtimes.

Grappler's remapper fuses Conv/MatMul + BiasAdd + activation at load time anyway, so tfopt's
own ``_Fused*`` emission may buy nothing. For each zoo model this builds the original, tfopt's
default output (``--target portable``: fusions both runtimes run) and tfopt's output without
any fused kernel (``--target generic``), then times the three under each runtime
(``TF_ENABLE_ONEDNN_OPTS=0`` and ``=1``), a fresh process per model and round, order
alternating, plus an A/A copy of the portable model to show the noise floor of the same run.
Writes ``benchmarks/FUSION_EMISSION.md``.

    python benchmarks/fusion_emission.py [--models resnet50,mobilenet_v2] [--rounds 6]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from dataclasses import asdict

import tfopt
from tfopt import stats, zoo
from tfopt.benchmark import Settings, benchmark
from tfopt.options import parse_shapes
from tfopt.runtime import runtime_label, summary_line

MODELS = ["mobilenet_v2", "resnet50", "efficientnet_b0", "ssd_inception"]
SHAPES = {"ssd_inception": {"inputs": (1, 300, 300, 3)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--runtimes", default="eigen,onednn")
    parser.add_argument("--num-iter", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__),
                                                       "FUSION_EMISSION.md"))
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="tfopt-fusion-")
    rows = []
    try:
        for name in args.models.split(","):
            src = os.path.join(work, name)
            zoo.build(name, src)
            shapes = SHAPES.get(name)
            portable, generic = src + "_portable", src + "_generic"
            report = tfopt.optimize(src, portable, input_shapes=shapes)
            tfopt.optimize(src, generic, input_shapes=shapes, target="generic")
            twin = src + "_portable_copy"  # A/A: the same model again, another directory
            shutil.copytree(portable, twin)
            fused = sum(report.fused_kernels.values())
            for runtime in args.runtimes.split(","):
                settings = Settings(num_iter=args.num_iter, num_warmup=3, rounds=args.rounds,
                                    runtime=runtime,
                                    input_shapes=parse_shapes(
                                        [f"{k}={','.join(map(str, v))}"
                                         for k, v in (shapes or {}).items()]))
                res = benchmark([src, portable, generic, twin], settings,
                                labels=["original", "portable", "generic", "portable (A/A)"])
                o, p, g, a = res.models
                rows.append((name, runtime, fused, o.throughput, p, g, a))
                with open(args.out.replace(".md", ".json"), "w") as f:
                    json.dump([(r[0], r[1], r[2], r[3], *(asdict(m) for m in r[4:]))
                               for r in rows], f, indent=1)
                print(name, runtime, f"portable {p.verdict}; generic {g.verdict}; "
                      f"A/A {_between(a, p)}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_table(args, rows)


def _ci(m) -> str:
    return m.interval().short()


def _between(model, other) -> str:
    """``model`` against ``other`` of the same run, with its interval (for the A/A copy
    against the model it copies: the run's noise floor)."""
    return stats.ratio(model.round_throughputs, other.round_throughputs).short()


def write_table(args, rows) -> None:
    lines = ["# Baking fused kernels: tfopt's default output vs the same without `_Fused*`", "",
             f"Machine: {summary_line()} (the runtime column overrides oneDNN per run). "
             f"Batch 1, threads = cores, Grappler on. {args.rounds} rounds, a fresh process per "
             "model and round, order alternating; throughput = median over rounds; ratios to "
             "the original with 95% paired-bootstrap intervals. `portable` = default output "
             "(fused kernels both runtimes run); `generic` = `--target generic` (no `_Fused*`, "
             "Grappler fuses at load); `A/A` = a copy of `portable`, the run's noise floor.", "",
             "| model | runtime | fused nodes | original samples/s | portable / original | "
             "generic / original | portable / generic | A/A (copy / portable) |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, runtime, fused, orig, p, g, a in rows:
        lines.append(f"| {name} | {runtime_label(runtime)} | {fused} | {orig:.2f} | {_ci(p)} | "
                     f"{_ci(g)} | {_between(p, g)} | {_between(a, p)} |")
    for runtime in args.runtimes.split(","):
        sel = [r for r in rows if r[1] == runtime]
        lines.append("")
        lines.append(f"Geometric mean, {runtime_label(runtime)}: portable "
                     f"{stats.geomean([r[4].ratio for r in sel]):.2f}x, generic "
                     f"{stats.geomean([r[5].ratio for r in sel]):.2f}x, portable / generic "
                     f"{stats.geomean([r[4].throughput / r[5].throughput for r in sel]):.2f}x, A/A "
                     f"{stats.geomean([r[6].throughput / r[4].throughput for r in sel]):.2f}x.")
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
