"""unfuse_kernels: fused kernels an input brings, split where the target does not run them."""

import tensorflow as tf

from tests.passes.helpers import check_same, context, counts, graph_of, rand
from tfopt.graph.nodes import set_attr
from tfopt.passes.fuse_kernels import FuseKernels
from tfopt.passes.unfuse_kernels import UnfuseKernels


def _plain():
    x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name="x")
    y = tf.nn.conv2d(x, tf.constant(rand(3, 3, 3, 4)), 1, "SAME")
    y = tf.nn.relu(tf.nn.bias_add(y, tf.constant(rand(4, seed=1))))
    h = tf.matmul(tf.reduce_mean(y, [1, 2]), tf.constant(rand(4, 2, seed=2)))
    tf.nn.bias_add(h, tf.constant(rand(2, seed=3)), name="out")


def test_generic_target_splits_every_fused_kernel_and_answers_the_same():
    plain = graph_of(_plain)
    fused = FuseKernels().run(plain, context(["out"], ["x:0"], "portable")).graph_def
    assert counts(fused)["_FusedConv2D"] == 1 and counts(fused)["_FusedMatMul"] == 1
    result = UnfuseKernels().run(fused, context(["out"], ["x:0"], "generic"))
    ops = counts(result.graph_def)
    assert not any(op.startswith("_Fused") for op in ops), ops
    assert ops["Conv2D"] == 1 and ops["MatMul"] == 1 and ops["BiasAdd"] == 2 and ops["Relu"] == 1
    assert {n.op for n in result.graph_def.node if n.name == "out"} == {"BiasAdd"}
    check_same(fused, result.graph_def)
    # a form both runtimes run stays fused for the portable target
    assert not UnfuseKernels().run(fused, context(["out"], ["x:0"], "portable")).changed


def test_a_oneDNN_only_residual_form_is_split_for_the_portable_target():
    """_FusedConv2D[BiasAdd, Add, Relu] fails at its first call without oneDNN: split, it
    answers as the chain it stands for (compared with that chain, never run fused here)."""
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name="x")
        y = tf.nn.bias_add(tf.nn.conv2d(x, tf.constant(rand(1, 1, 3, 3)), 1, "SAME"),
                           tf.constant(rand(3, seed=1)))
        tf.nn.relu(y + x, name="out")

    plain = graph_of(build)
    fused = FuseKernels().run(plain, context(["out"], ["x:0"], "generic")).graph_def
    conv = next(n for n in fused.node if n.op == "Conv2D")
    bias = next(n for n in fused.node if n.op == "BiasAdd")
    add = next(n for n in fused.node if n.op in ("Add", "AddV2"))
    out = next(n for n in fused.node if n.name == "out")
    x = next(i for i in add.input if i.split(":")[0] != bias.name)
    out.op = "_FusedConv2D"  # as a oneDNN machine's Grappler would have written it
    out.attr.clear()
    for key in ("T", "strides", "padding", "data_format", "dilations"):
        out.attr[key].CopyFrom(conv.attr[key])
    set_attr(out, "fused_ops", ["BiasAdd", "Add", "Relu"])
    set_attr(out, "num_args", 2)
    set_attr(out, "epsilon", 0.0001)
    del out.input[:]
    out.input.extend([*conv.input, bias.input[1], x])
    kept = [n for n in fused.node if n.name not in (conv.name, bias.name, add.name)]
    del fused.node[:]
    fused.node.extend(kept)
    result = UnfuseKernels().run(fused, context(["out"], ["x:0"], "portable"))
    ops = counts(result.graph_def)
    assert "_FusedConv2D" not in ops and ops["AddV2"] == 1 and ops["Relu"] == 1
    check_same(plain, result.graph_def)
