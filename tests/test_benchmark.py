import json
import subprocess
import sys

import pytest

from tfopt.benchmark import Settings, benchmark
from tfopt.errors import TfoptError


def test_benchmark_numbers_consistent(toy_tf1):
    settings = Settings(batch_size=4, num_iter=12, num_warmup=2, rounds=3)
    result = benchmark([toy_tf1, toy_tf1], settings)
    assert len(result.models) == 2
    for m in result.models:
        assert m.iterations == 12 and m.batch_size == 4
        assert m.throughput > 0 and m.latency_mean_ms > 0
        assert m.latency_p50_ms <= m.latency_p99_ms
        assert m.throughput == pytest.approx(4 / (m.latency_mean_ms / 1e3), rel=1e-6)
        assert len(m.round_throughputs) == 3  # one per interleaved round
    assert result.models[0].ratio == 1.0
    assert 0.2 < result.models[1].ratio < 5  # a model against itself: near 1 on a noisy host
    assert result.environment["tensorflow"] and result.environment["batch_size"] == 4


def test_benchmark_cli_json_csv_and_graph_def(toy_tf1, tmp_path):
    import tfopt

    pb = str(tmp_path / "m.pb")
    tfopt.optimize(toy_tf1, pb, fmt="pb")
    js, cs = tmp_path / "r.json", tmp_path / "r.csv"
    proc = subprocess.run([sys.executable, "-m", "tfopt.cli", "benchmark", toy_tf1, pb,
                           "--num-iter", "6", "--num-warmup", "1", "--rounds", "2", "-q",
                           "--json", str(js), "--csv", str(cs), "--disable-optimize",
                           "--chart", str(tmp_path / "t.png")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "ratio" in proc.stdout and "TensorFlow" in proc.stdout and "Grappler off" in proc.stdout
    data = json.loads(js.read_text())
    assert {"environment", "models"} <= set(data)
    assert {"throughput", "latency_p90_ms", "ratio", "ratio_min", "ratio_max"} <= set(
        data["models"][0])
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


def test_interleaving_order(toy_tf1):
    result = benchmark([toy_tf1, toy_tf1, toy_tf1], Settings(num_iter=3, num_warmup=0, rounds=3))
    assert result.schedule == [(r, m) for r in range(3) for m in range(3)]  # A B C A B C ...


def test_benchmark_keras_file_against_its_optimized_export(keras_file, tmp_path):
    import tfopt

    out = str(tmp_path / "opt")
    tfopt.optimize(keras_file, out)
    result = benchmark([keras_file, out], Settings(num_iter=4, num_warmup=1, rounds=2))
    assert [m.iterations for m in result.models] == [4, 4]
    assert all(m.throughput > 0 for m in result.models)
