"""squeeze_sink: Conv1D's Squeeze moves below bias, batch norm and activation, then cancels."""

import tensorflow as tf

from tests.passes.helpers import check_same, context, counts, graph_of, rand
from tfopt.passes.constant_fold import ConstantFold
from tfopt.passes.fold_batch_norm import FoldBatchNorm
from tfopt.passes.squeeze_sink import SqueezeSink


def _conv1d_bn_relu(x, seed):
    y = tf.nn.conv1d(x, tf.constant(rand(3, 4, 4, seed=seed)), 1, "SAME")  # Expand/Conv2D/Squeeze
    y = tf.nn.bias_add(y, tf.constant(rand(4, seed=seed + 1)))
    y = y * tf.constant(rand(4, seed=seed + 2)) + tf.constant(rand(4, seed=seed + 3))  # a BN
    return tf.nn.relu(y)


def test_conv1d_squeeze_sinks_and_cancels():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 10, 4], name="x")
        tf.identity(_conv1d_bn_relu(_conv1d_bn_relu(x, 0), 10), name="out")

    gd = graph_of(build)
    assert counts(gd)["Squeeze"] == 2 and counts(gd)["ExpandDims"] == 4  # 2 of the filters
    ctx = context(["out"], ["x:0"])
    result = SqueezeSink().run(gd, ctx)
    assert result.notes == ["8 Squeezes moved below element-wise ops",
                            "1 Squeeze -> ExpandDims pairs removed"]
    ops = counts(result.graph_def)
    assert ops["Squeeze"] == 1 and ops["ExpandDims"] == 3
    by_name = {n.name: n for n in result.graph_def.node}
    assert by_name[by_name["out"].input[0]].op == "Squeeze"  # the last op before the output
    feeds = {"x:0": rand(2, 10, 4, seed=5)}
    check_same(gd, result.graph_def, feeds=feeds)
    filters_folded = ConstantFold().run(result.graph_def, ctx).graph_def  # ExpandDims(w)
    folded = FoldBatchNorm().run(filters_folded, ctx).graph_def
    assert "Mul" not in counts(folded) and "AddV2" not in counts(folded)  # BNs reach the conv
    check_same(gd, folded, feeds=feeds)


def test_squeeze_of_channels_or_non_constant_operands_stay():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 5, 1], name="x")
        a = tf.squeeze(x, [2]) * tf.constant(rand(5))          # the channel axis goes away
        y = tf.compat.v1.placeholder(tf.float32, [None, 1, 5], name="y")
        b = tf.squeeze(y, [1]) * a                              # the other operand is data
        tf.identity(b, name="out")

    assert not SqueezeSink().run(graph_of(build), context(["out"], ["x:0", "y:0"])).changed
