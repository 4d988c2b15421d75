"""grouped_conv: Conv2D with one input channel per group becomes DepthwiseConv2dNative."""

import numpy as np
import pytest
import tensorflow as tf

from tests.passes.helpers import context, counts, graph_of, rand, run
from tfopt.passes.grouped_conv import GroupedConvToDepthwise


@pytest.mark.parametrize("multiplier,strides,padding", [(1, 1, "SAME"), (2, 2, "VALID")])
def test_grouped_conv_becomes_depthwise(multiplier, strides, padding):
    channels = 6

    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 9, 9, channels], name="x")
        w = tf.constant(rand(7, 7, 1, channels * multiplier, seed=3))  # groups = channels
        tf.nn.conv2d(x, w, strides, padding, name="out")

    gd = graph_of(build)
    result = GroupedConvToDepthwise().run(gd, context(["out"], ["x:0"]))
    assert result.notes == ["1 grouped convolutions rewritten as depthwise"]
    ops = counts(result.graph_def)
    assert ops.get("DepthwiseConv2dNative") == 1 and "Conv2D" not in ops
    feeds = {"x:0": rand(2, 9, 9, channels, seed=4)}
    want = run(gd, ["out"], feeds)[0]
    np.testing.assert_allclose(run(result.graph_def, ["out"], feeds)[0], want, rtol=1e-4,
                               atol=1e-4 * np.abs(want).max())


def test_ordinary_and_multi_channel_groups_stay():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 4], name="x")
        a = tf.nn.conv2d(x, tf.constant(rand(3, 3, 4, 4)), 1, "SAME")       # groups = 1
        b = tf.nn.conv2d(x, tf.constant(rand(3, 3, 2, 4, seed=1)), 1, "SAME")  # 2 per group
        tf.add(a, b, name="out")

    result = GroupedConvToDepthwise().run(graph_of(build), context(["out"], ["x:0"]))
    assert not result.changed
