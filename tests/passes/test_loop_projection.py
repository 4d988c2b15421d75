"""loop_projection and loop_consts: a recurrent layer's input projection leaves its loop, its
constant bias is folded in the body."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tests.passes.helpers import context, counts, graph_of, rand, run
from tests.passes.test_contract import _masked_recurrence
from tfopt.graph.library import function_body
from tfopt.passes.loop_consts import InlineLoopConstants
from tfopt.passes.loop_projection import ProjectLoopInputs

X = {"x:0": rand(3, 5, 3, seed=24)}


def _body_ops(graph_def) -> dict[str, int]:
    (loop,) = [n for n in graph_def.node if n.op in ("While", "StatelessWhile")]
    fdef = next(f for f in graph_def.library.function
                if f.signature.name == loop.attr["body"].func.name)
    return counts(function_body(fdef)[0])


def test_input_projection_leaves_the_loop_with_its_bias():
    graph_def, ctx = graph_of(_masked_recurrence), context(["out"], ["x:0"])
    result = ProjectLoopInputs().run(graph_def, ctx)
    assert result.notes == ["1 recurrent input projections taken out of their loops (1 with "
                            "their bias): one matmul over every step"]
    # Expected: the body keeps only the recurrent matmul (h U); the input's matmul and bias
    # run once before the loop, over every step
    assert _body_ops(graph_def)["MatMul"] == 2 and _body_ops(result.graph_def)["MatMul"] == 1
    assert "BiasAdd" not in _body_ops(result.graph_def)
    assert counts(result.graph_def)["MatMul"] == counts(graph_def).get("MatMul", 0) + 1
    assert counts(result.graph_def)["BiasAdd"] == counts(graph_def).get("BiasAdd", 0) + 1
    assert not ProjectLoopInputs().run(result.graph_def, ctx).changed
    np.testing.assert_allclose(run(result.graph_def, ["out"], X)[0],
                               run(graph_def, ["out"], X)[0], rtol=1e-5, atol=1e-6)


def _step_read_twice():
    """The step's input is also read unprojected (a skip connection): it must stay a list of
    inputs, so nothing moves."""
    x = tf.compat.v1.placeholder(tf.float32, [None, 5, 3], name="x")
    w = tf.constant(rand(3, 3, seed=28))
    inputs = tf.TensorArray(tf.float32, size=5).unstack(tf.transpose(x, [1, 0, 2]))

    def body(t, h):
        step = inputs.read(t)
        return t + 1, tf.tanh(tf.matmul(step, w) + h) + step

    _, h = tf.while_loop(lambda t, h: t < 5, body, (0, tf.zeros_like(x[:, 0])))
    tf.identity(h, name="out")


def test_a_step_read_besides_its_projection_stays_in_the_loop():
    graph_def, ctx = graph_of(_step_read_twice), context(["out"], ["x:0"])
    assert not ProjectLoopInputs().run(graph_def, ctx).changed


def test_the_bias_is_read_as_a_constant_in_the_body():
    graph_def, ctx = graph_of(_masked_recurrence), context(["out"], ["x:0"])
    result = InlineLoopConstants().run(graph_def, ctx)
    assert result.notes == ["1 loops read their constant inputs (biases, limits) as constants "
                            "in their bodies"]
    assert _body_ops(result.graph_def)["Const"] > _body_ops(graph_def).get("Const", 0)
    assert not InlineLoopConstants().run(result.graph_def, ctx).changed
    np.testing.assert_allclose(run(result.graph_def, ["out"], X)[0],
                               run(graph_def, ["out"], X)[0], rtol=1e-5, atol=1e-6)
