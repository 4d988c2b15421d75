"""Graphs too large for one protobuf: the largest weights leave the graph where it crosses into
TensorFlow, and the graph answers the same."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfopt.graph.weights import graph_bytes, split_weights, weights_outside


def _graph():
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 64], name="x")
        rng = np.random.default_rng(0)
        w1 = tf.constant(rng.standard_normal((64, 256)).astype("f"), name="w1")  # 64 KiB
        w2 = tf.constant(rng.standard_normal((256, 8)).astype("f"), name="w2")   # 8 KiB
        b = tf.constant(np.ones(8, "f"), name="b")
        tf.identity(tf.matmul(tf.nn.relu(tf.matmul(x, w1)), w2) + b, name="y")
    return graph.as_graph_def()


def test_small_graphs_cross_whole():
    gd = _graph()
    small, values = split_weights(gd, limit=graph_bytes(gd) + 1)
    assert small is gd and values == {}


def test_largest_weights_leave_until_half_the_limit():
    gd = _graph()
    limit = 40_000  # w1 (64 KiB) must go; then the rest (~9 KiB) is under 20 KB
    assert set(weights_outside(gd, limit)) == {"w1"}
    small, values = split_weights(gd, limit)
    assert graph_bytes(small) < limit // 2 and set(values) == {"w1"}
    node = next(n for n in small.node if n.name == "w1")
    assert node.op == "Placeholder" and values["w1"].shape == (64, 256)
    # fed back, the split graph answers exactly as the whole one
    x = np.random.default_rng(1).standard_normal((3, 64)).astype("f")
    outs = []
    for graph_def, feed in ((gd, {}), (small, {"w1:0": values["w1"]})):
        graph = tf.Graph()
        with graph.as_default():
            tf.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=graph) as sess:
            outs.append(sess.run("y:0", {"x:0": x, **feed}))
    np.testing.assert_array_equal(outs[0], outs[1])
