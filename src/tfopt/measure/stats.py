"""Speed ratios and their confidence intervals.

Every timing of two models in tfopt is paired: ``tfopt benchmark`` runs rounds, each a fresh
process holding every model, the models called in alternating blocks; ``optimize`` times its
choices the same way (:func:`tfopt.measure.interleaved.time_interleaved`). A model's throughput
is the **median over rounds** of its per-round throughput. A ratio is the **median of the
block-pair ratios** (:func:`paired_ratio`): a block and its neighbour in the same process see
the same load and placement, which a ratio of per-round medians would carry in (on a busy
two-core machine an A/A of that kind measured 1.17x [1.04-1.51]). Its interval is a two-level
bootstrap: rounds with replacement, then pairs within each, so one process's luck widens the
interval instead of deciding. :func:`ratio` (ratio of medians, bootstrap over rounds) remains
for per-round numbers that have no blocks.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np

BOOTSTRAP_SAMPLES = 4000


def geomean(values: list[float]) -> float:
    """Geometric mean of speed ratios (the mean that treats 2x and 0.5x as cancelling)."""
    return float(np.exp(np.mean(np.log(values)))) if values else float("nan")


@dataclass(frozen=True)
class Ratio:
    value: float   # median(model) / median(baseline)
    low: float     # confidence interval
    high: float
    confidence: float

    @property
    def measurable(self) -> bool:
        """False when the interval contains 1.0: no difference can be claimed."""
        return not (self.low <= 1.0 <= self.high)

    @property
    def faster(self) -> bool:
        """Measurably faster: the whole interval lies above 1.0."""
        return self.low > 1.0

    def short(self) -> str:
        """``1.23x [1.10-1.35]``: the ratio and its interval, for tables and labels."""
        return f"{self.value:.2f}x [{self.low:.2f}-{self.high:.2f}]"

    def verdict(self) -> str:
        ci = f"{self.confidence:.0%} CI {self.low:.2f}-{self.high:.2f}"
        if not self.measurable:
            return f"no difference measurable ({self.value:.2f}x, {ci})"
        word = "faster" if self.faster else "slower"
        return f"{self.value:.2f}x ({word}; {ci})"


def round_throughput(times: list[float], batch: int) -> float:
    """Samples per second over one round's timed calls."""
    return batch * len(times) / sum(times)


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def ratio(model: list[float], baseline: list[float], confidence: float = 0.95,
          seed: int = 0) -> Ratio:
    """Ratio of median per-round throughputs, with a paired bootstrap interval over rounds."""
    a, b = np.asarray(model, float), np.asarray(baseline, float)
    if a.shape != b.shape or a.size == 0:
        raise ValueError("model and baseline need the same, non-zero number of rounds")
    value = float(np.median(a) / np.median(b))
    if a.size == 1:
        return Ratio(value, value, value, confidence)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, (BOOTSTRAP_SAMPLES, a.size))
    samples = np.median(a[idx], axis=1) / np.median(b[idx], axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return Ratio(value, float(min(low, value)), float(max(high, value)), confidence)


def paired_ratio(model: list[list[float]], baseline: list[list[float]],
                 confidence: float = 0.95, seed: int = 0) -> Ratio:
    """Speed ratio of paired measurements taken side by side, grouped by process: the median
    of the pair ratios, with a two-level bootstrap interval (processes with replacement, then
    pairs within each), so that one process's luck widens the interval instead of hiding in
    the pairs. Alternating blocks in one process see the same load and placement, which a
    ratio of medians pooled over processes would bring back in (a GRU at 1.09-1.13x in each
    of three processes came out 1.16x [0.91-1.25] that way)."""
    a, b = np.asarray(model, float), np.asarray(baseline, float)
    if a.shape != b.shape or a.ndim != 2 or a.size == 0:
        raise ValueError("model and baseline need the same number of pairs in each group")
    pairs = a / b
    value = float(np.median(pairs))
    groups, n = pairs.shape
    rng = np.random.default_rng(seed)
    chosen = rng.integers(0, groups, (BOOTSTRAP_SAMPLES, groups))
    within = rng.integers(0, n, (BOOTSTRAP_SAMPLES, groups, n))
    samples = np.median(pairs[chosen[..., None], within].reshape(BOOTSTRAP_SAMPLES, -1), axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return Ratio(value, float(min(low, value)), float(max(high, value)), confidence)


def spread(values: list[float]) -> float:
    """Relative noise of repeated measurements: median absolute deviation / median."""
    if len(values) < 2:
        return 0.0
    m = median(values)
    return median([abs(v - m) for v in values]) / m if m else 0.0
