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

import json
import os
import shutil
from dataclasses import asdict

import harness

import tfopt
from tfopt.measure import stats
from tfopt.measure.results import Settings
from tfopt.runtime import runtime_label
from tfopt.zoo import builders as zoo

MODELS = ["mobilenet_v2", "resnet50", "efficientnet_b0", "ssd_inception"]
SHAPES = {"ssd_inception": {"inputs": (1, 300, 300, 3)}}


def main() -> None:
    args = harness.arguments(__doc__, "FUSION_EMISSION.md", MODELS, num_iter=60, rounds=6,
                             extra=[("--runtimes", {"default": "eigen,onednn"})])
    rows: list[harness.Row] = []
    with harness.workdir("tfopt-fusion-") as work:
        for name in args.model_list:
            src = os.path.join(work, name)
            zoo.build(name, src)
            shapes = SHAPES.get(name)
            portable, generic = src + "_portable", src + "_generic"
            report = tfopt.optimize(src, portable, input_shapes=shapes)
            tfopt.optimize(src, generic, input_shapes=shapes, target="generic")
            twin = src + "_portable_copy"  # A/A: the same model again, another directory
            shutil.copytree(portable, twin)
            for runtime in args.runtimes.split(","):
                settings = Settings(num_iter=args.num_iter, num_warmup=3, rounds=args.rounds,
                                    runtime=runtime, input_shapes=shapes or {})
                row = harness.time_variants(name, 1, {"original": src, "portable": portable,
                                                      "generic": generic,
                                                      "portable (A/A)": twin},
                                            settings, aa=False)
                row.facts.update(runtime=runtime, fused=sum(report.fused_kernels.values()))
                rows.append(row)
                with open(args.out.replace(".md", ".json"), "w") as f:
                    json.dump([{"model": r.model, **r.facts,
                                **{k: asdict(m) for k, m in r.results.items()}}
                               for r in rows], f, indent=1)
    write_table(args, rows)


def write_table(args, rows: list[harness.Row]) -> None:
    body = [[r.model, runtime_label(r.facts["runtime"]), r.facts["fused"],
             f"{r.baseline.throughput:.2f}", r.ci("portable"), r.ci("generic"),
             r.between("portable", "generic"), r.between("portable (A/A)", "portable")]
            for r in rows]
    summary = []
    for runtime in args.runtimes.split(","):
        sel = [r for r in rows if r.facts["runtime"] == runtime]

        def mean(fn, sel=sel) -> str:
            return f"{stats.geomean([fn(r) for r in sel]):.2f}x"

        summary.append(
            f"Geometric mean, {runtime_label(runtime)}: portable "
            f"{mean(lambda r: r.ratio('portable'))}, generic "
            f"{mean(lambda r: r.ratio('generic'))}, portable / generic "
            f"{mean(lambda r: r.ratio('portable') / r.ratio('generic'))}, A/A "
            f"{mean(lambda r: r.ratio('portable (A/A)') / r.ratio('portable'))}.")
    harness.write_markdown(
        args.out, "Baking fused kernels: tfopt's default output vs the same without `_Fused*`",
        "The runtime column overrides oneDNN per run. Batch 1. "
        + harness.METHOD.format(rounds=args.rounds).replace(
            "the A/A column is the original timed again in the same run (its noise)",
            "`A/A` = a copy of `portable` against `portable`, the run's noise floor")
        + " `portable` = default output (fused kernels both runtimes run); `generic` = "
        "`--target generic` (no `_Fused*`, Grappler fuses at load).",
        [harness.table(["model", "runtime", "fused nodes", "original samples/s",
                        "portable / original", "generic / original", "portable / generic",
                        "A/A (copy / portable)"], body,
                       [False, False, True, True, True, True, True, True]), summary])


if __name__ == "__main__":
    main()
