"""constant_fold, fold_batch_norm, trivial_ops, cse, fuse_pad, fuse_kernels."""

import numpy as np
import tensorflow as tf

from tests.passes.helpers import context, counts, graph_of, rand, run
from tfopt.kernels import KernelSupport
from tfopt.passes.constant_fold import ConstantFold
from tfopt.passes.cse import MergeDuplicates
from tfopt.passes.fold_batch_norm import FoldBatchNorm
from tfopt.passes.fuse_kernels import FuseKernels
from tfopt.passes.fuse_pad import FusePad
from tfopt.passes.trivial_ops import RemoveTrivialOps
from tfopt.runtime import current_runtime

X = {"x:0": rand(2, 8, 8, 3, seed=1)}


def _bn_params(c, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.uniform(0.5, 1.5, c).astype(np.float32), rng.normal(0, 0.3, c).astype(np.float32),
            rng.normal(0, 0.3, c).astype(np.float32), rng.uniform(0.5, 1.5, c).astype(np.float32))


def _check_same(before, after, fetch="out", feeds=X, rtol=1e-5):
    a = run(before, [fetch], feeds)[0]
    b = run(after, [fetch], feeds)[0]
    np.testing.assert_allclose(b, a, rtol=rtol, atol=rtol * np.abs(a).max())


def test_constant_fold_bn_arithmetic_but_not_random():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        var = tf.constant([1.0, 2.0, 3.0, 4.0])
        scale = tf.math.rsqrt(var + 1e-3) * tf.constant(2.0)
        noise = tf.random.uniform([4], name="noise")
        tf.add(x * scale, noise * 0.0, name="out")

    gd = graph_of(build)
    result = ConstantFold().run(gd, context(["out"], ["x:0"]))
    ops = counts(result.graph_def)
    assert "Rsqrt" not in ops
    assert ops.get("RandomUniform") == 1  # stateful: never folded
    feeds = {"x:0": rand(2, 4)}
    _check_same(gd, result.graph_def, feeds=feeds)


def test_fold_fused_batch_norm_into_conv():
    g, b, m, v = _bn_params(6)

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
    _check_same(gd, result.graph_def)


def test_fold_depthwise_multiplier_and_bias_before_bn():
    g, b, m, v = _bn_params(6, seed=3)

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
    _check_same(gd, result.graph_def)


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
    _check_same(gd, result.graph_def, feeds={"x:0": rand(3, 5)})


def test_no_fold_when_conv_output_is_shared():
    g, b, m, v = _bn_params(4)

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
    g, b, m, v = _bn_params(4, seed=7)

    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 4, 4, 3], name="x")
        y = tf.nn.conv2d_transpose(x, tf.constant(rand(3, 3, 4, 3)), [2, 8, 8, 4], 2)
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(y, g, b, m, v, is_training=False)
        tf.identity(y, name="out")

    gd = graph_of(build)
    result = FoldBatchNorm().run(gd, context(["out"], ["x:0"]))
    assert "FusedBatchNormV3" not in counts(result.graph_def)
    _check_same(gd, result.graph_def, feeds={"x:0": rand(2, 4, 4, 3)})


def test_fold_batch_norm_with_global_normalization():
    """The pre-2016 op: only GraphDefs with producer < 9 may hold it."""
    from tfopt.graph import make_const, set_attr

    g, b, m, v = _bn_params(4, seed=8)

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
    g, b, m, v = _bn_params(4)

    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 3, 8, 8], name="x")
        y = tf.nn.conv2d(x, tf.constant(rand(1, 1, 3, 4)), 1, "SAME", data_format="NCHW")
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(y, g, b, m, v, is_training=False,
                                                   data_format="NCHW")
        tf.identity(y, name="out")

    result = FoldBatchNorm().run(graph_of(build), context(["out"], ["x:0"]))
    bias = [n for n in result.graph_def.node if n.op == "BiasAdd"]
    assert len(bias) == 1 and bias[0].attr["data_format"].s == b"NCHW"


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
    _check_same(gd, merged.graph_def, feeds=feeds)


