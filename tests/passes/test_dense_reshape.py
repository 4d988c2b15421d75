"""dense_reshape: Keras' dense-on-3D (Tensordot) gets the 2-D MatMul -> BiasAdd -> activation
form, with the element-wise ops moved ahead of the output Reshape."""

import numpy as np
import tensorflow as tf

from tests.passes.helpers import context, counts, graph_of, rand, run
from tfopt.passes.constant_fold import ConstantFold
from tfopt.passes.dense_reshape import DenseReshape
from tfopt.passes.fuse_kernels import FuseKernels
from tfopt.passes.strip_unused import StripUnused
from tfopt.passes.trivial_ops import RemoveTrivialOps


def gelu_tanh(y):
    """Keras 3's tanh-approximate GELU, op for op."""
    return (0.5 * y) * (1.0 + tf.tanh(0.7978845834732056 * (y + 0.044715 * tf.pow(y, 3.0))))


def ffn():
    """Two Keras-style dense layers on [batch, seq, 8] with a GELU between, then a residual."""
    x = tf.compat.v1.placeholder(tf.float32, [None, None, 8], name="x")
    h = tf.tensordot(x, tf.constant(rand(8, 16, seed=1)), axes=[[2], [0]])
    h = gelu_tanh(tf.nn.bias_add(h, tf.constant(rand(16, seed=2))))
    y = tf.tensordot(h, tf.constant(rand(16, 8, seed=3)), axes=[[2], [0]])
    tf.add(tf.nn.bias_add(y, tf.constant(rand(8, seed=4))), x, name="out")


def simplify(gd, ctx):
    """dense_reshape with the passes that share its fixed point in the pipeline: constant_fold
    and trivial_ops (tf.tensordot's identity Transpose), strip_unused (dead shape arithmetic)."""
    first = DenseReshape().run(gd, ctx)
    out, changed = first.graph_def, True
    while changed:
        changed = False
        for pass_ in (ConstantFold(), RemoveTrivialOps(), StripUnused(), DenseReshape()):
            result = pass_.run(out, ctx)
            out, changed = result.graph_def, changed or result.changed
    return first, out


def test_tensordot_dense_becomes_matmul_biasadd_gelu():
    gd = graph_of(ffn)
    ctx = context(["out"], ["x:0"])
    result, out = simplify(gd, ctx)
    assert result.notes == ["2 dense inputs flattened with a constant [-1, C] shape",
                            "10 element-wise ops moved ahead of a dense layer's output Reshape"]
    ops = counts(out)
    # before: Shape/GatherV2/Prod/Pack per dense and four reshapes; after: one flatten, one
    # unflatten of the result and one of the GELU (whose Shape the second dense still reads)
    assert "Prod" not in ops and "Pack" not in ops
    assert ops["Reshape"] == 3 and ops["MatMul"] == 2
    nodes = {n.name: n for n in out.node}
    for bias in (n for n in out.node if n.op == "BiasAdd"):
        assert nodes[bias.input[0]].op == "MatMul"  # adjacent: the runtimes fuse them
    for shape in [(2, 5, 8), (1, 3, 8), (3, 1, 8)]:  # batch and sequence stay dynamic
        feeds = {"x:0": rand(*shape, seed=5)}
        want = run(gd, ["out"], feeds)[0]
        np.testing.assert_allclose(run(out, ["out"], feeds)[0], want, rtol=1e-5,
                                   atol=1e-5 * np.abs(want).max())
    assert not DenseReshape().run(out, ctx).changed


def test_head_split_bias_is_flattened():
    """A [B, S, 4, 2] reshape with a per-head bias [4, 2] (Keras EinsumDense's form): the
    bias broadcasts along the flattened trailing dims only, so it moves as an [8] vector."""
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8], name="x")
        y = tf.matmul(x, tf.constant(rand(8, 8, seed=1)))
        y = tf.reshape(y, [-1, 3, 4, 2])
        tf.nn.relu(y + tf.constant(rand(4, 2, seed=2)), name="out")

    gd = graph_of(build)
    result = DenseReshape().run(gd, context(["out"], ["x:0"]))
    assert result.notes == ["1 element-wise ops moved ahead of a dense layer's output Reshape"]
    feeds = {"x:0": rand(6, 8, seed=3)}
    np.testing.assert_allclose(run(result.graph_def, ["out"], feeds)[0],
                               run(gd, ["out"], feeds)[0], rtol=1e-6)


def test_operand_varying_along_the_sequence_stays_after_the_reshape():
    """A position table [1, 3, 8] differs per token: it cannot be applied to the flat rows."""
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8], name="x")
        y = tf.reshape(tf.matmul(x, tf.constant(rand(8, 8, seed=1))), [-1, 3, 8])
        tf.add(y, tf.constant(rand(1, 3, 8, seed=2)), name="out")

    result = DenseReshape().run(graph_of(build), context(["out"], ["x:0"]))
    assert not result.changed


def test_portable_fusion_leaves_a_gelu_matmul_to_the_runtime():
    """MatMul + BiasAdd read several times (a GELU's start) is not pre-fused: the oneDNN
    runtime fuses MatMul + BiasAdd + GELU at load time, which [BiasAdd] would block; the
    second dense (bias read once) is fused."""
    ctx = context(["out"], ["x:0"])
    _, flat = simplify(graph_of(ffn), ctx)
    fused = FuseKernels().run(flat, ctx).graph_def
    kinds = sorted((n.op, len([c for c in fused.node if n.name in c.input]))
                   for n in fused.node if n.op in ("MatMul", "_FusedMatMul"))
    assert [op for op, _ in kinds] == ["MatMul", "_FusedMatMul"]
