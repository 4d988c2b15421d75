"""The ratio statistics on synthetic timings: one definition, intervals that mean something."""

import pytest

from tfopt.measure import stats


def test_ratio_is_ratio_of_medians_and_agrees_with_the_table():
    """The demo once printed 1.05x while the optimized median was *below* the original's (the
    headline was a median of per-round ratios). Now the ratio is the ratio of the medians."""
    original = [6.08, 6.30, 5.10, 6.50, 6.08]
    optimized = [6.05, 6.90, 4.60, 7.10, 6.00]
    r = stats.ratio(optimized, original)
    assert r.value == pytest.approx(stats.median(optimized) / stats.median(original))
    assert r.value < 1.0  # median 6.05 < 6.08
    assert r.low <= r.value <= r.high
    assert not r.measurable and r.verdict().startswith("no difference measurable")


def test_clear_gain_excludes_one():
    base = [10.0, 10.4, 9.8, 10.1, 9.9, 10.2]
    fast = [13.1, 13.6, 12.9, 13.3, 13.0, 13.4]
    r = stats.ratio(fast, base)
    assert r.measurable and r.low > 1.2 and r.value == pytest.approx(13.2 / 10.05)
    assert "faster" in r.verdict() and "95% CI" in r.verdict()
    slow = stats.ratio(base, fast)
    assert slow.measurable and slow.high < 1 and "slower" in slow.verdict()


def test_interval_is_paired_by_round():
    """A machine that slows down for a whole round slows both models: pairing keeps the
    interval tight where unpaired resampling would not."""
    drift = [1.0, 0.7, 1.2, 0.8, 1.1, 0.9, 1.05, 0.75]
    base = [10 * d for d in drift]
    fast = [11 * d for d in drift]
    r = stats.ratio(fast, base)
    assert r.value == pytest.approx(1.1)
    assert r.high - r.low < 0.05


def test_aa_and_degenerate_cases():
    same = [5.0, 5.2, 4.9, 5.1]
    r = stats.ratio(same, same)
    assert r.value == 1.0 and not r.measurable
    one = stats.ratio([2.0], [1.0])
    assert (one.value, one.low, one.high) == (2.0, 2.0, 2.0)
    with pytest.raises(ValueError):
        stats.ratio([1.0, 2.0], [1.0])
    assert stats.spread([10.0, 11.0, 9.0]) == pytest.approx(0.1)
    assert stats.round_throughput([0.5, 0.5], batch=4) == 8.0  # 8 samples in 1 s


def test_geometric_mean_of_ratios():
    assert stats.geomean([2.0, 0.5]) == pytest.approx(1.0)   # 2x and 0.5x cancel
    assert stats.geomean([1.2, 1.2, 1.2]) == pytest.approx(1.2)
    assert stats.geomean([]) != stats.geomean([])  # NaN: no models, no mean


def test_paired_ratio_takes_each_process_level_out_and_widens_on_a_lucky_process():
    # Three processes at different speeds and a drifting load, the candidate 1.10x beside
    # the baseline in every block: each pair's ratio is 1.10 whatever the level.
    base = [[100.0, 120, 90, 101, 130], [150.0, 110, 152, 95, 150], [80.0, 111, 79, 100, 82]]
    fast = [[v * 1.10 for v in p] for p in base]
    paired = stats.paired_ratio(fast, base)
    assert abs(paired.value - 1.10) < 1e-9 and paired.faster and paired.high - paired.low < 0.01
    # One process disagreeing widens the interval (it is resampled as a whole)
    odd = [fast[0], fast[1], [v * 0.9 for v in base[2]]]
    assert stats.paired_ratio(odd, base).low < 0.95
    with pytest.raises(ValueError):
        stats.paired_ratio([[1.0, 2.0]], [[1.0]])
