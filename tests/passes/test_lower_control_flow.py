"""lower_control_flow: loops lowered into the stored graph, weights entering once."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tests.passes.helpers import context, counts, run
from tfopt.model.freeze import freeze_concrete_function
from tfopt.passes.lower_control_flow import LowerControlFlow


class Recurrence(tf.Module):
    """h <- tanh(h W + x_t U) over 6 steps: two weights read in the body, one counter and
    one carried state, and a loop condition that reads only the counter."""

    def __init__(self):
        rng = np.random.default_rng(0)
        self.w = tf.Variable(rng.normal(size=(4, 4)).astype(np.float32) * 0.5)
        self.u = tf.Variable(rng.normal(size=(3, 4)).astype(np.float32) * 0.5)

    @tf.function(input_signature=[tf.TensorSpec([None, 6, 3], tf.float32, name="x")])
    def __call__(self, x):
        def body(i, h):
            return i + 1, tf.tanh(tf.matmul(h, self.w) + tf.matmul(x[:, i], self.u))
        h0 = tf.zeros([tf.shape(x)[0], 4])
        _, h = tf.while_loop(lambda i, h: i < 6, body, (0, h0))
        return tf.identity(h, name="out")


def _frozen():
    module = Recurrence()
    graph_def = freeze_concrete_function(module.__call__.get_concrete_function()).graph_def
    out = next(n.name for n in graph_def.node if n.op == "Identity" and n.name.endswith("out"))
    return graph_def, out


def test_loop_is_lowered_and_weights_enter_as_constants():
    graph_def, out = _frozen()
    assert counts(graph_def).get("While", 0) + counts(graph_def).get("StatelessWhile", 0) == 1
    ctx = context([out], ["x:0"])
    result = LowerControlFlow().run(graph_def, ctx)
    after = counts(result.graph_def)
    assert result.changed and "While" not in after and "StatelessWhile" not in after
    constant_enters = [n for n in result.graph_def.node if n.op == "Enter"
                       and n.attr["is_constant"].b]
    assert len(constant_enters) >= 2, "the two weights must enter once, not per iteration"
    assert after["Merge"] == after["NextIteration"] == after["Switch"]
    assert any("enter once" in note for note in result.notes)
    # the inlined condition's unread argument (h) is gone: nothing is computed for nothing,
    # and the only node nobody reads is the output (what a .pb's outputs are guessed from)
    read = {i.lstrip("^").split(":")[0] for n in result.graph_def.node for i in n.input}
    assert [n.name for n in result.graph_def.node if n.name not in read] == [out]
    assert any("left unread removed" in note for note in result.notes)
    x = np.random.default_rng(1).normal(size=(2, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(run(result.graph_def, [out], {"x:0": x})[0],
                               run(graph_def, [out], {"x:0": x})[0], rtol=1e-6)


def test_loops_the_model_keeps_functional_stay_functional():
    """Only what the runtime would lower anyway is lowered (XLA contexts mark it False)."""
    graph_def, out = _frozen()
    for node in graph_def.node:
        if node.op in ("While", "StatelessWhile"):
            node.attr["_lower_using_switch_merge"].b = False
    result = LowerControlFlow().run(graph_def, context([out], ["x:0"]))
    assert not result.changed
