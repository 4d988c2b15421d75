"""Symbolic shapes: unknown dimensions named by where they come from."""

from __future__ import annotations

import tensorflow as tf

from tests.passes.helpers import graph_of, rand
from tfopt.graph.names import InputRef
from tfopt.graph.symbolic import SymbolicShapes, same_shape
from tfopt.graph.view import GraphView


def _keras_like():
    """The batch reaches a Fill through Shape -> StridedSlice -> Pack, and a matmul's
    output through a transpose and a time-step slice, as in a Keras RNN's first step."""
    tokens = tf.compat.v1.placeholder(tf.int32, [None, 7], name="tokens")
    emb = tf.gather(tf.constant(rand(10, 4)), tokens)                 # [B, 7, 4]
    first = tf.transpose(emb, [1, 0, 2])[0]                            # [B, 4]
    step = tf.sigmoid(tf.matmul(first, tf.constant(rand(4, 6))))       # [B, 6]
    left, _ = tf.split(step, 2, axis=1)                                # [B, 3]
    state = tf.zeros(tf.stack([tf.shape(emb)[0], 3]))                  # Fill [B, 3]
    tf.identity(left * state, name="out")
    tf.zeros_like(tf.constant(rand(1, 3)), name="row")                # [1, 3]


def test_batch_is_one_symbol_through_shape_arithmetic_and_matmuls():
    view = GraphView(graph_of(_keras_like))
    shapes = SymbolicShapes(view)
    fill = next(n.name for n in view if n.op == "Fill")
    split = next(n.name for n in view if n.op == "Split")
    batch = ("dim", "tokens", 0)
    assert shapes.shape(InputRef(fill, 0)) == (batch, 3)
    assert shapes.shape(InputRef(split, 0)) == (batch, 3)
    assert same_shape(shapes, InputRef(fill, 0), InputRef("out", 0))
    # a [1, 3] row broadcasts against [B, 3] but is not the same shape for every batch
    assert not same_shape(shapes, InputRef(fill, 0), InputRef("row", 0))
