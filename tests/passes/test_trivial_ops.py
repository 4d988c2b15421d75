"""trivial_ops: tests on hand-built graphs, numbers compared with the original."""

import tensorflow as tf

from tests.passes.helpers import check_same, context, counts, graph_of, rand
from tfopt.passes.cse import MergeDuplicates
from tfopt.passes.trivial_ops import RemoveTrivialOps


def test_trivial_ops_and_cse():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        a = tf.cast(x, tf.float32) * tf.constant(1.0)
        a = tf.transpose(a, [0, 1])
        a = tf.reshape(a, [2, 3])
        s1 = tf.math.sin(a + tf.constant(2.0))
        s2 = tf.math.sin(a + tf.constant(2.0))
        tf.add(s1, s2, name="out")

    gd = graph_of(build)
    ctx = context(["out"], ["x:0"])
    g = RemoveTrivialOps().run(gd, ctx).graph_def
    ops = counts(g)
    assert "Transpose" not in ops and "Reshape" not in ops and "Mul" not in ops
    merged = MergeDuplicates().run(g, ctx)
    assert merged.changed and counts(merged.graph_def)["Sin"] == 1
    feeds = {"x:0": rand(2, 3)}
    check_same(gd, merged.graph_def, feeds=feeds)
