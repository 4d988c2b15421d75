import json
import subprocess
import sys

import pytest

from tfopt.errors import TfoptError
from tfopt.measure.benchmark import benchmark
from tfopt.measure.results import Settings


def test_benchmark_numbers_consistent(toy_tf1):
    """A/A: the same model twice. Throughputs are medians over rounds (a fresh process each);
    the ratio pairs each block with the baseline's beside it in the same process."""
    from tfopt.measure import stats

    settings = Settings(batch_size=4, num_iter=200, num_warmup=10, rounds=2)
    result = benchmark([toy_tf1, toy_tf1], settings)
    assert len(result.models) == 2
    for m in result.models:
        assert m.iterations == 200 and m.batch_size == 4
        assert m.latency_mean_ms > 0 and m.latency_p50_ms <= m.latency_p99_ms
        assert len(m.round_throughputs) == 2  # one per round, each in a fresh process
        assert m.throughput == stats.median(m.round_throughputs)
        assert [len(r) for r in m.block_rates] == [settings.blocks] * 2
    base, other = result.models
    assert base.ratio == 1.0 and base.verdict == "baseline"
    assert other.ratio == stats.paired_ratio(other.block_rates, base.block_rates).value
    assert other.interval().short() == other.against(base).short()
    assert other.ratio_low <= other.ratio <= other.ratio_high
    # A/A: near 1. (Two rounds on a shared machine cannot promise an interval containing 1.0:
    # process-to-process variance is 10-20% here; test_stats checks the interval logic.)
    assert 0.5 < other.ratio < 2.0
    env = result.environment
    assert env["tensorflow"] and env["batch_size"] == 4 and env["runtime"] in ("onednn", "eigen")
    assert env["intra_op_threads"] >= 1 and env["isa"]
    # a fresh process per round, which model loads first alternating: A B, then B A
    assert result.schedule == [(0, 0), (0, 1), (1, 1), (1, 0)]
    assert "oneDNN o" in result.table() and "CI" in result.table()


