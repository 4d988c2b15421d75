"""fuse_pad: tests on hand-built graphs, numbers compared with the original."""

import tensorflow as tf

from tests.passes.helpers import check_same, context, counts, graph_of, rand
from tfopt.passes.fuse_pad import FusePad


def test_fuse_pad_as_same_for_depthwise():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name="x")
        y = tf.pad(x, [[0, 0], [0, 1], [0, 1], [0, 0]])          # MobileNet's correct_pad
        y = tf.nn.depthwise_conv2d(y, tf.constant(rand(3, 3, 3, 1)), [1, 2, 2, 1], "VALID")
        z = tf.pad(x, [[0, 0], [2, 0], [2, 0], [0, 0]])          # not SAME: stays a Pad
        z = tf.nn.depthwise_conv2d(z, tf.constant(rand(3, 3, 3, 1)), [1, 2, 2, 1], "VALID")
        tf.concat([y, z], 3, name="out")

    gd = graph_of(build)
    result = FusePad().run(gd, context(["out"], ["x:0"]))
    ops = counts(result.graph_def)
    assert ops.get("Pad") == 1
    paddings = sorted(n.attr["padding"].s for n in result.graph_def.node
                      if n.op == "DepthwiseConv2dNative")
    assert paddings == [b"SAME", b"VALID"]
    check_same(gd, result.graph_def)
