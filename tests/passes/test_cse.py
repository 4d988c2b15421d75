"""cse: tests on hand-built graphs, numbers compared with the original."""

import numpy as np
import tensorflow as tf

from tests.passes.helpers import context, counts, graph_of, run
from tfopt.passes.cse import MergeDuplicates


def test_cse_keeps_stateful_ops():
    def build():
        a = tf.random.uniform([3], seed=1)
        b = tf.random.uniform([3], seed=1)
        tf.add(a, b, name="out")

    result = MergeDuplicates().run(graph_of(build), context(["out"]))
    assert counts(result.graph_def)["RandomUniform"] == 2


def test_cse_keeps_output_ports():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [4], name="x")
        a0, a1 = tf.split(x, 2, name="split_a")
        b0, b1 = tf.split(x, 2, name="split_b")            # duplicate of split_a
        tf.concat([a1 * 10.0, b1, b0], 0, name="out")      # reads port 1 of both, port 0 of b

    gd = graph_of(build)
    result = MergeDuplicates().run(gd, context(["out"], ["x:0"]))
    assert counts(result.graph_def)["Split"] == 1
    feed = {"x:0": np.array([1, 2, 3, 4], np.float32)}
    np.testing.assert_array_equal(run(result.graph_def, ["out"], feed)[0],
                                  [30, 40, 3, 4, 1, 2])
