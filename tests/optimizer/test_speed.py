"""The speed check's decisions, apart from timing: what counts as slower, and which pass the
bisection blames."""

from __future__ import annotations

from tfopt.measure.stats import Ratio
from tfopt.optimizer.speed import SpeedCheck, first_slow

PASSES = ["identity", "constant_fold", "cse", "fuse_kernels", "lower_control_flow"]


def check(value: float, low: float, high: float) -> SpeedCheck:
    return SpeedCheck("serving_default", Ratio(value, low, high, 0.95), 1, "oneDNN on", 100.0,
                      100.0 * value)


def test_slower_means_beyond_process_noise():
    assert check(0.47, 0.40, 0.55).slower
    assert not check(0.95, 0.92, 0.97).slower, "5% is within process-to-process noise"
    assert not check(0.85, 0.70, 1.05).slower, "an interval containing 1.0 claims nothing"
    assert "faster" in check(1.3, 1.2, 1.4).describe()
    assert "slower" in check(0.47, 0.40, 0.55).describe()
    assert "no measurable difference" in check(0.99, 0.9, 1.1).describe()
    assert "batch 1, oneDNN on" in check(1.3, 1.2, 1.4).describe()


def test_bisection_finds_the_first_pass_that_slows():
    for culprit in PASSES:
        probes: list[list[str]] = []

        def slower_with(prefix: list[str], culprit=culprit, probes=probes) -> bool:
            probes.append(prefix)
            return culprit in prefix
        assert first_slow(PASSES, slower_with) == culprit
        assert len(probes) <= 4, "bisection, not one probe per pass"


def test_no_pass_to_blame_when_the_frozen_graph_is_slower():
    assert first_slow(PASSES, lambda prefix: True) is None
    assert first_slow([], lambda prefix: True) is None
