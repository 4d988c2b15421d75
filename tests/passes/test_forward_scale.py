"""forward_scale: the pre-activation batch norm's scale moves into the next convs' weights."""

import numpy as np
import tensorflow as tf

from tests.passes.helpers import check_same, context, counts, graph_of, rand
from tfopt.passes.forward_scale import ForwardScale


def _positive(c, seed=0):
    return np.random.default_rng(seed).uniform(0.5, 1.5, (1, 1, 1, c)).astype(np.float32)


def _preact(x, c, seed=0, scale=None):
    """Keras' decomposed inference batch norm, then Relu: x * s + b -> relu."""
    s = _positive(c, seed) if scale is None else scale
    y = x * tf.constant(s)
    return tf.nn.relu(y + tf.constant(rand(1, 1, 1, c, seed=seed + 1)))


def test_resnet_v2_block_scale_into_both_convs_through_pad():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name="x")
        x = tf.nn.conv2d(x, tf.constant(rand(3, 3, 3, 4)), 1, "SAME")
        x = tf.identity(x + 1.0, name="residual")  # read by the pre-activation and the sum
        a = _preact(x, 4)
        main = tf.nn.conv2d(tf.pad(a, [[0, 0], [1, 1], [1, 1], [0, 0]]),
                            tf.constant(rand(3, 3, 4, 4, seed=5)), 2, "VALID")
        short = tf.nn.conv2d(a, tf.constant(rand(1, 1, 4, 4, seed=6)), 2, "VALID")
        tf.add(main + short, tf.nn.max_pool2d(x, 1, 2, "VALID"), name="out")

    gd = graph_of(build)
    before = counts(gd)
    result = ForwardScale().run(gd, context(["out"], ["x:0"]))
    after = counts(result.graph_def)
    assert result.changed and after.get("Mul", 0) == before["Mul"] - 1
    assert after["Conv2D"] == 3 and after["Relu"] == 1  # the shift stays, unscaled
    assert len(result.graph_def.node) == len(gd.node) - 1  # its constant rewritten in place
    check_same(gd, result.graph_def)


def test_densenet_transition_and_classifier_through_pooling():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name="x")
        x = tf.concat([x, tf.nn.conv2d(x, tf.constant(rand(3, 3, 3, 5)), 1, "SAME")], -1)
        t = tf.nn.conv2d(_preact(x, 8), tf.constant(rand(1, 1, 8, 6, seed=3)), 1, "VALID")
        t = tf.nn.avg_pool2d(t, 2, 2, "VALID")
        pooled = tf.reduce_mean(tf.nn.max_pool2d(_preact(t, 6, seed=7), 2, 1, "SAME"), [1, 2])
        tf.matmul(pooled, tf.constant(rand(6, 2, seed=9)), name="out")

    gd = graph_of(build)
    result = ForwardScale().run(gd, context(["out"], ["x:0"]))
    assert "Mul" not in counts(result.graph_def)
    assert "2 per-channel scales" in result.notes[0]
    check_same(gd, result.graph_def)


def test_shared_weights_are_copied_not_scaled_twice():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name="x")
        w = tf.constant(rand(1, 1, 3, 3, seed=4))
        y = tf.nn.conv2d(_preact(x, 3), w, 1, "VALID")  # w also read without the scale
        tf.add(y, tf.nn.conv2d(x, w, 1, "VALID"), name="out")

    gd = graph_of(build)
    result = ForwardScale().run(gd, context(["out"], ["x:0"]))
    assert "Mul" not in counts(result.graph_def)
    check_same(gd, result.graph_def)


def test_left_alone_where_the_identity_does_not_hold():
    def negative_scale():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name="x")
        s = _positive(3)
        s[..., 1] = -0.5  # relu(s*x) != s*relu(x) for s < 0
        tf.nn.conv2d(_preact(x, 3, scale=s), tf.constant(rand(1, 1, 3, 2)), 1, "VALID",
                     name="out")

    def relu6():  # not positively homogeneous: relu6(2x) != 2 relu6(x)
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name="x")
        y = tf.nn.relu6(x * tf.constant(_positive(3)))
        tf.nn.conv2d(y, tf.constant(rand(1, 1, 3, 2)), 1, "VALID", name="out")

    def also_read_by_a_concat():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name="x")
        a = _preact(x, 3)
        y = tf.nn.conv2d(a, tf.constant(rand(1, 1, 3, 2)), 1, "VALID")
        tf.concat([y, a], -1, name="out")

    def conv_weights_from_the_path():
        x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
        a = tf.nn.relu(x * tf.constant(_positive(3).reshape(3)))
        tf.matmul(tf.constant(rand(2, 3)), a, transpose_b=True, name="out")

    for build in (negative_scale, relu6, also_read_by_a_concat, conv_weights_from_the_path):
        gd = graph_of(build)
        result = ForwardScale().run(gd, context(["out"], ["x:0"]))
        assert not result.changed, build.__name__
