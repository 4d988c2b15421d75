"""``tfopt demo``: the whole story on the built-in SSD detector, with no download.

Build the detector -> optimize and verify it (under both CPU runtimes) -> benchmark original vs
optimized (rounds in fresh processes, the models called in alternating blocks) -> profile both
(kernel time per op type, to show *where* the difference comes from on this machine) ->
analyze both -> print the result and write an HTML report with charts. The headline, the table
and the chart all come from the same :class:`tfopt.stats.Ratio`, so they cannot disagree.

On a CPU with bfloat16 instructions and oneDNN on (``precision="auto"``, or asked for with
``"bf16"``) the detector is also optimized in bf16 and benchmarked as a third column, with its
own accuracy check (the budget for reduced precision; the boxes after non-max suppression
compared in any order) and its size on disk.
"""

from __future__ import annotations

import base64
import html
import os
import shutil
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
    ratio_low: float
    ratio_high: float
    headline: str
    worst_rel: float
    bf16: str | None = None  # the bf16 column's line, or why there is none
    bf16_speedup: float | None = None


def _img(png: bytes, alt: str) -> str:
    return (f"<img alt='{html.escape(alt)}' src='data:image/png;base64,"
            f"{base64.b64encode(png).decode()}'>")


def explain(ratio, before, after, nodes: tuple[int, int] | None = None) -> str:
    """Why the speedup is what it is, from the evidence at hand, never against the headline.

    Kernel time is summed over the op kernels of one run: with two threads running kernels in
    parallel it can exceed the wall-clock latency, so it is said as such. A difference in it
    smaller than :data:`KERNEL_NOISE` of the total is not claimed as the reason."""
    kernel = (f"kernel time summed over threads, per run: {before.total_ms:.1f} ms original, "
              f"{after.total_ms:.1f} ms optimized")
    saved = before.total_ms - after.total_ms
    fused = (f"{before.fused_share():.0%} of the original's kernel time is already in fused "
             "convolution kernels that TensorFlow's runtime builds when it loads the model")
    executed = (f"; {nodes[0]} -> {nodes[1]} nodes left to schedule per run"
                if nodes else "")
    if not ratio.measurable:
        return (f"No difference can be claimed at this noise level; {fused} ({kernel}"
                f"{executed}).")
    if not ratio.faster:
        return (f"The optimized model measured slower here ({kernel}{executed}); check with "
                "tfopt benchmark on a quiet machine before deploying it.")
    if saved > KERNEL_NOISE * before.total_ms:
        op, less = max(((op, b - a) for op, b, a in _deltas(before, after)),
                       key=lambda x: x[1], default=("", 0.0))
        return (f"The optimized graph needs {saved:.1f} ms less kernel time per run ({kernel}); "
                f"the largest saving is in {op} ({less:.1f} ms less).")
    return (f"Kernel time is about the same ({kernel}), because {fused}: the gain is in what "
            f"runs around the kernels{executed} (fewer ops to schedule, no Identity, "
            "training or debug nodes, constants already folded).")


# A kernel-time difference below this share of the total is within profiling noise.
KERNEL_NOISE = 0.05


def _deltas(before, after):
    from tfopt.measure.profile import compare_table

    return compare_table(before, after, top=50)


def _bf16_wanted(precision: str) -> tuple[bool, str]:
    """Whether the demo adds a bf16 column, and the reason when it does not."""
    from tfopt.optimizer.precision import why_not_bf16

    if precision == "fp32":
        return False, "bf16 not asked for (--precision fp32)"
    why = why_not_bf16()
    if precision == "auto" and why is not None:
        return False, f"no bf16 column: {why} (--precision bf16 shows it anyway)"
    return True, ""


def _optimize_bf16(original: str, path: str, shapes, precision: str,
                   say: Callable[[str], None]):
    """The bf16 variant's report, or None with the one-line reason it was not written."""
    from tfopt import optimize

    say("   bf16: optimizing again with --precision bf16 (accuracy budget for reduced "
        "precision) ...")
    try:
        report = optimize(original, path, input_shapes=shapes, time=False, precision="bf16",
                          force_precision=precision == "bf16", log=lambda m: None)
    except TfoptError as err:
        return None, f"no bf16 column: {err}"
    say("   " + report.summary())
    return report, ""


