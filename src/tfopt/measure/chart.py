"""The benchmark as a picture: throughput bars with round-to-round whiskers and ratios."""

from __future__ import annotations

import os

from tfopt.measure.results import BenchmarkResult


def chart_png(result: BenchmarkResult) -> bytes:
    """Horizontal bars: median throughput per model, whiskers from its slowest to its fastest
    round, and the ratio with its interval written right of the whisker (never on it)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = result.models
    names = [os.path.basename(m.model.rstrip("/")) or m.model for m in models]
    medians = [m.throughput for m in models]
    lows = [m.throughput - min(m.round_throughputs) for m in models]
    highs = [max(m.round_throughputs) - m.throughput for m in models]
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.7 * len(models)))
    y = list(range(len(models)))[::-1]
    ratios = [m.interval(result.environment["confidence"]) for m in models]
    colors = ["#9e9e9e"] + ["#1f77b4" if r.faster else "#d62728" if r.measurable else "#bdbdbd"
                            for r in ratios[1:]]
    ax.barh(y, medians, xerr=[lows, highs], capsize=5, color=colors, height=0.6)
    right = max(max(m.round_throughputs) for m in models)
    for yi, m, r in zip(y, models, ratios, strict=True):
        text = ("baseline" if m is models[0] else
                r.short() + ("" if r.measurable else " n.s."))
        ax.text(max(m.round_throughputs) + right * 0.02, yi, text, va="center", fontsize=9)
    ax.set_xlim(0, right * 1.45)
    ax.set_yticks(y, names)
    ax.set_xlabel("samples/s (median of rounds; whiskers: slowest-fastest round)")
    ax.set_title(result.setup_line(), fontsize=7, wrap=True)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
