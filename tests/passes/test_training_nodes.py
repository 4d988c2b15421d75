"""training_nodes: tests on hand-built graphs, numbers compared with the original."""

import numpy as np
import tensorflow as tf

from tests.passes.helpers import context, counts, graph_of
from tfopt.passes.strip_unused import StripUnused
from tfopt.passes.training_nodes import RemoveTrainingNodes


def test_training_nodes_and_strip_unused():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
        w = tf.Variable(np.ones([3, 2], np.float32), name="w")
        y = tf.matmul(x, tf.constant(np.ones([3, 2], np.float32)), name="y")
        loss = tf.reduce_sum(y * w)
        tf.compat.v1.train.GradientDescentOptimizer(0.1).minimize(loss)
        tf.compat.v1.train.Saver([w])

    gd = graph_of(build)
    ctx = context(["y"], ["x:0"])
    before = counts(gd)
    assert before.get("SaveV2") and before.get("RestoreV2")
    result = RemoveTrainingNodes().run(gd, ctx)
    ops = counts(result.graph_def)
    assert "SaveV2" not in ops and "RestoreV2" not in ops
    assert not any(op.startswith("ResourceApply") for op in ops)
    stripped = StripUnused().run(result.graph_def, ctx).graph_def
    assert sorted(counts(stripped)) == ["Const", "MatMul", "Placeholder"]
