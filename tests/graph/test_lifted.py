"""Weights lifted beside the graph while the passes run (tfopt.graph.lifted)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tests.passes.helpers import bn_params, context, rand, run
from tfopt.graph.lifted import LIFT_BYTES, WeightStore, inline, lift, lift_new, lifted_keys
from tfopt.graph.nodes import LIFTED, LiftedWeightError, const_value, is_lifted
from tfopt.graph.view import GraphView
from tfopt.passes.pipeline import run_passes
from tfopt.passes.registry import select

FEEDS = {"x:0": rand(2, 8, 8, 64, seed=1)}


def _model() -> tf.compat.v1.GraphDef:
    """Conv -> batch norm (decomposed) -> Relu -> Dense, weights past LIFT_BYTES, the filter
    preprocessed by a constant expression (constant folding must read the lifted weight)."""
    gamma, beta, mean, var = bn_params(64, seed=2)
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 64], name="x")
        w = tf.constant(rand(3, 3, 64, 64, seed=3), name="w") * tf.constant(0.5)
        y = tf.nn.conv2d(x, w, 1, "SAME")
        scale = gamma / np.sqrt(var + 1e-3)
        y = y * scale + (beta - mean * scale)  # as Keras 3 exports a batch norm
        y = tf.nn.relu(y)
        y = tf.reshape(tf.reduce_mean(y, [1, 2]), [-1, 64])
        dense = tf.constant(rand(64, 512, seed=4), name="dense")
        tf.identity(tf.matmul(y, dense), name="out")
    return g.as_graph_def()


def test_lift_and_inline_round_trip_without_touching_the_input():
    graph_def = _model()
    before = graph_def.SerializeToString(deterministic=True)
    store = WeightStore()
    lifted = lift(graph_def, store)
    stubs = {n.name: n for n in lifted.node if is_lifted(n)}
    assert set(stubs) == {"w", "dense"}  # the small constants (mean, 0.5, shapes) stay
    assert all(len(n.attr["value"].tensor.tensor_content) == 0 for n in stubs.values())
    assert lifted.ByteSize() < LIFT_BYTES  # the graph the passes copy holds no weight
    with pytest.raises(LiftedWeightError):
        const_value(stubs["w"])
    view = GraphView(lifted, store)
    np.testing.assert_array_equal(view.value(stubs["dense"]), rand(64, 512, seed=4))
    with pytest.raises(ValueError):  # read-only: a pass edits by writing a new constant
        view.value(stubs["dense"])[0, 0] = 1.0
    assert inline(lifted, store).SerializeToString(deterministic=True) == before
    assert graph_def.SerializeToString(deterministic=True) == before


def test_a_weight_a_pass_rewrote_is_lifted_again_and_the_old_one_dropped():
    store = WeightStore()
    lifted = lift(_model(), store)
    view = GraphView(lifted, store)
    dense = view.node("dense")
    from tfopt.graph.nodes import set_const_value
    set_const_value(dense, view.value(dense) * 2)
    assert not is_lifted(dense)
    result = view.to_graph_def()
    assert lift_new(result, store) == 1
    assert len(store) == 3  # w and dense (read from the original graph), the new dense
    store.keep_only(lifted_keys(result))
    assert len(store) == 3  # weights read from the original graph cost nothing to keep
    key = next(n for n in result.node if n.name == "dense").attr[LIFTED].s.decode()
    np.testing.assert_array_equal(store.value(key), rand(64, 512, seed=4) * 2)
    set_const_value(dense, view.value(dense) * 3)
    again = view.to_graph_def()
    lift_new(again, store)
    store.keep_only(lifted_keys(again))
    assert len(store) == 3  # the array the first rewrite made is gone


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_passes_fold_and_rewrite_lifted_weights_exactly_as_inline_ones(precision):
    """Batch-norm folding scales the lifted filter, constant folding evaluates the filter's
    preprocessing with the lifted value fed, bf16 casts the weights; the answers match."""
    graph_def = _model()
    ctx = dataclasses.replace(context(["out"], ["x:0"]), precision=precision)
    result = run_passes(graph_def, ctx, select(None, None))
    assert not any(is_lifted(n) for n in result.graph_def.node)
    ops = {n.op for n in result.graph_def.node}
    assert "Mul" not in ops and "AddV2" not in ops  # the batch norm went into the weights
    rtol = 1e-5 if precision == "fp32" else 3e-2
    expected = run(graph_def, ["out"], FEEDS)[0]
    got = run(result.graph_def, ["out"], FEEDS)[0]
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * np.abs(expected).max())
    applied = {r.name for r in result.records if r.changed}
    assert {"fold_batch_norm", "constant_fold"} <= applied
    if precision == "bf16":
        assert "reduced_precision" in applied
