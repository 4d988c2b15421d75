"""einsum_matmul: a dense-layer Einsum against constant weights becomes Reshape/MatMul/Reshape."""

import numpy as np
import pytest
import tensorflow as tf

from tests.passes.helpers import context, counts, graph_of, rand, run
from tfopt.passes.einsum_matmul import EinsumToMatMul, dense_split


@pytest.mark.parametrize("equation,split", [
    ("abc,cde->abde", (2, 1, 2)),     # MultiHeadAttention query/key/value
    ("abcd,cde->abe", (2, 2, 1)),     # MultiHeadAttention output
    ("abc,cd->abd", (2, 1, 1)),       # EinsumDense on [batch, seq, C]
    ("ab,bc->ac", (1, 1, 1)),
    ("abc,cde->adbe", None),          # output not x's free dims then W's
    ("abc,dc->abd", None),            # contracted dim not leading in W
    ("abcd,acde->abe", None),         # a batch label shared by both
    ("...c,cd->...d", None),
])
def test_which_equations_are_dense(equation, split):
    assert dense_split(equation) == split


@pytest.mark.parametrize("equation,x_shape,w_shape", [
    ("abc,cde->abde", (None, None, 8), (8, 2, 4)),
    ("abcd,cde->abe", (None, None, 2, 4), (2, 4, 8)),
])
def test_attention_projections_answer_alike(equation, x_shape, w_shape):
    def build():
        x = tf.compat.v1.placeholder(tf.float32, x_shape, name="x")
        tf.identity(tf.einsum(equation, x, tf.constant(rand(*w_shape, seed=1))) * 2.0,
                    name="out")

    gd = graph_of(build)
    result = EinsumToMatMul().run(gd, context(["out"], ["x:0"]))
    assert result.notes == ["1 dense-layer Einsums rewritten as MatMul"]
    ops = counts(result.graph_def)
    assert "Einsum" not in ops and ops["MatMul"] == 1
    for batch, seq in [(2, 5), (1, 1)]:  # batch and sequence stay dynamic
        feeds = {"x:0": rand(batch, seq, *x_shape[2:], seed=2)}
        want = run(gd, ["out"], feeds)[0]
        got = run(result.graph_def, ["out"], feeds)[0]
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    assert not EinsumToMatMul().run(result.graph_def, context(["out"], ["x:0"])).changed


def test_einsum_of_two_activations_stays():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4, 8], name="x")
        tf.einsum("abc,adc->abd", x, x, name="out")

    assert not EinsumToMatMul().run(graph_of(build), context(["out"], ["x:0"])).changed


@pytest.mark.parametrize("adj_y", [False, True])
def test_batch_matmul_with_a_2d_weight_becomes_matmul(adj_y):
    """Keras 3's lowering of ViT's attention projections: [batch, seq, C] @ W[C, N]."""
    weights = rand(6, 8, seed=1) if adj_y else rand(8, 6, seed=1)

    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, None, 8], name="x")
        y = tf.raw_ops.BatchMatMulV2(x=x, y=tf.constant(weights), adj_y=adj_y)
        tf.identity(tf.reshape(y, [-1, 5, 2, 3]) + tf.constant(rand(2, 3, seed=3)), name="out")

    gd = graph_of(build)
    result = EinsumToMatMul().run(gd, context(["out"], ["x:0"]))
    assert result.notes == ["1 BatchMatMuls with a 2-D constant weight rewritten as MatMul"]
    ops = counts(result.graph_def)
    assert "BatchMatMulV2" not in ops and ops["MatMul"] == 1
    for batch in (1, 3):
        feeds = {"x:0": rand(batch, 5, 8, seed=2)}
        want = run(gd, ["out"], feeds)[0]
        got = run(result.graph_def, ["out"], feeds)[0]
        assert got.shape == want.shape == (batch, 5, 2, 3)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_batch_matmul_of_two_activations_or_adj_x_stays():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4, 8], name="x")
        tf.raw_ops.BatchMatMulV2(x=x, y=x, adj_y=True, name="scores")
        tf.raw_ops.BatchMatMulV2(x=x, y=tf.constant(rand(4, 3, seed=1)), adj_x=True,
                                 name="transposed")

    result = EinsumToMatMul().run(graph_of(build), context(["scores", "transposed"], ["x:0"]))
    assert not result.changed
