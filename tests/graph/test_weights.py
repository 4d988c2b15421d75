"""Large graphs: their matmul weights (and, past what one protobuf holds, the largest of the
rest) leave the graph where it crosses into TensorFlow, and the graph answers the same."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfopt.graph.weights import graph_bytes, split_weights, variables_from, weights_outside


def _graph():
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 16], name="x")
        rng = np.random.default_rng(0)
        f = tf.constant(rng.standard_normal((3, 3, 16, 32)).astype("f"), name="f")  # 18 KiB
        w1 = tf.constant(rng.standard_normal((32, 512)).astype("f"), name="w1")     # 64 KiB
        w2 = tf.constant(rng.standard_normal((512, 8)).astype("f"), name="w2")      # 16 KiB
        b = tf.constant(np.ones(8, "f"), name="b")
        # read as TF1 variables are once frozen: through an Identity (weights/read)
        h = tf.reduce_mean(tf.nn.conv2d(x, tf.identity(f, name="f/read"), 1, "SAME"), [1, 2])
        tf.identity(tf.matmul(tf.nn.relu(tf.matmul(h, w1)), w2) + b, name="y")
    return graph.as_graph_def()


def _answers(graph_def, feed: dict) -> np.ndarray:
    x = np.random.default_rng(1).standard_normal((3, 8, 8, 16)).astype("f")
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as sess:
        return sess.run("y:0", {"x:0": x, **feed})


def test_small_graphs_cross_whole():
    gd = _graph()
    small, values = split_weights(gd, limit=24 * graph_bytes(gd) + 24)
    assert small is gd and values == {}


def test_large_graphs_keep_matmul_weights_outside_and_conv_filters_in():
    """Past 1/24 of the limit (memory), the matmul weights leave and the convolution's
    filter stays a constant (oneDNN caches reordered filters of constants only); the reduction
    axes (int32) stay too."""
    gd = _graph()
    limit = 2 * graph_bytes(gd)
    assert variables_from(limit) < graph_bytes(gd)
    assert set(weights_outside(gd, limit)) == {"w1", "w2"}


def test_largest_weights_leave_until_half_the_limit():
    gd = _graph()
    total = graph_bytes(gd)
    # the matmul weights (80 KiB) leave; the rest (~19 KiB) is under half of 60 KB, so the
    # filter stays; under half of 30 KB it does not, and leaves too
    assert set(weights_outside(gd, 60_000)) == {"w1", "w2"}
    assert set(weights_outside(gd, 30_000)) == {"w1", "w2", "f"}
    small, values = split_weights(gd, 30_000)
    assert graph_bytes(small) < 15_000 < total and set(values) == {"w1", "w2", "f"}
    node = next(n for n in small.node if n.name == "w1")
    assert node.op == "Placeholder" and values["w1"].shape == (32, 512)
    # fed back, the split graph answers as the whole one (to rounding: oneDNN picks another
    # convolution algorithm for a filter it cannot see as constant)
    np.testing.assert_allclose(
        _answers(gd, {}), _answers(small, {f"{k}:0": v for k, v in values.items()}),
        rtol=1e-5, atol=1e-4)


def test_a_session_reads_split_weights_from_initialised_variables(monkeypatch):
    """open_session (profiling, in-process verification) on a graph whose weights left it:
    the variables are initialised once (the initializer used to be built eagerly: None, and
    every read failed with "Container localhost does not exist")."""
    from tfopt.model.signature import SignatureGraph, TensorInfo
    from tfopt.verify.runners import run_graph_def

    gd = _graph()
    sig = SignatureGraph("serving_default", gd, {"x": TensorInfo("x:0", tf.float32,
                                                                 (None, 8, 8, 16))},
                         {"y": TensorInfo("y:0", tf.float32, (None, 8))})
    x = np.random.default_rng(1).standard_normal((3, 8, 8, 16)).astype("f")
    expected = run_graph_def(sig, {"x": x})["y"]
    monkeypatch.setenv("TFOPT_MAX_GRAPH_MB", "0.001")  # every weight leaves the graph
    assert {"f", "w1", "w2"} <= set(split_weights(gd)[1])
    np.testing.assert_allclose(run_graph_def(sig, {"x": x})["y"], expected, rtol=1e-5, atol=1e-5)
