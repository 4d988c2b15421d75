"""reduced_precision: compute in bfloat16 between casts at the borders, weights as bf16."""

import dataclasses

import numpy as np
import tensorflow as tf

from tests.passes.helpers import X, context, counts, graph_of, rand, run
from tfopt.passes.reduced_precision import ReducedPrecision


def _cnn():
    x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name="x")
    h = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, tf.constant(rand(3, 3, 3, 8, seed=2) * .3),
                                               1, "SAME"), tf.constant(rand(8, seed=3))))
    h = tf.nn.relu6(tf.nn.depthwise_conv2d(h, tf.constant(rand(3, 3, 8, 1, seed=4) * .3),
                                           [1, 1, 1, 1], "SAME"))
    pooled = tf.reduce_mean(h, [1, 2])  # Mean stays float32
    logits = tf.matmul(pooled, tf.constant(rand(8, 5, seed=5))) + tf.constant(rand(5, seed=6))
    tf.nn.softmax(logits, name="out")


def _bf16_ctx():
    return dataclasses.replace(context(["out"], ["x:0"]), precision="bf16")


def test_compute_runs_in_bf16_with_casts_only_at_borders():
    gd = graph_of(_cnn)
    result = ReducedPrecision().run(gd, _bf16_ctx())
    assert result.changed
    out = result.graph_def
    by_name = {n.name: n for n in out.node}
    bf16 = {n.op for n in out.node if "T" in n.attr and n.attr["T"].type == tf.bfloat16}
    assert {"Conv2D", "BiasAdd", "Relu", "DepthwiseConv2dNative", "Relu6", "MatMul"} <= bf16
    assert by_name["out"].attr["T"].type == tf.float32  # Softmax: float32, a signature node
    assert all(n.attr["T"].type == tf.float32 for n in out.node if n.op == "Mean")
    # casts: x -> bf16, conv region -> f32 before Mean, Mean -> bf16 for the matmul, and the
    # matmul region back to f32 before Softmax: four, one per border
    assert counts(out)["Cast"] == 4
    weights = [n for n in out.node if n.op == "Const" and n.attr["dtype"].type == tf.bfloat16]
    assert len(weights) >= 5  # conv, bias, depthwise, matmul weights and bias, converted
    assert sum(n.attr["dtype"].type == tf.float32 and n.attr["value"].tensor.ByteSize() > 100
               for n in out.node if n.op == "Const") == 0  # no float32 copy left behind
    want, got = run(gd, ["out"], X)[0], run(out, ["out"], X)[0]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=2e-2)
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.5


def test_nothing_changes_in_fp32_mode():
    gd = graph_of(_cnn)
    assert not ReducedPrecision().run(gd, context(["out"], ["x:0"])).changed


def test_a_constant_shared_with_a_float32_reader_is_copied():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        w = tf.constant(rand(4, 4, seed=7))
        tf.identity(tf.nn.softmax(tf.matmul(x, w)) + tf.reduce_sum(w), name="out")

    gd = graph_of(build)
    out = ReducedPrecision().run(gd, _bf16_ctx()).graph_def
    consts = [n for n in out.node if n.op == "Const" and len(n.attr["value"].tensor.tensor_content) > 30]
    assert sorted(tf.as_dtype(n.attr["dtype"].type).name for n in consts) == ["bfloat16", "float32"]
    feeds = {"x:0": rand(3, 4, seed=8)}
    np.testing.assert_allclose(run(out, ["out"], feeds)[0], run(gd, ["out"], feeds)[0], rtol=2e-2)


def test_embedding_table_is_stored_and_gathered_in_bf16():
    """A lookup into a constant table: the table halves on disk, the gather is exact, and the
    gathered rows join the bf16 region (here: the matmul) or are cast at its border."""
    def build():
        ids = tf.compat.v1.placeholder(tf.int32, [None, 6], name="ids")
        table = tf.constant(rand(50, 8, seed=8))
        rows = tf.gather(table, ids)                       # [batch, 6, 8]
        h = tf.reshape(rows, [-1, 8])
        tf.identity(tf.nn.softmax(tf.matmul(h, tf.constant(rand(8, 3, seed=9)))), name="out")

    gd = graph_of(build)
    out = ReducedPrecision().run(gd, dataclasses.replace(context(["out"], ["ids:0"]),
                                                         precision="bf16")).graph_def
    gather = next(n for n in out.node if n.op == "GatherV2")
    assert gather.attr["Tparams"].type == tf.bfloat16
    table = next(n for n in out.node if n.name == gather.input[0])
    assert table.op == "Const" and table.attr["dtype"].type == tf.bfloat16
    ids = {"ids:0": np.random.default_rng(0).integers(0, 50, (4, 6)).astype(np.int32)}
    want, got = run(gd, ["out"], ids)[0], run(out, ["out"], ids)[0]
    np.testing.assert_allclose(got, want, atol=2e-2)


def test_a_gelu_stays_whole_in_bf16_and_a_large_power_does_not():
    """GELU (exact: Erfc; tanh approximation: Pow(x, 3)) after a bf16 matmul stays in bf16 with
    no cast inside it, so the oneDNN runtime can fuse it into the matmul; a power with a large
    exponent stays float32."""
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 16], name="x")
        h = tf.matmul(x, tf.constant(rand(16, 16, seed=10) * .3))
        exact = tf.nn.gelu(h, approximate=False)
        approx = tf.nn.gelu(tf.matmul(exact, tf.constant(rand(16, 16, seed=11) * .3)),
                            approximate=True)
        tf.identity(tf.math.pow(approx, 8.0), name="out")

    gd = graph_of(build)
    out = ReducedPrecision().run(gd, dataclasses.replace(context(["out"], ["x:0"]),
                                                         precision="bf16")).graph_def
    dtype = {n.name: tf.as_dtype(n.attr["T"].type).name for n in out.node if "T" in n.attr}
    ops = {n.name: n.op for n in out.node}
    assert {dtype[n] for n, op in ops.items() if op in ("Erf", "Erfc", "Tanh")} == {"bfloat16"}
    pows = sorted(dtype[n] for n, op in ops.items() if op == "Pow")
    assert pows == ["bfloat16", "float32"]  # x ** 3 in GELU, x ** 8 kept
    assert counts(out)["Cast"] == 2  # x in, before the 8th power out
    feeds = {"x:0": rand(4, 16, seed=12)}
    # compared through the 8th root: the power multiplies bf16's relative error by 8
    got, want = (np.abs(run(g, ["out"], feeds)[0]) ** 0.125 for g in (out, gd))
    np.testing.assert_allclose(got, want, rtol=3e-2, atol=5e-3)
