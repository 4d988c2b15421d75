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
    frozen = freeze_concrete_function(func)
    graph_def = frozen.graph_def
    assert _marks(graph_def) and all(_marks(graph_def))
    x = np.random.default_rng(0).normal(size=(2, 6, 4)).astype(np.float32)
    np.testing.assert_allclose(frozen.io(tf.constant(x))[0].numpy(), module(x), rtol=1e-6)


class Reads(tf.Module):
    """Weights read three ways: a matmul's (ReadVariableOp), an embedding's (ResourceGather)
    and a loop body's (the handle passed into a While)."""

    def __init__(self):
        rng = np.random.default_rng(1)
        self.table = tf.Variable(rng.normal(size=(50, 4)).astype(np.float32))
        self.w = tf.Variable(rng.normal(size=(4, 4)).astype(np.float32))
        self.loop = Loop()

    @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.int32)])
    def __call__(self, ids):
        x = tf.gather(self.table, ids)
        return self.loop(tf.matmul(x, self.w))


def test_past_the_threshold_read_weights_stay_in_their_variables(monkeypatch):
    """A large model is frozen without a copy of its weights: each one the graph only reads
    becomes a lifted stub whose store holds the loaded variable itself (the writer saves that
    very variable); a handle passed into a loop is frozen by TensorFlow as before. The graph
    answers as the original, run from the stubs and from inlined values alike."""
    from tfopt.graph.lifted import inline
    from tfopt.graph.nodes import LIFTED, is_lifted
    from tfopt.model.signature import SignatureGraph, TensorInfo
    from tfopt.verify.runners import run_graph_def

    monkeypatch.setenv("TFOPT_MAX_GRAPH_MB", "0.001")  # 1/24 of 1 KiB: every model is large
    module = Reads()
    frozen = freeze_concrete_function(module.__call__.get_concrete_function())
    stubs = [n for n in frozen.graph_def.node if is_lifted(n)]
    held = {id(frozen.weights.variable(n.attr[LIFTED].s.decode())) for n in stubs}
    assert held == {id(module.table), id(module.w)}
    assert not any(n.op in ("ReadVariableOp", "ResourceGather") for n in frozen.graph_def.node)
    ids = np.array([[1, 7, 49, 3, 0, 2]], np.int32)
    expected = module(ids).numpy()
    sig = SignatureGraph("s", frozen.graph_def,
                         {"ids": TensorInfo(frozen.io.inputs[0].name, tf.int32, (None, 6))},
                         {"h": TensorInfo(frozen.io.outputs[0].name, tf.float32, (None, 4))},
                         weights=frozen.weights)
    np.testing.assert_allclose(run_graph_def(sig, {"ids": ids})["h"], expected, rtol=1e-6)
    np.testing.assert_allclose(run_graph_def(sig.inlined(), {"ids": ids})["h"], expected,
                               rtol=1e-6)
    assert not any(is_lifted(n) for n in inline(frozen.graph_def, frozen.weights).node)
