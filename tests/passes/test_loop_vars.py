"""loop_vars: loop variables holding the same value every iteration become one."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tests.passes.helpers import context, counts, graph_of, rand, run
from tests.passes.test_contract import _masked_recurrence
from tfopt.passes.cse import MergeDuplicates
from tfopt.passes.loop_vars import MergeLoopVariables
from tfopt.passes.lower_control_flow import LowerControlFlow

X = {"x:0": rand(3, 5, 3, seed=24)}


def _prepared(build):
    """The graph as the pipeline hands it to loop_vars: equal constants already one node."""
    ctx = context(["out"], ["x:0"])
    return MergeDuplicates().run(graph_of(build), ctx).graph_def, ctx


def test_counter_time_step_output_and_state_merge_and_two_variables_stay_in_the_loop():
    graph_def, ctx = _prepared(_masked_recurrence)
    result = MergeLoopVariables().run(graph_def, ctx)
    # tf.while_loop's own counter, i and t count alike; o and h are updated alike
    assert result.notes == ["3 loop variables merged into one holding the same value every "
                            "iteration (1 loops)"]
    assert not MergeLoopVariables().run(result.graph_def, ctx).changed
    before = LowerControlFlow().run(graph_def, ctx).graph_def
    after = LowerControlFlow().run(result.graph_def, ctx)
    # Expected lowered loop: one counter and one state carried; the duplicates, the
    # condition's limits (n, maximum_iterations), the step lists and the weights enter once
    # as constants.
    assert counts(before)["Merge"] == 5
    assert counts(after.graph_def)["Merge"] == counts(after.graph_def)["NextIteration"] == 2
    assert any("10 loop-invariant inputs" in note for note in after.notes)  # 3 more than before
    np.testing.assert_allclose(run(after.graph_def, ["out"], X)[0],
                               run(graph_def, ["out"], X)[0], rtol=1e-5, atol=1e-6)


def _differing():
    x = tf.compat.v1.placeholder(tf.float32, [None, 5, 3], name="x")
    u = tf.constant(rand(3, 3, seed=25))
    h0 = tf.zeros([tf.shape(x)[0], 3])

    def body(i, t, o, h):
        new = tf.tanh(tf.matmul(h, u) + x[:, i])
        return i + 1, t + 2, tf.where(x[:, i, :1] > 0, new, o), new  # h: no mask

    _, t, o, h = tf.while_loop(lambda i, t, o, h: i < 5, body, (0, 0, h0, h0))
    tf.identity(o + h + tf.cast(t, tf.float32), name="out")


ONLY_COUNTER = ["1 loop variables merged into one holding the same value every iteration "
                "(1 loops)"]  # tf.while_loop's own counter into i, which counts alike


def test_variables_entering_alike_but_updated_differently_stay():
    graph_def, ctx = _prepared(_differing)
    result = MergeLoopVariables().run(graph_def, ctx)
    assert result.notes == ONLY_COUNTER  # t steps by 2; h is not masked as o is
    np.testing.assert_allclose(run(result.graph_def, ["out"], X)[0],
                               run(graph_def, ["out"], X)[0], rtol=1e-5, atol=1e-6)


def _chained():
    """a and b are equal only if c and d are: c, d step differently, so neither pair is."""
    x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")

    def body(i, a, b, c, d):
        return i + 1, a + c, b + d, c + 1.0, d + 2.0

    _, a, b, c, d = tf.while_loop(lambda i, *_: i < 4, body, (0, x, x, x, x))
    tf.identity(a * b + c * d, name="out")


def _chained_equal():
    """a and b are equal because c and d are: found together, not one pair at a time."""
    x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")

    def body(i, a, b, c, d):
        return i + 1, a + c, b + d, c * 1.5, d * 1.5

    _, a, b, c, d = tf.while_loop(lambda i, *_: i < 4, body, (0, x, x, x, x))
    tf.identity(a * b + c * d, name="out")


def test_a_pair_holds_only_with_the_pairs_it_depends_on():
    feeds = {"x:0": rand(2, 3, seed=26)}
    graph_def, ctx = _prepared(_chained)
    assert MergeLoopVariables().run(graph_def, ctx).notes == ONLY_COUNTER
    graph_def, ctx = _prepared(_chained_equal)
    result = MergeLoopVariables().run(graph_def, ctx)
    # b into a, d into c (a and c differ: a + c against 1.5 c), the counter into i
    assert result.notes[0].startswith("3 loop variables merged")
    np.testing.assert_allclose(run(result.graph_def, ["out"], feeds)[0],
                               run(graph_def, ["out"], feeds)[0], rtol=1e-6)


def _zeros_started(row_start: bool):
    """Keras' masked RNN: the output starts as zeros_like the first step's output, the state
    as zeros of the batch (a Fill), both [B, 3]; ``row_start``: the output starts as a
    [1, 3] row instead (broadcast in the body, so not the state's value)."""
    x = tf.compat.v1.placeholder(tf.float32, [None, 5, 3], name="x")
    u = tf.constant(rand(3, 3, seed=29))
    h0 = tf.zeros(tf.stack([tf.shape(x)[0], 3]))
    first = tf.tanh(tf.matmul(h0, u) + x[:, 0])
    o0 = tf.zeros_like(tf.constant(rand(1, 3))) if row_start else tf.zeros_like(first)

    def body(i, o, h):
        new = tf.tanh(tf.matmul(h, u) + x[:, i])
        keep = x[:, i, :1] > 0
        return i + 1, tf.where(keep, new, o), tf.where(keep, new, h)

    rows = tf.TensorShape([None, 3])
    _, o, h = tf.while_loop(lambda i, o, h: i < 5, body, (0, o0, h0),
                            shape_invariants=(tf.TensorShape([]), rows, rows))
    tf.identity(o + 2.0 * h, name="out")


def test_zeros_of_one_shape_start_the_same_variable():
    graph_def, ctx = _prepared(lambda: _zeros_started(False))
    result = MergeLoopVariables().run(graph_def, ctx)
    assert result.notes[0].startswith("2 loop variables merged")  # the counter; o into h
    np.testing.assert_allclose(run(result.graph_def, ["out"], X)[0],
                               run(graph_def, ["out"], X)[0], rtol=1e-5, atol=1e-6)
    graph_def, ctx = _prepared(lambda: _zeros_started(True))
    assert MergeLoopVariables().run(graph_def, ctx).notes == ONLY_COUNTER
