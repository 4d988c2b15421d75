"""transpose_matmul: transposes of the last two dims go into BatchMatMul's adj flags."""

import numpy as np
import tensorflow as tf

from tests.passes.helpers import context, counts, graph_of, rand, run
from tfopt.passes.transpose_matmul import TransposeIntoMatMul


def attention_scores():
    """Keras MultiHeadAttention's scores: einsum("aecd,abcd->acbe", key, query)."""
    q = tf.compat.v1.placeholder(tf.float32, [None, None, 2, 4], name="q")
    k = tf.compat.v1.placeholder(tf.float32, [None, None, 2, 4], name="k")
    s = tf.linalg.matmul(tf.transpose(k, [0, 2, 1, 3]), tf.transpose(q, [0, 2, 3, 1]))
    tf.nn.softmax(tf.transpose(s, [0, 1, 3, 2]), name="out")


def test_score_transpose_goes_into_the_matmul():
    gd = graph_of(attention_scores)
    ctx = context(["out"], ["q:0", "k:0"])
    result = TransposeIntoMatMul().run(gd, ctx)
    assert result.notes == ["1 transposes folded into BatchMatMul adj_x/adj_y"]
    assert counts(result.graph_def)["Transpose"] == 2
    (bmm,) = [n for n in result.graph_def.node if n.op == "BatchMatMulV2"]
    assert bmm.attr["adj_x"].b and bmm.attr["adj_y"].b
    feeds = {"q:0": rand(2, 5, 2, 4, seed=1), "k:0": rand(2, 5, 2, 4, seed=2)}
    np.testing.assert_allclose(run(result.graph_def, ["out"], feeds)[0],
                               run(gd, ["out"], feeds)[0], rtol=1e-5, atol=1e-6)
    assert not TransposeIntoMatMul().run(result.graph_def, ctx).changed


def test_swapped_operand_becomes_a_flag():
    def build():
        a = tf.compat.v1.placeholder(tf.float32, [None, 3, 4], name="a")
        b = tf.compat.v1.placeholder(tf.float32, [None, 3, 5], name="b")
        tf.identity(tf.linalg.matmul(tf.transpose(a, [0, 2, 1]), b), name="out")

    gd = graph_of(build)
    result = TransposeIntoMatMul().run(gd, context(["out"], ["a:0", "b:0"]))
    assert "Transpose" not in counts(result.graph_def)
    feeds = {"a:0": rand(2, 3, 4, seed=3), "b:0": rand(2, 3, 5, seed=4)}
    np.testing.assert_allclose(run(result.graph_def, ["out"], feeds)[0],
                               run(gd, ["out"], feeds)[0], rtol=1e-5, atol=1e-6)