def run_demo(out_dir: str, num_iter: int = 160, num_warmup: int = 5, rounds: int = 8,
             seed: int = 0, overwrite: bool = False, precision: str = "auto",
             say: Callable[[str], None] = print) -> DemoResult:
    from tfopt.measure.results import Settings
    from tfopt.options import parse_shapes

    _fresh_directory(out_dir, overwrite)
    original = os.path.join(out_dir, "ssd_inception_v2")
    optimized = os.path.join(out_dir, "ssd_inception_v2_optimized")
    shapes = parse_shapes([INPUT_SHAPE])
    report, bf16_report, bf16_note = _build_and_optimize(original, optimized, shapes, seed,
                                                         precision, say)
    paths, labels = [original, optimized], ["original", "optimized"]
    if bf16_report is not None:
        paths.append(optimized + "_bf16")
        labels.append("optimized bf16")
    settings = Settings(batch_size=1, num_iter=num_iter, num_warmup=num_warmup, rounds=rounds,
                        input_shapes=shapes, round_seconds=1.0)
    bench = _benchmark(paths, labels, settings, say)
    ratio = bench.models[1].interval(settings.confidence)
    bf16_ratio = None
    if bf16_report is not None:
        bf16_ratio = bench.models[2].interval(settings.confidence)
        bf16_note = bf16_line(bf16_ratio, bench.models[2].against(bench.models[1],
                                                                  settings.confidence),
                              bf16_report, optimized, paths[2])
    profiles = _profiles(original, optimized, shapes, say)
    sig_report = next(s for s in report.signatures.values() if not s.same_as)
    why = explain(ratio, *profiles,
                  (sig_report.nodes_before + sig_report.function_nodes_before,
                   sig_report.nodes_after + sig_report.function_nodes_after))
    report_html = _write_page(out_dir, original, optimized, report, bench, ratio, profiles,
                              why, bf16_note, say)
    worst = report.worst
    headline = f"Throughput at batch 1: {ratio.verdict()}"  # (the console's line)
    say("")
    say(f"Optimized model: {optimized}")
    say(f"{headline}; worst relative output difference {worst.rel:.2e} "
        f"(tolerance {report.tolerance:g})")
    say(why)
    say(bf16_note)
    say(f"Report: {report_html}")
    return DemoResult(out_dir, original, optimized, report_html, ratio.value, ratio.low,
                      ratio.high, headline, worst.rel, bf16_note,
                      bf16_ratio.value if bf16_ratio is not None else None)


def _fresh_directory(out_dir: str, overwrite: bool) -> None:
    """``out_dir`` empty and ready; one that holds something only with ``overwrite``."""
    if os.path.exists(out_dir) and os.listdir(out_dir):
        if not overwrite:
            raise TfoptError(f"{out_dir}: exists and is not empty; choose another --out or "
                             "use --overwrite")
        shutil.rmtree(out_dir)
    os.makedirs(out_dir, exist_ok=True)


def _build_and_optimize(original: str, optimized: str, shapes, seed: int, precision: str,
                        say: Callable[[str], None]):
    """Steps 1-2: the detector built, optimized and verified (and its bf16 variant where
    wanted): ``(report, bf16 report or None, bf16 note)``."""
    from tfopt import optimize
    from tfopt.zoo.detector import build_ssd_inception

    say("[1/5] building an SSD detector on an Inception-v2 backbone (TF1 SavedModel)...")
    build_ssd_inception(original, seed=seed)
    say("[2/5] optimizing and verifying against the original...")
    # time=False: step 3 times both models itself, with more rounds than optimize's check.
    report = optimize(original, optimized, input_shapes=shapes, time=False,
                      log=lambda m: say("   " + m.strip()))
    say("   " + report.summary())
    wanted, bf16_note = _bf16_wanted(precision)
    bf16_report = None
    if wanted:
        bf16_report, bf16_note = _optimize_bf16(original, optimized + "_bf16", shapes,
                                                precision, say)
    if bf16_note:
        say("   " + bf16_note)
    return report, bf16_report, bf16_note


def _benchmark(paths: list[str], labels: list[str], settings, say: Callable[[str], None]):
    """Step 3: every model timed in rounds of fresh processes, alternating blocks."""
    from tfopt.measure.benchmark import benchmark

    say(f"[3/5] benchmarking {' vs '.join(labels)} ({settings.num_iter} iterations each over "
        f"{settings.rounds} rounds, each a fresh process holding the models, called in "
        "alternating blocks; batch 1)...")
    bench = benchmark(paths, settings, labels=labels,
                      progress=lambda done, what: say(f"   {what}") if done else None)
    say(bench.table())
    return bench


