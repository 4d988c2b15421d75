"""Attributes and constants of a node."""

import tensorflow as tf

from tests.passes.helpers import graph_of
from tfopt.graph.nodes import get_attr, set_attr
from tfopt.graph.view import GraphView


def test_attr_helpers():
    def build():
        tf.constant(1.0, name="c")

    view = GraphView(graph_of(build))
    node = view.nodes["c"]
    set_attr(node, "padding", "SAME")
    set_attr(node, "strides", [1, 2, 2, 1])
    set_attr(node, "epsilon", 0.5)
    assert get_attr(node, "padding") == "SAME"
    assert get_attr(node, "strides") == [1, 2, 2, 1]
    assert get_attr(node, "epsilon") == 0.5
    assert get_attr(node, "dtype") == tf.float32
