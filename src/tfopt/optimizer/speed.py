"""The speed check: the written model is timed against the original, as its answers are checked.

An optimized model that runs slower is a defect, so after verification ``optimize`` times the
original and the written model the way ``tfopt benchmark`` does (fresh processes, interleaved,
ratio of median throughputs with a paired bootstrap interval) on the verification inputs. Each
round runs for at least a second (``measure.benchmark.time_pair``), so the budget grows with
the model's run time only where one call is longer than that.

When the output is slower by more than the noise of fresh processes on a shared machine (its
whole interval below 1.0 and the ratio below :data:`SLOWER`: the same model in two processes
differs by 10-20% here, and a 5% difference cannot be pinned on a pass), the pass responsible
is found by bisection over the passes that changed the graph, in pipeline order (each probe:
the passes up to a point, written and timed against the original), and switched off; the
report says which. When
even the frozen graph without any pass is slower, nothing tfopt does can help and the model is
not written: the original is the faster model to ship.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tfopt.measure import stats
from tfopt.measure.benchmark import PAIR_ROUNDS as ROUNDS
from tfopt.measure.benchmark import time_pair
from tfopt.runtime import runtime_label

SLOWER = 0.9  # a ratio below this, with its interval below 1.0, is a slowdown to act on


@dataclass(frozen=True)
class SpeedCheck:
    """The written model's speed against the original's, for one signature."""

    key: str
    ratio: stats.Ratio
    batch: int
    runtime: str          # runtime label the timing ran under ("oneDNN on")
    original: float       # samples/s, median over rounds
    optimized: float

    @property
    def slower(self) -> bool:
        """Slower beyond process-to-process noise: below :data:`SLOWER`, the whole interval
        below 1.0."""
        return self.ratio.high < 1.0 and self.ratio.value < SLOWER

    def describe(self) -> str:
        """``1.32x faster [1.25-1.40], batch 1, oneDNN on``."""
        if self.ratio.faster:
            word = "faster "
        elif self.slower:
            word = "slower "
        elif self.ratio.measurable:
            word = "(within process noise) "
        else:
            word = "(no measurable difference) "
        return (f"{self.ratio.value:.2f}x {word}[{self.ratio.low:.2f}-{self.ratio.high:.2f}], "
                f"batch {self.batch}, {self.runtime}")

    def to_dict(self) -> dict:
        return {"key": self.key, "ratio": self.ratio.value, "low": self.ratio.low,
                "high": self.ratio.high, "confidence": self.ratio.confidence,
                "batch": self.batch, "runtime": self.runtime,
                "original_samples_per_s": self.original,
                "optimized_samples_per_s": self.optimized}


def time_against(original: str, candidate: str, key: str, feeds: dict[str, np.ndarray],
                 say: Callable[[str], None] | None = None) -> SpeedCheck:
    """Time signature ``key`` of the ``candidate`` model against the ``original`` model."""
    result = time_pair([original, candidate], key, feeds, ["original", "optimized"], say,
                       num_iter=ROUNDS)
    base, opt = result.models
    return SpeedCheck(key, opt.interval(result.environment["confidence"]), base.batch_size,
                      runtime_label(result.environment["runtime"]), base.throughput,
                      opt.throughput)


def first_slow(passes: list[str], slower_with: Callable[[list[str]], bool]) -> str | None:
    """The first pass of ``passes`` (those that changed the graph, pipeline order) whose
    addition makes the output slower, by bisection: ``slower_with(prefix)`` times the output
    of the passes in ``prefix``. The full list is known to be slower; None when the frozen
    graph alone (no pass) is slower too, or there is no pass to blame."""
    if not passes:
        return None
    if slower_with([]):
        return None
    low, high = 0, len(passes)  # passes[:low] is not slower, passes[:high] is
    while high - low > 1:
        mid = (low + high) // 2
        if slower_with(passes[:mid]):
            high = mid
        else:
            low = mid
    return passes[high - 1]
