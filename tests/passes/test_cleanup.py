"""training_nodes, strip_unused, debug_ops, identity, switch_const on hand-built graphs."""

import numpy as np
import tensorflow as tf

from tests.passes.helpers import context, counts, graph_of, rand, run
from tfopt.passes.debug_ops import RemoveDebugOps
from tfopt.passes.identity import RemoveIdentities
from tfopt.passes.strip_unused import StripUnused
from tfopt.passes.switch_const import ResolveConstantSwitch
from tfopt.passes.training_nodes import RemoveTrainingNodes
from tfopt.zoo import v1_control_flow


def _debug_graph():
    x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
    h = tf.debugging.check_numerics(x * 2.0, "bad", name="check")
    assert_op = tf.debugging.Assert(tf.reduce_all(h < 100.0), [h], name="guard")
    printed = tf.raw_ops.Print(input=h, data=[h], message="h=", name="print")
    with tf.control_dependencies([assert_op]):
        tf.identity(printed + 1.0, name="out")


def test_debug_ops_removed_numbers_unchanged():
    gd = graph_of(_debug_graph)
    ctx = context(["out"], ["x:0"])
    result = RemoveDebugOps().run(gd, ctx)
    ops = counts(result.graph_def)
    assert result.changed
    assert "CheckNumerics" not in ops and "Assert" not in ops and "Print" not in ops
    feed = {"x:0": rand(2, 3)}
    np.testing.assert_allclose(run(result.graph_def, ["out"], feed)[0], run(gd, ["out"], feed)[0])


def test_identity_chain_spliced_output_name_kept():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [3], name="x")
        a = tf.identity(tf.identity(tf.stop_gradient(x)), name="a")
        tf.identity(tf.math.square(a), name="out")

    gd = graph_of(build)
    result = RemoveIdentities().run(gd, context(["out"], ["x:0"]))
    names = {n.name: n.op for n in result.graph_def.node}
    assert names["out"] == "Identity"  # a signature output keeps its name
    assert "StopGradient" not in names.values()
    assert list(names.values()).count("Identity") == 1
    feed = {"x:0": np.array([1, 2, 3], np.float32)}
    np.testing.assert_array_equal(run(result.graph_def, ["out"], feed)[0], [1, 4, 9])


def test_identity_n_ports():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [4], name="x")
        a, b = tf.split(x, 2)
        ia, ib = tf.identity_n([a, b], name="idn")
        tf.subtract(ib, ia, name="out")

    gd = graph_of(build)
    result = RemoveIdentities().run(gd, context(["out"], ["x:0"]))
    assert "IdentityN" not in counts(result.graph_def)
    feed = {"x:0": np.array([1, 2, 10, 20], np.float32)}
    np.testing.assert_array_equal(run(result.graph_def, ["out"], feed)[0], [9, 18])


def test_training_nodes_and_strip_unused():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
        w = tf.Variable(np.ones([3, 2], np.float32), name="w")
        y = tf.matmul(x, tf.constant(np.ones([3, 2], np.float32)), name="y")
        loss = tf.reduce_sum(y * w)
        tf.compat.v1.train.GradientDescentOptimizer(0.1).minimize(loss)
        tf.compat.v1.train.Saver([w])

    gd = graph_of(build)
    ctx = context(["y"], ["x:0"])
    before = counts(gd)
    assert before.get("SaveV2") and before.get("RestoreV2")
    result = RemoveTrainingNodes().run(gd, ctx)
    ops = counts(result.graph_def)
    assert "SaveV2" not in ops and "RestoreV2" not in ops
    assert not any(op.startswith("ResourceApply") for op in ops)
    stripped = StripUnused().run(result.graph_def, ctx).graph_def
    assert sorted(counts(stripped)) == ["Const", "MatMul", "Placeholder"]


def test_placeholder_with_default_and_constant_switch():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [3], name="x")
        training = tf.compat.v1.placeholder_with_default(False, [], name="training")
        y = tf.compat.v1.cond(training, lambda: x * 100.0, lambda: x + 1.0)
        tf.identity(y, name="out")

    with v1_control_flow():
        gd = graph_of(build)
    ctx = context(["out"], ["x:0"])
    assert counts(gd)["Switch"] >= 1
    g = gd
    for p in (RemoveTrainingNodes(), RemoveIdentities(), ResolveConstantSwitch(), StripUnused(),
              RemoveIdentities()):
        g = p.run(g, ctx).graph_def
    ops = counts(g)
    assert "Switch" not in ops and "Merge" not in ops and "PlaceholderWithDefault" not in ops
    feed = {"x:0": np.array([1, 2, 3], np.float32)}
    np.testing.assert_array_equal(run(g, ["out"], feed)[0], [2, 3, 4])


def test_tf1_while_loop_constants_stay_in_their_frame():
    """Constants inside a TF1 loop body carry a ^pivot control input; folding them must not
    pull a value out of the loop frame (the executor rejects cross-frame edges)."""
    from tfopt.pipeline import run_passes, select_passes

    def build():
        x = tf.compat.v1.placeholder(tf.float32, [3], name="x")

        def body(i, acc):
            step = tf.constant(2.0) * tf.constant(1.5) + tf.cast(i, tf.float32)
            return i + 1, acc * 0.5 + step

        _, y = tf.compat.v1.while_loop(lambda i, acc: i < 4, body, [tf.constant(0), x])
        tf.identity(y, name="out")

    with v1_control_flow():
        gd = graph_of(build)
    assert "Enter" in counts(gd) and "NextIteration" in counts(gd)
    ctx = context(["out"], ["x:0"])
    optimized = run_passes(gd, ctx, select_passes(None, None)).graph_def
    feed = {"x:0": np.array([1, 2, 3], np.float32)}
    np.testing.assert_allclose(run(optimized, ["out"], feed)[0], run(gd, ["out"], feed)[0])


def test_control_edges_on_constants_dropped():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [3], name="x")
        w = tf.constant([1.0, 2.0, 3.0], name="w")
        unused = tf.constant([7.0], name="unused_weight")
        with tf.control_dependencies([unused]):
            tf.identity(x * w, name="out")

    gd = graph_of(build)
    result = RemoveIdentities().run(gd, context(["out"], ["x:0"]))
    assert "1 control edges on constants dropped" in result.notes
    assert not [t for n in result.graph_def.node for t in n.input if t.startswith("^")]
    feed = {"x:0": np.array([1, 2, 3], np.float32)}
    np.testing.assert_array_equal(run(result.graph_def, ["out"], feed)[0], [1, 4, 9])
