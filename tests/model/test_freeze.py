"""Freezing keeps what the runtime needs to run control flow as fast as the original."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfopt.graph.ops import CONTROL_FLOW_OPS, LOWERING_ATTR
from tfopt.model.freeze import control_flow_lowering, freeze_concrete_function


class Loop(tf.Module):
    """A recurrence over a variable, as Keras' LSTM builds it: a While whose body reads
    weights, marked to be lowered to Switch/Merge by the runtime."""

    def __init__(self):
        self.w = tf.Variable(np.eye(4, dtype=np.float32) * 0.5)

    @tf.function(input_signature=[tf.TensorSpec([None, 6, 4], tf.float32)])
    def __call__(self, x):
        def body(i, h):
            return i + 1, tf.tanh(tf.matmul(h, self.w) + x[:, i])
        _, h = tf.while_loop(lambda i, h: i < 6, body, (0, tf.zeros_like(x[:, 0])))
        return h


def _marks(graph_def) -> list[bool]:
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    return [n.attr[LOWERING_ATTR].b for n in nodes if n.op in CONTROL_FLOW_OPS]


def test_freezing_keeps_loops_lowered(tmp_path):
    """TensorFlow's converter marks every While `_lower_using_switch_merge=False` when it
    keeps control flow functional; the runtime then calls the body as a function per
    iteration (a Keras LSTM/GRU ran 0.4x). The marks must come back as the original had them."""
    module = Loop()
    tf.saved_model.save(module, str(tmp_path / "m"))
    loaded = tf.saved_model.load(str(tmp_path / "m"))
    func = loaded.signatures["serving_default"]
    assert set(control_flow_lowering(func.graph.as_graph_def()).values()) == {True}
    frozen, graph_def, _ = freeze_concrete_function(func)
    assert _marks(graph_def) and all(_marks(graph_def))
    x = np.random.default_rng(0).normal(size=(2, 6, 4)).astype(np.float32)
    np.testing.assert_allclose(frozen(tf.constant(x))[0].numpy(), module(x), rtol=1e-6)
