"""fold_batch_norm: tests on hand-built graphs, numbers compared with the original."""

import numpy as np
import tensorflow as tf

from tests.passes.helpers import bn_params, check_same, context, counts, graph_of, rand, run
from tfopt.passes.fold_batch_norm import FoldBatchNorm


def test_fold_fused_batch_norm_into_conv():
    g, b, m, v = bn_params(6)

    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name="x")
        y = tf.nn.conv2d(x, tf.constant(rand(3, 3, 3, 6)), 1, "SAME")
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(y, g, b, m, v, is_training=False,
                                                   name="bn")
        tf.nn.relu6(y, name="out")

    gd = graph_of(build)
    result = FoldBatchNorm().run(gd, context(["out"], ["x:0"]))
    ops = counts(result.graph_def)
    assert "FusedBatchNormV3" not in ops and ops["BiasAdd"] == 1
    assert {n.name: n.op for n in result.graph_def.node}["bn"] == "BiasAdd"
    check_same(gd, result.graph_def)


def test_fold_depthwise_multiplier_and_bias_before_bn():
    g, b, m, v = bn_params(6, seed=3)

    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name="x")
        y = tf.nn.depthwise_conv2d(x, tf.constant(rand(3, 3, 3, 2)), [1, 1, 1, 1], "SAME")
        y = tf.nn.bias_add(y, tf.constant(rand(6, seed=4)))
        y = tf.raw_ops.FusedBatchNorm(x=y, scale=g, offset=b, mean=m, variance=v,
                                      is_training=False).y
        tf.identity(y, name="out")

    gd = graph_of(build)
    result = FoldBatchNorm().run(gd, context(["out"], ["x:0"]))
    ops = counts(result.graph_def)
    assert "FusedBatchNorm" not in ops and ops["BiasAdd"] == 1
    check_same(gd, result.graph_def)


def test_fold_decomposed_keras_style_bn_after_matmul():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 5], name="x")
        y = tf.matmul(x, tf.constant(rand(5, 4)))
        y = tf.add(y, tf.constant(rand(4, seed=2)))           # Dense bias as Add
        y = y * tf.constant(rand(4, seed=3))                   # BN scale, folded
        tf.add(y, tf.constant(rand(4, seed=5)), name="out")   # BN shift

    gd = graph_of(build)
    result = FoldBatchNorm().run(gd, context(["out"], ["x:0"]))
    ops = counts(result.graph_def)
    assert "Mul" not in ops and ops.get("BiasAdd") == 1 and "AddV2" not in ops
    check_same(gd, result.graph_def, feeds={"x:0": rand(3, 5)})


def test_no_fold_when_conv_output_is_shared():
    g, b, m, v = bn_params(4)

    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name="x")
        conv = tf.nn.conv2d(x, tf.constant(rand(1, 1, 3, 4)), 1, "SAME", name="conv")
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(conv, g, b, m, v, is_training=False)
        tf.add(y, conv, name="out")

    gd = graph_of(build)
    result = FoldBatchNorm().run(gd, context(["out"], ["x:0"]))
    assert not result.changed
    assert counts(result.graph_def)["FusedBatchNormV3"] == 1


def test_fold_batch_norm_after_conv2d_backprop_input():
    g, b, m, v = bn_params(4, seed=7)

    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 4, 4, 3], name="x")
        y = tf.nn.conv2d_transpose(x, tf.constant(rand(3, 3, 4, 3)), [2, 8, 8, 4], 2)
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(y, g, b, m, v, is_training=False)
        tf.identity(y, name="out")

    gd = graph_of(build)
    result = FoldBatchNorm().run(gd, context(["out"], ["x:0"]))
    assert "FusedBatchNormV3" not in counts(result.graph_def)
    check_same(gd, result.graph_def, feeds={"x:0": rand(2, 4, 4, 3)})


def test_fold_batch_norm_with_global_normalization():
    """The pre-2016 op: only GraphDefs with producer < 9 may hold it."""
    from tfopt.graph.nodes import make_const, set_attr

    g, b, m, v = bn_params(4, seed=8)

    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name="x")
        tf.nn.conv2d(x, tf.constant(rand(1, 1, 3, 4)), 1, "SAME", name="conv")

    gd = graph_of(build)
    gd.versions.producer = 8
    for name, value in (("m", m), ("v", v), ("beta", b), ("gamma", g)):
        gd.node.append(make_const(name, value))
    bn = gd.node.add(name="out", op="BatchNormWithGlobalNormalization")
    bn.input.extend(["conv", "m", "v", "beta", "gamma"])
    set_attr(bn, "T", tf.float32)
    set_attr(bn, "variance_epsilon", 0.001)
    set_attr(bn, "scale_after_normalization", True)
    result = FoldBatchNorm().run(gd, context(["out"], ["x:0"]))
    assert "BatchNormWithGlobalNormalization" not in counts(result.graph_def)
    x = rand(2, 8, 8, 3)
    conv = run(gd, ["conv"], {"x:0": x})[0]
    expected = (conv - m) / np.sqrt(v + 1e-3) * g + b
    got = run(result.graph_def, ["out"], {"x:0": x})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_nchw_structure():
    g, b, m, v = bn_params(4)

    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 3, 8, 8], name="x")
        y = tf.nn.conv2d(x, tf.constant(rand(1, 1, 3, 4)), 1, "SAME", data_format="NCHW")
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(y, g, b, m, v, is_training=False,
                                                   data_format="NCHW")
        tf.identity(y, name="out")

    result = FoldBatchNorm().run(graph_of(build), context(["out"], ["x:0"]))
    bias = [n for n in result.graph_def.node if n.op == "BiasAdd"]
    assert len(bias) == 1 and bias[0].attr["data_format"].s == b"NCHW"
