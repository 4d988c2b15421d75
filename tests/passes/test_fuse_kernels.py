"""fuse_kernels: tests on hand-built graphs, numbers compared with the original."""

import tensorflow as tf

from tests.passes.helpers import check_same, context, counts, graph_of, rand
from tfopt.graph.kernels import KernelSupport
from tfopt.passes.fuse_kernels import FuseKernels
from tfopt.passes.fuse_pad import FusePad
from tfopt.runtime import current_runtime


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
    check_same(gd, fused)
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
        check_same(gd, fused, feeds={"x:0": rand(2, 8, 8, 4, seed=9)})
        return sorted(tuple(s.decode() for s in n.attr["fused_ops"].list.s)
                      for n in fused.node if n.op == "_FusedConv2D")

    # The Eigen runtime (oneDNN off) has no [BiasAdd, Add, ...]: portable output never has it.
    # Nor does it pre-fuse the conv before the shortcut: the oneDNN runtime fuses conv + bias
    # + Add + Relu at load time, and a pre-fused [BiasAdd] would block that.
    assert kinds("portable") == [("BiasAdd",)]
    # Native output has it exactly when this machine's runtime runs it (oneDNN on).
    native = KernelSupport("native")
    if native.supports("_FusedConv2D", ("BiasAdd", "Add", "Relu")):
        assert current_runtime() == "onednn"
        assert kinds("native") == [("BiasAdd",), ("BiasAdd", "Add", "Relu")]
    else:
        assert kinds("native") == [("BiasAdd",)]


def test_grouped_conv_bias_is_left_as_an_add():
    """A grouped Conv2D keeps its bias as AddV2: Grappler would fuse Conv2D + BiasAdd + Relu,
    which the Eigen runtime (oneDNN off) cannot run for grouped convolutions."""
    def build(add_bias):
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 8], name="x")
        y = tf.nn.conv2d(x, tf.constant(rand(3, 3, 2, 8)), 1, "SAME")  # 4 groups of 2 channels
        tf.nn.relu(add_bias(y, tf.constant(rand(8, seed=1))), name="out")

    fused = FuseKernels().run(graph_of(lambda: build(tf.nn.bias_add)), context(["out"], ["x:0"]))
    ops = counts(fused.graph_def)
    assert "_FusedConv2D" not in ops and "BiasAdd" not in ops and ops["AddV2"] == 1
    assert any("AddV2" in note for note in fused.notes)
    feeds = {"x:0": rand(2, 8, 8, 8, seed=9)}
    check_same(graph_of(lambda: build(tf.add)), fused.graph_def, feeds=feeds)
