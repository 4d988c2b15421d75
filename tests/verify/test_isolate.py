"""A graph that aborts TensorFlow natively becomes an ordinary error, not a dead process; the
child runs under the CPU runtime it is asked for."""

import numpy as np
import pytest
import tensorflow as tf

from tfopt.model.saver import write_saved_model
from tfopt.model.signature import SignatureGraph, TensorInfo
from tfopt.verify import isolate


def _aborting_signature() -> SignatureGraph:
    """``y = x + 1`` after TensorFlow's own ``Abort`` op: SIGABRT on every machine and runtime."""
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
        abort = tf.raw_ops.Abort(error_msg="tfopt test abort", name="abort")
        with tf.control_dependencies([abort]):
            tf.identity(x + 1.0, name="y")
    return SignatureGraph("serving_default", g.as_graph_def(),
                          {"x": TensorInfo("x:0", tf.float32, (None, 3))},
                          {"y": TensorInfo("y:0", tf.float32, (None, 3))})


def test_native_abort_is_reported(tmp_path):
    sig = _aborting_signature()
    feeds = {"x": np.ones((1, 3), np.float32)}
    with pytest.raises(isolate.ChildFailed, match="crashed \\(SIGABRT\\)"):
        isolate.run_graph_def(sig, feeds)
    path = str(tmp_path / "m")
    write_saved_model({"serving_default": sig}, path)
    runs = isolate.run_saved_model_under(path, {"serving_default": feeds}, ["onednn", "eigen"])
    for runtime, label in (("onednn", "oneDNN on"), ("eigen", "oneDNN off")):
        assert isinstance(runs[runtime], isolate.ChildFailed)
        assert "SIGABRT" in str(runs[runtime]) and label in str(runs[runtime])


def test_probe_knows_what_each_runtime_runs(tmp_path, monkeypatch):
    """Both runtimes are probed (a child with TF_ENABLE_ONEDNN_OPTS pinned for the one this
    process is not), whatever this machine's default is."""
    from tfopt.graph.fusions import Fusion
    from tfopt.graph.probe import probe_runtimes

    monkeypatch.setenv("TFOPT_CACHE_DIR", str(tmp_path))  # a real probe, not the cache
    support = probe_runtimes()
    assert len(list(tmp_path.iterdir())) == 2
    # TensorFlow 2.21 (pinned): the Eigen runtime has no [BiasAdd, Add, Relu] conv fusion,
    # oneDNN has; the plain [BiasAdd, Relu] form runs under both.

    assert Fusion("_FusedConv2D", ("BiasAdd", "Relu")) in support["eigen"] & support["onednn"]
    assert Fusion("_FusedConv2D", ("BiasAdd", "Add", "Relu")) in support["onednn"]
    assert Fusion("_FusedConv2D", ("BiasAdd", "Add", "Relu")) not in support["eigen"]


def test_strings_round_trip(two_signatures):
    got = isolate.run_saved_model(two_signatures, "lengths",
                                  {"words": np.array([b"ab", b"abcd"], dtype=object)})
    np.testing.assert_array_equal(got["n"], [4, 8])


def test_benchmark_survives_a_crashing_model(tmp_path):
    from tfopt.errors import TfoptError
    from tfopt.measure.benchmark import benchmark
    from tfopt.measure.results import Settings

    path = str(tmp_path / "crash")
    write_saved_model({"serving_default": _aborting_signature()}, path)
    with pytest.raises(TfoptError, match="process died"):
        benchmark([path], Settings(num_iter=2, num_warmup=1))


def test_a_child_killed_from_outside_is_not_taken_for_a_wrong_answer():
    """SIGKILL (the out-of-memory killer) says nothing about the model: it is marked, so
    verification stops with that reason instead of blaming passes one child run at a time."""
    from tfopt.process import failure as _failure

    killed = _failure(-9, "", "eigen")
    assert killed.killed and "lack of memory" in str(killed) and "oneDNN off" in str(killed)
    crashed = _failure(-6, "F0000 00:00 x.cc:1] Check failed: dims == 4", None)
    assert not crashed.killed and "Check failed: dims == 4" in str(crashed)
