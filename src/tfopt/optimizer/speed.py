"""The speed check: the written model is timed against the original, as its answers are checked.

An optimized model that runs slower is a defect, so after verification ``optimize`` times the
original and the written model on the verification inputs: both loaded in each of three fresh
processes, called in alternating blocks of a quarter second, the processes loading them in
alternating order (``measure.interleaved.time_interleaved``); the median of the block-pair
ratios with a bootstrap interval over processes and pairs (``measure.stats.paired_ratio``). On a shared machine the load moves from second to second and a process's
placement moves a model by 10-20%: with a fresh process per model and round, a bidirectional
GRU 1.12x faster [1.01-1.17] over 8 rounds of ``tfopt benchmark`` was reported "0.89x (no
measurable difference) [0.88-1.20]" by five. Blocks side by side in one process see the same
machine. ~30 s, more where one call is longer than a block.

When the output is slower beyond the noise (its whole interval below 1.0 and the ratio below
:data:`SLOWER`: a 5% difference cannot be pinned on a pass), the pass responsible
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
from tfopt.measure.interleaved import INTERLEAVED_PROCESSES, time_interleaved
from tfopt.runtime import current_runtime, runtime_label

PROCESSES = INTERLEAVED_PROCESSES  # fresh processes per timing (said in the progress line)
SLOWER = 0.9  # a ratio below this, with its interval below 1.0, is a slowdown to act on
PROMISING = 1.10  # a candidate this much faster, undecided, is timed a second time


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
    return time_all_against(original, [candidate], key, feeds, say)[0]


def time_all_against(original: str, candidates: list[str], key: str,
                     feeds: dict[str, np.ndarray], say: Callable[[str], None] | None = None,
                     decide: bool = False) -> list[SpeedCheck]:
    """Time several candidates against the ``original`` (any baseline model path) in one
    interleaved run. ``decide`` (a choice keeps a candidate only when its gain's interval lies
    above 1.0): when a candidate's gain is worth having (:data:`PROMISING`) but its interval
    still reaches 1.0, one process's luck may decide that, so the set is timed in as many
    processes again and judged on all of them."""
    plain, *timed = time_interleaved([original, *candidates], key, feeds, say)
    if decide and any(_undecided(stats.paired_ratio(t, plain)) for t in timed):
        if say:
            say(f"  not decided by {PROCESSES} processes; {PROCESSES} more ...")
        more_plain, *more = time_interleaved([original, *candidates], key, feeds, say)
        plain = [*plain, *more_plain]
        timed = [[*t, *m] for t, m in zip(timed, more, strict=True)]
    first = next(iter(feeds.values()), None)
    batch = int(first.shape[0]) if first is not None and np.ndim(first) else 1
    return [SpeedCheck(key, stats.paired_ratio(optimized, plain), batch,
                       runtime_label(current_runtime()), batch * stats.median(sum(plain, [])),
                       batch * stats.median(sum(optimized, []))) for optimized in timed]


def _undecided(ratio: stats.Ratio) -> bool:
    return not ratio.measurable and ratio.value >= PROMISING


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
