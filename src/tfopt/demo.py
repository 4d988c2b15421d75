"""``tfopt demo``: the whole story on the built-in SSD detector, with no download.

Build the detector -> optimize and verify it -> benchmark original vs optimized, interleaved
-> analyze both -> print the op tables, worst output difference and speedup, and write an HTML
report with charts.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Callable
from dataclasses import dataclass

from tfopt.errors import TfoptError

INPUT_SHAPE = "inputs=1,300,300,3"


@dataclass
class DemoResult:
    out_dir: str
    original: str
    optimized: str
    report_html: str
    speedup: float
    worst_rel: float


def run_demo(out_dir: str, num_iter: int = 60, num_warmup: int = 5, rounds: int = 6,
             seed: int = 0, say: Callable[[str], None] = print) -> DemoResult:
    from tfopt import analyze as az
    from tfopt.api import optimize
    from tfopt.benchmark import Settings, benchmark
    from tfopt.detector import build_ssd_inception
    from tfopt.verify import parse_shapes

    if os.path.exists(out_dir) and os.listdir(out_dir):
        raise TfoptError(f"{out_dir}: exists and is not empty; choose another --out")
    os.makedirs(out_dir, exist_ok=True)
    original = os.path.join(out_dir, "ssd_inception_v2")
    optimized = os.path.join(out_dir, "ssd_inception_v2_optimized")

    say("[1/4] building an SSD detector on an Inception-v2 backbone (TF1 SavedModel)...")
    build_ssd_inception(original, seed=seed)

    say("[2/4] optimizing and verifying against the original...")
    report = optimize(original, optimized, input_shapes=[INPUT_SHAPE],
                      log=lambda m: say("   " + m.strip()))
    say("   " + report.summary())

    say(f"[3/4] benchmarking original vs optimized ({num_iter} iterations each, interleaved "
        f"in {rounds} rounds, batch 1)...")
    settings = Settings(batch_size=1, num_iter=num_iter, num_warmup=num_warmup, rounds=rounds,
                        input_shapes=parse_shapes([INPUT_SHAPE]))
    bench = benchmark([original, optimized], settings, labels=["original", "optimized"])
    say(bench.table())

    say("[4/4] analyzing both graphs...")
    before, after = az.analyze(original), az.analyze(optimized)
    say(az.text_report(before, top=12))
    say(az.text_report(after, top=12))
    say(az.compare_report(before, after))

    worst = report.worst
    speedup = bench.models[1].ratio
    sections = [
        ("Result", f"<p>Throughput at batch 1: <b>{speedup:.2f}x</b> the original "
                   f"(ratio range {bench.models[1].ratio_min:.2f}-"
                   f"{bench.models[1].ratio_max:.2f} over {rounds} interleaved rounds). "
                   f"Worst relative output difference: <b>{worst.rel:.2e}</b> "
                   f"({html.escape(worst.key)}).</p>"),
        ("Benchmark", f"<pre>{html.escape(bench.table())}</pre>"),
        ("Optimization passes", "<pre>" + html.escape("\n".join(
            f"{r.name:<18} {r.node_delta:>+7} nodes  {r.delta_text()}"
            for s in report.signatures.values() for r in s.passes if r.changed)) + "</pre>"),
    ]
    from tfopt.benchmark import chart_png

    speed_png = chart_png(bench)
    with open(os.path.join(out_dir, "throughput.png"), "wb") as f:
        f.write(speed_png)
    sections.insert(1, ("Throughput", "<img alt='throughput chart' src='data:image/png;base64,"
                        + base64.b64encode(speed_png).decode() + "'>"))
    report_html = os.path.join(out_dir, "report.html")
    az.write_html(report_html, "tfopt demo: SSD Inception v2 detector",
                  [("original", before), ("optimized", after)], sections)
    az.write_chart(os.path.join(out_dir, "op_types.png"),
                   [("original", before), ("optimized", after)])
    say("")
    say(f"Optimized model: {optimized}")
    say(f"Speedup at batch 1: {speedup:.2f}x (range {bench.models[1].ratio_min:.2f}-"
        f"{bench.models[1].ratio_max:.2f}); worst relative output difference "
        f"{worst.rel:.2e} (tolerance {report.tolerance:g})")
    say(f"Report: {report_html}")
    return DemoResult(out_dir, original, optimized, report_html, speedup, worst.rel)