def test_cse_keeps_stateful_ops():
    def build():
        a = tf.random.uniform([3], seed=1)
        b = tf.random.uniform([3], seed=1)
        tf.add(a, b, name="out")

    result = MergeDuplicates().run(graph_of(build), context(["out"]))
    assert counts(result.graph_def)["RandomUniform"] == 2


def test_fuse_pad_and_kernels():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name="x")
        y = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
        y = tf.nn.conv2d(y, tf.constant(rand(3, 3, 3, 4)), 2, "VALID")
        y = tf.nn.relu6(tf.nn.bias_add(y, tf.constant(rand(4, seed=1))))
        h = tf.reshape(y, [-1, 4 * 4 * 4])
        h = tf.nn.bias_add(tf.matmul(h, tf.constant(rand(64, 5, seed=2))),
                           tf.constant(rand(5, seed=3)))
        tf.nn.relu(h, name="out")

    gd = graph_of(build)
    ctx = context(["out"], ["x:0"])
    padded = FusePad().run(gd, ctx).graph_def
    assert "Pad" not in counts(padded)
    fused = FuseKernels().run(padded, ctx).graph_def
    ops = counts(fused)
    assert ops.get("_FusedConv2D") == 1 and ops.get("_FusedMatMul") == 1
    assert "BiasAdd" not in ops and "Relu6" not in ops
    assert {n.name: n.op for n in fused.node}["out"] == "_FusedMatMul"  # name kept
    _check_same(gd, fused)
    generic = FuseKernels().run(padded, context(["out"], ["x:0"], target="generic"))
    assert not generic.changed


def test_fuse_residual_add():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 4], name="x")
        y = tf.nn.bias_add(tf.nn.conv2d(x, tf.constant(rand(3, 3, 4, 4)), 1, "SAME"),
                           tf.constant(rand(4, seed=1)))
        r = tf.nn.relu(tf.add(y, x))                               # shortcut: same shape
        z = tf.nn.bias_add(tf.nn.conv2d(r, tf.constant(rand(1, 1, 4, 4, seed=2)), 1, "SAME"),
                           tf.constant(rand(4, seed=3)))
        tf.add(z, tf.constant(rand(4, seed=4)), name="out")        # broadcast: not a shortcut

    gd = graph_of(build)

    def kinds(target):
        fused = FuseKernels().run(gd, context(["out"], ["x:0"], target=target)).graph_def
        _check_same(gd, fused, feeds={"x:0": rand(2, 8, 8, 4, seed=9)})
        return sorted(tuple(s.decode() for s in n.attr["fused_ops"].list.s)
                      for n in fused.node if n.op == "_FusedConv2D")

    # The Eigen runtime (oneDNN off) has no [BiasAdd, Add, ...]: portable output never has it.
    assert kinds("portable") == [("BiasAdd",), ("BiasAdd",)]
    # Native output has it exactly when this machine's runtime runs it (oneDNN on).
    native = KernelSupport("native")
    if native.supports("_FusedConv2D", ("BiasAdd", "Add", "Relu")):
        assert current_runtime() == "onednn"
        assert kinds("native") == [("BiasAdd",), ("BiasAdd", "Add", "Relu")]
    else:
        assert kinds("native") == [("BiasAdd",), ("BiasAdd",)]


def test_constant_fold_static_dims_of_dynamic_shape():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 6, 4], name="x")
        s = tf.shape(x)
        tf.reshape(x, [s[0], s[1] * s[2]], name="out")      # batch stays dynamic

    gd = graph_of(build)
    result = ConstantFold().run(gd, context(["out"], ["x:0"]))
    ops = counts(result.graph_def)
    assert ops.get("StridedSlice") == 1 and "Mul" not in ops  # only s[0] is left to run
    feeds = {"x:0": rand(3, 6, 4)}
    assert run(result.graph_def, ["out"], feeds)[0].shape == (3, 24)
    _check_same(gd, result.graph_def, feeds=feeds)


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
    _check_same(gd, result.graph_def)


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
