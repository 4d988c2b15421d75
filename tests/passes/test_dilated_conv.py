"""dilated_conv: TF1's SpaceToBatchND -> Conv2D -> BatchToSpaceND becomes one dilated Conv2D."""

import pytest
import tensorflow as tf

from tests.passes.helpers import bn_params, check_same, context, counts, graph_of, rand
from tfopt.passes.constant_fold import ConstantFold
from tfopt.passes.dilated_conv import DilatedConv
from tfopt.passes.fold_batch_norm import FoldBatchNorm


def _dilations(graph_def):
    return [(list(n.attr["dilations"].list.i), n.attr["padding"].s.decode())
            for n in graph_def.node if n.op == "Conv2D"]


@pytest.mark.parametrize("rate,padding,size", [(2, "SAME", 9), (3, "VALID", 16), (4, "SAME", 13)])
def test_atrous_conv_becomes_one_dilated_conv(rate, padding, size):
    """Odd sizes make TensorFlow pad for divisibility and crop it off again."""
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, size, size, 3], name="x")
        y = tf.nn.atrous_conv2d(x, tf.constant(rand(3, 3, 3, 4)), rate, padding)
        scale, offset, mean, var = bn_params(4)
        y = tf.compat.v1.nn.fused_batch_norm(y, scale, offset, mean, var, is_training=False)[0]
        tf.nn.relu(y, name="out")

    gd = graph_of(build)
    assert counts(gd).get("SpaceToBatchND") == 1
    ctx = context(["out"], ["x:0"])
    result = DilatedConv().run(gd, ctx)
    assert result.notes == ["1 space-to-batch convolutions written as dilated Conv2D"]
    ops = counts(result.graph_def)
    assert "SpaceToBatchND" not in ops and "BatchToSpaceND" not in ops
    assert _dilations(result.graph_def) == [([1, rate, rate, 1], padding)]
    feeds = {"x:0": rand(2, size, size, 3, seed=5)}
    check_same(gd, result.graph_def, feeds=feeds)
    folded = FoldBatchNorm().run(result.graph_def, ctx).graph_def  # the BN now reads the conv
    assert not any(op.startswith("FusedBatchNorm") for op in counts(folded))
    check_same(gd, folded, feeds=feeds)


def test_other_space_to_batch_uses_stay():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name="x")
        s2b = tf.space_to_batch_nd(x, [2, 2], [[0, 0], [0, 0]])
        y = tf.nn.conv2d(s2b, tf.constant(rand(3, 3, 3, 3)), 1, "SAME")  # SAME inside: not atrous
        y = tf.batch_to_space(y, [2, 2], [[0, 0], [0, 0]])
        z = tf.nn.conv2d(s2b, tf.constant(rand(1, 1, 3, 3, seed=1)), 1, "VALID")  # read twice
        z = tf.batch_to_space(z, [2, 2], [[0, 0], [0, 0]])
        tf.add(y, z, name="out")

    assert not DilatedConv().run(graph_of(build), context(["out"], ["x:0"])).changed


@pytest.mark.parametrize("rate,padding", [(2, "SAME"), (4, "VALID")])
def test_dilated_conv1d_becomes_one_dilated_conv(rate, padding):
    """Conv1D's form: SpaceToBatchND -> ExpandDims -> Conv2D -> Squeeze -> BatchToSpaceND."""
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 21, 3], name="x")
        y = tf.nn.convolution(x, tf.constant(rand(3, 3, 4)), padding=padding, dilations=[rate])
        tf.nn.relu(y, name="out")

    gd = graph_of(build)
    assert counts(gd).get("SpaceToBatchND") == 1 and counts(gd).get("Squeeze") == 1
    result = DilatedConv().run(ConstantFold().run(gd, context(["out"], ["x:0"])).graph_def,
                               context(["out"], ["x:0"]))
    assert result.notes == ["1 space-to-batch convolutions written as dilated Conv2D"]
    ops = counts(result.graph_def)
    assert "SpaceToBatchND" not in ops and "BatchToSpaceND" not in ops and ops["Squeeze"] == 1
    assert _dilations(result.graph_def) == [([1, 1, rate, 1], padding)]
    check_same(gd, result.graph_def, feeds={"x:0": rand(2, 21, 3, seed=6)})
