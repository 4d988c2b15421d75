"""control_edges: a control edge the data path already implies is dropped, any other kept."""

import tensorflow as tf

from tests.passes.helpers import check_same, context, graph_of, rand
from tfopt.passes.control_edges import DropImpliedControls


def _inputs(graph_def, name: str) -> list[str]:
    return list(next(n for n in graph_def.node if n.name == name).input)


def test_implied_control_edge_is_dropped_and_others_kept():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        a = tf.math.sin(x, name="a")
        b = tf.math.cos(a, name="b")
        tf.math.exp(x, name="side")  # not an ancestor of out: its edge orders something
        tf.identity(b * 2.0, name="out")

    gd = graph_of(build)
    # (TensorFlow's builder drops an implied control input itself; freezing does not)
    next(n for n in gd.node if n.name == "out").input.extend(["^a", "^side"])
    result = DropImpliedControls().run(gd, context(["out"], ["x:0"]))
    assert result.changed
    out = _inputs(result.graph_def, "out")
    assert "^a" not in out and "^side" in out
    check_same(gd, result.graph_def, feeds={"x:0": rand(2, 3)})


def test_graphs_with_loop_frames_are_left_alone():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [3], name="x")
        tf.compat.v1.disable_control_flow_v2()
        try:
            _, y = tf.compat.v1.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1, v * 2.0),
                                           [tf.constant(0), x])
        finally:
            tf.compat.v1.enable_control_flow_v2()
        with tf.control_dependencies([y]):
            tf.identity(y + 1.0, name="out")

    gd = graph_of(build)
    assert any(n.op == "Enter" for n in gd.node)
    assert not DropImpliedControls().run(gd, context(["out"], ["x:0"])).changed