def test_benchmark_cli_json_csv_and_graph_def(toy_tf1, tmp_path):
    import tfopt

    pb = str(tmp_path / "m.pb")
    tfopt.optimize(toy_tf1, pb, format="pb")
    js, cs = tmp_path / "r.json", tmp_path / "r.csv"
    proc = subprocess.run([sys.executable, "-m", "tfopt.cli.main", "benchmark", toy_tf1, pb,
                           "--num-iter", "6", "--num-warmup", "1", "--rounds", "2", "-q",
                           "--json", str(js), "--csv", str(cs), "--disable-optimize",
                           "--chart", str(tmp_path / "t.png")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "ratio" in proc.stdout and "TensorFlow" in proc.stdout and "Grappler off" in proc.stdout
    data = json.loads(js.read_text())
    assert {"environment", "models"} <= set(data)
    assert {"throughput", "latency_p90_ms", "ratio", "ratio_low", "ratio_high", "verdict"} <= set(
        data["models"][0])
    m = data["models"][1]
    assert f"{m['ratio']:.3f}x" in proc.stdout  # the table shows what the JSON says
    assert cs.read_text().count("\n") == 3
    import matplotlib.image as mpimg

    assert mpimg.imread(str(tmp_path / "t.png")).shape[0] > 100


def test_benchmark_input_errors(toy_tf2, tmp_path):
    with pytest.raises(TfoptError, match="no such file"):
        benchmark([str(tmp_path / "missing")], Settings(num_iter=1))
    with pytest.raises(TfoptError, match="unknown signature"):
        benchmark([toy_tf2], Settings(num_iter=1, signature="nope"))
    with pytest.raises(TfoptError, match="--int-range"):  # ids beyond the vocabulary of 50
        benchmark([toy_tf2], Settings(num_iter=1, int_range=(1000, 2000)))


def test_pinned_runtime_is_the_one_that_ran(toy_tf1):
    for runtime in ("eigen", "onednn"):
        result = benchmark([toy_tf1], Settings(num_iter=2, num_warmup=0, rounds=1,
                                               runtime=runtime))
        assert result.environment["runtime"] == runtime


def test_benchmark_keras_file_against_its_optimized_export(keras_file, tmp_path):
    import tfopt

    out = str(tmp_path / "opt")
    tfopt.optimize(keras_file, out)
    result = benchmark([keras_file, out], Settings(num_iter=4, num_warmup=1, rounds=2))
    assert [m.iterations for m in result.models] == [4, 4]
    assert all(m.throughput > 0 for m in result.models)


def test_kernel_time_chart_has_no_empty_rows():
    """Op types under 1% of the kernel time are summed into one row, not drawn as rows too
    short to see; values are written on the bars (the chart is titled)."""
    import io

    import matplotlib.image as mpimg

    from tfopt.measure.profile import OpProfile, compare_png

    ops = [("_MklNativeFusedConv2D", 90.0, 50), ("AddV2", 8.0, 20)]
    tiny = [(f"Tiny{i}", 0.01, 1) for i in range(20)]
    before = OpProfile(98.2, ops + tiny)
    after = OpProfile(90.2, [("_MklNativeFusedConv2D", 85.0, 50), ("AddV2", 5.0, 10)] + tiny)
    small = mpimg.imread(io.BytesIO(compare_png(before, after)))
    few = mpimg.imread(io.BytesIO(compare_png(OpProfile(98.0, ops), OpProfile(90.0, ops[:1]))))
    # 2 op rows + one "other (20 op types)" row: one row taller than 2 rows, not 20 rows
    assert small.shape[0] - few.shape[0] <= 60
    # the table says what it left out, and its rows add up to the total
    from tfopt.measure.profile import compare_text

    text = compare_text(before, after, top=2)
    other = next(line for line in text.splitlines() if line.startswith("other 20 op types"))
    assert float(other.split()[4]) == pytest.approx(0.2)  # "other 20 op types" before ms


def test_dense_share_counts_every_runtimes_matmul_and_conv_kernels():
    from tfopt.measure.profile import OpProfile

    profile = OpProfile(10.0, [("_MklEinsum", 3.0, 4), ("_MklNativeFusedMatMul", 2.0, 3),
                               ("BatchMatMulV2", 1.0, 2), ("_FusedConv2D", 0.5, 1),
                               ("DepthwiseConv2dNative", 0.5, 1), ("_MklTranspose", 1.0, 2),
                               ("Mul", 2.0, 9)])
    assert profile.dense_share() == 0.7
    assert OpProfile(0.0, []).dense_share() == 0.0


def test_a_promising_undecided_candidate_is_timed_again(monkeypatch):
    """``--xla auto`` / ``--precision auto`` decide on one set of interleaved processes; a
    candidate ~1.2x faster whose interval still reaches 1.0 (disturbed blocks) gets as many
    again, and the decision is taken on all; a decided or unpromising one is not timed
    again."""
    from tfopt.measure import stats
    from tfopt.optimizer import speed

    promising = ([[100.0] * 5, [100.0] * 5],
                 [[118.0, 121, 60, 119, 122], [60.0, 119, 120, 62, 121]])
    runs = [promising, ([[100.0, 101, 99, 100, 100]] * 2, [[119.0, 120, 118, 121, 117]] * 2)]
    calls = []
    monkeypatch.setattr(speed, "time_interleaved",
                        lambda *a, **k: (calls.append(1), runs[len(calls) - 1])[1])
    first = stats.paired_ratio(runs[0][1], runs[0][0])
    assert not first.measurable and first.value >= speed.PROMISING
    (decided,) = speed.time_all_against("a", ["b"], "k", {}, decide=True)
    assert len(calls) == 2 and decided.ratio.faster and 1.15 < decided.ratio.value < 1.22

    calls.clear()
    runs[0] = ([[100.0] * 5] * 2, [[103.0, 101, 60, 104, 102]] * 2)  # 1.02x: not worth more
    (again,) = speed.time_all_against("a", ["b"], "k", {}, decide=True)
    assert not again.ratio.faster and len(calls) == 1
    calls.clear()
    runs[0] = promising  # the speed check (no decision to take) never times twice
    speed.time_all_against("a", ["b"], "k", {})
    assert len(calls) == 1


def test_interleaved_timing_pairs_blocks_of_two_models_in_each_process(tmp_path):
    """Both models in each process, alternating blocks: a model against itself is even, and
    every process contributes its blocks (the decision's statistics)."""
    import numpy as np
    import tensorflow as tf

    from tfopt.measure import interleaved as bm
    from tfopt.measure import stats

    class Small(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 64], tf.float32)])
        def serve(self, x):
            return {"y": tf.nn.relu(tf.matmul(x, tf.ones([64, 64])))}

    module = Small()
    path = str(tmp_path / "m")
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    said = []
    plain, other = bm.time_interleaved([path, path], "serving_default",
                                       {"x": np.ones((1, 64), np.float32)}, said.append,
                                       processes=2)
    assert [len(p) for p in plain] == [len(p) for p in other] == [bm.INTERLEAVED_BLOCKS] * 2
    assert len([s for s in said if "block pairs" in s]) == 2
    assert 0.7 < stats.paired_ratio(other, plain).value < 1.4


def test_a_slow_model_gets_fewer_blocks_within_the_budget():
    from tfopt.measure import interleaved as bm

    assert bm.blocks_for(0.01) == bm.INTERLEAVED_BLOCKS          # 15 s of quarter seconds
    assert bm.blocks_for(1.0) == 6                                 # 36 s
    assert bm.blocks_for(5.0) == bm.MIN_BLOCKS                     # never fewer than 4
    assert 2 * 3 * bm.blocks_for(1.0) * 1.0 <= bm.INTERLEAVED_BUDGET


def test_settings_that_cannot_run_are_refused_at_once(toy_tf1):
    """A negative thread count crashed TensorFlow (SIGABRT) in the child; zero rounds ran."""
    for settings, says in ((Settings(rounds=0), "--rounds"),
                           (Settings(intra_op_threads=-2), "--intra-op-threads"),
                           (Settings(round_seconds=-1.0), "--min-round-seconds")):
        with pytest.raises(TfoptError, match=says):
            benchmark([toy_tf1, toy_tf1], settings)