def _profiles(original: str, optimized: str, shapes, say: Callable[[str], None]) -> list:
    """Step 4: kernel time per op type of both models (TensorFlow's tracer)."""
    from tfopt.measure.profile import compare_text, profile_graph
    from tfopt.model.formats import load_model
    from tfopt.verify.inputs import make_inputs

    say("[4/5] profiling both (kernel time per op type, TensorFlow's tracer)...")
    profiles = []
    for path in (original, optimized):
        sig = next(iter(load_model(path).signatures.values()))
        profiles.append(profile_graph(sig, make_inputs(sig.inputs, 1, shapes)))
    say(compare_text(*profiles))
    return profiles


def _write_page(out_dir: str, original: str, optimized: str, report, bench, ratio, profiles,
                why: str, bf16_note: str, say: Callable[[str], None]) -> str:
    """Step 5: both graphs analyzed, the charts and ``report.html`` written; its path."""
    from tfopt.measure.chart import chart_png
    from tfopt.measure.profile import compare_png, compare_text
    from tfopt.report import analyze as az

    say("[5/5] analyzing both graphs...")
    before, after = az.analyze(original), az.analyze(optimized)
    say(az.compare_report(before, after))
    worst = report.worst
    speed_png, profile_png = chart_png(bench), compare_png(*profiles)
    for name, data in (("throughput.png", speed_png), ("kernel_time.png", profile_png)):
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)
    az.write_chart(os.path.join(out_dir, "op_types.png"),
                   [("original", before), ("optimized", after)])
    # The setup line that follows names the batch: the page's headline does not repeat it.
    summary = (f"<p><b>Throughput: {html.escape(ratio.verdict())}</b>, "
               f"{html.escape(bench.setup_line())}.</p>"
               f"<p>{html.escape(why)}</p><p>Answers: worst relative output difference "
               f"<b>{worst.rel:.2e}</b> ({html.escape(worst.key)}; tolerance "
               f"{report.tolerance:g}), checked with oneDNN on and off. "
               f"{html.escape(az.summary_text([('original', before), ('optimized', after)]))}"
               f"</p><p>{html.escape(bf16_note)}</p>")
    sections = [
        ("Throughput", _img(speed_png, "throughput chart")),
        ("Benchmark", f"<pre>{html.escape(bench.table())}</pre>"),
        ("Where the time goes", _img(profile_png, "kernel time per op type")
         + f"<pre>{html.escape(compare_text(*profiles))}</pre>"),
        ("Optimization passes", "<pre>" + html.escape("\n".join(
            f"{r.name:<18} {r.node_delta:>+7} nodes  {r.delta_text()}"
            for s in report.signatures.values() for r in s.passes if r.changed)) + "</pre>"),
    ]
    report_html = os.path.join(out_dir, "report.html")
    az.write_html(report_html, "tfopt demo: SSD Inception v2 detector",
                  [("original", before), ("optimized", after)], sections, summary)
    return report_html


def bf16_line(bf16, over_fp32, report, fp32_path: str, bf16_path: str) -> str:
    """The bf16 column in one sentence: its speed against the original and against the
    float32 output (both paired block by block), its accuracy check and its size."""
    from tfopt.model.paths import size_on_disk

    checks = [c for s in report.signatures.values() for c in s.checks]
    selected = [c for c in checks if c.matched is not None]
    least = min(selected, key=lambda c: c.matched, default=None)
    found = (f"; {least.matched:.1%} of the original's {least.key} rows found in any order "
             "(the rest are near-ties at the cut of non-max suppression)" if least else "")
    worst = max((c.rel for c in checks), default=0.0)
    return (f"bf16: {bf16.verdict()} over the original ({over_fp32.short()} over the "
            f"float32 output); within the reduced-precision budget (worst relative "
            f"difference {worst:.2e}, tolerance {report.tolerance:g}, oneDNN on and off"
            f"{found}); {size_on_disk(fp32_path) / 1e6:.1f} MB -> "
            f"{size_on_disk(bf16_path) / 1e6:.1f} MB on disk.")
