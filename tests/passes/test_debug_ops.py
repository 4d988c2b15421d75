"""debug_ops: tests on hand-built graphs, numbers compared with the original."""

import numpy as np
import tensorflow as tf

from tests.passes.helpers import context, counts, graph_of, rand, run
from tfopt.passes.debug_ops import RemoveDebugOps


def _debug_graph():
    x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
    h = tf.debugging.check_numerics(x * 2.0, "bad", name="check")
    assert_op = tf.debugging.Assert(tf.reduce_all(h < 100.0), [h], name="guard")
    printed = tf.raw_ops.Print(input=h, data=[h], message="h=", name="print")
    with tf.control_dependencies([assert_op]):
        tf.identity(printed + 1.0, name="out")


def test_debug_ops_removed_numbers_unchanged():
    gd = graph_of(_debug_graph)
    ctx = context(["out"], ["x:0"])
    result = RemoveDebugOps().run(gd, ctx)
    ops = counts(result.graph_def)
    assert result.changed
    assert "CheckNumerics" not in ops and "Assert" not in ops and "Print" not in ops
    feed = {"x:0": rand(2, 3)}
    np.testing.assert_allclose(run(result.graph_def, ["out"], feed)[0], run(gd, ["out"], feed)[0])
