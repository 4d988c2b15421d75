"""constant_fold: tests on hand-built graphs, numbers compared with the original."""

import numpy as np
import tensorflow as tf

from tests.passes.helpers import check_same, context, counts, graph_of, rand, run
from tfopt.passes.constant_fold import ConstantFold
from tfopt.zoo.builders import v1_control_flow


def test_constant_fold_bn_arithmetic_but_not_random():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        var = tf.constant([1.0, 2.0, 3.0, 4.0])
        scale = tf.math.rsqrt(var + 1e-3) * tf.constant(2.0)
        noise = tf.random.uniform([4], name="noise")
        tf.add(x * scale, noise * 0.0, name="out")

    gd = graph_of(build)
    result = ConstantFold().run(gd, context(["out"], ["x:0"]))
    ops = counts(result.graph_def)
    assert "Rsqrt" not in ops
    assert ops.get("RandomUniform") == 1  # stateful: never folded
    feeds = {"x:0": rand(2, 4)}
    check_same(gd, result.graph_def, feeds=feeds)


def test_constant_fold_static_dims_of_dynamic_shape():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 6, 4], name="x")
        s = tf.shape(x)
        tf.reshape(x, [s[0], s[1] * s[2]], name="out")      # batch stays dynamic

    gd = graph_of(build)
    result = ConstantFold().run(gd, context(["out"], ["x:0"]))
    ops = counts(result.graph_def)
    assert ops.get("StridedSlice") == 1 and "Mul" not in ops  # only s[0] is left to run
    feeds = {"x:0": rand(3, 6, 4)}
    assert run(result.graph_def, ["out"], feeds)[0].shape == (3, 24)
    check_same(gd, result.graph_def, feeds=feeds)


def test_tf1_while_loop_constants_stay_in_their_frame():
    """Constants inside a TF1 loop body carry a ^pivot control input; folding them must not
    pull a value out of the loop frame (the executor rejects cross-frame edges)."""
    from tfopt.passes.pipeline import run_passes
    from tfopt.passes.registry import select

    def build():
        x = tf.compat.v1.placeholder(tf.float32, [3], name="x")

        def body(i, acc):
            step = tf.constant(2.0) * tf.constant(1.5) + tf.cast(i, tf.float32)
            return i + 1, acc * 0.5 + step

        _, y = tf.compat.v1.while_loop(lambda i, acc: i < 4, body, [tf.constant(0), x])
        tf.identity(y, name="out")

    with v1_control_flow():
        gd = graph_of(build)
    assert "Enter" in counts(gd) and "NextIteration" in counts(gd)
    ctx = context(["out"], ["x:0"])
    optimized = run_passes(gd, ctx, select(None, None)).graph_def
    feed = {"x:0": np.array([1, 2, 3], np.float32)}
    np.testing.assert_allclose(run(optimized, ["out"], feed)[0], run(gd, ["out"], feed)[0])
