"""loop_parallelism: lowered recurrences run one iteration at a time beside another, two
alone; loops without a recurrent state (a map) and loops inside loops keep their setting."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tests.passes.helpers import context, graph_of, rand, run
from tfopt.passes.loop_parallelism import LoopParallelism
from tfopt.zoo.builders import v1_control_flow

STEPS = 5
X = {"x:0": rand(2, STEPS, 4, seed=1)}


def _recurrence(x, name: str, project_inside: bool = False, reverse: bool = False):
    """h <- tanh(x_t + h W) over the steps of x (time-major TensorArray, as Keras reads it);
    ``project_inside``: x_t U computed in the loop (a step's heavy work before its state)."""
    w = tf.constant(rand(4, 4, seed=len(name)) * 0.5)
    u = tf.constant(rand(4, 4, seed=len(name) + 1) * 0.5)
    steps = tf.transpose(tf.reverse(x, [1]) if reverse else x, [1, 0, 2])
    inputs = tf.TensorArray(tf.float32, size=STEPS).unstack(steps)

    def body(t, h):
        step = inputs.read(t)
        if project_inside:
            step = tf.matmul(step, u)
        return t + 1, tf.tanh(step + tf.matmul(h, w))

    _, h = tf.while_loop(lambda t, h: t < STEPS, body, (0, tf.zeros_like(x[:, 0])), name=name)
    return h


def _built(build):
    with v1_control_flow():
        return graph_of(build)


def _iterations(graph_def, frame_part: str) -> set[int]:
    return {n.attr["parallel_iterations"].i for n in graph_def.node
            if n.op == "Enter" and frame_part in n.attr["frame_name"].s.decode()}


def _optimized(build):
    graph_def = _built(build)
    result = LoopParallelism().run(graph_def, context(["out"], ["x:0"]))
    np.testing.assert_allclose(run(result.graph_def, ["out"], X)[0],
                               run(graph_def, ["out"], X)[0], rtol=1e-6)
    return graph_def, result


def _input():
    return tf.compat.v1.placeholder(tf.float32, [None, STEPS, 4], name="x")


def test_two_directions_run_one_iteration_at_a_time():
    def build():
        x = _input()
        tf.concat([_recurrence(x, "fwd"), _recurrence(x, "bwd", reverse=True)], 1, name="out")

    before, result = _optimized(build)
    assert _iterations(before, "fwd") == _iterations(before, "bwd") == {10}  # TF's default
    assert _iterations(result.graph_def, "fwd") == _iterations(result.graph_def, "bwd") == {1}
    assert result.notes == ["2 recurrent loops run one iteration at a time (each runs beside "
                            "another recurrence)"]


def test_loops_one_after_another_run_two_iterations_at_a_time():
    def build():
        x = _input()
        first = _recurrence(x, "first")
        tf.identity(_recurrence(x + first[:, None], "second"), name="out")

    _, result = _optimized(build)
    assert _iterations(result.graph_def, "first") == _iterations(result.graph_def, "second") == {2}
    assert result.notes == ["2 recurrent loops run with at most 2 iterations in flight"]


def test_input_product_in_the_loop_runs_in_lockstep_too():
    """x_t U does not wait for h, but in flight ahead it cost more than it gained (a
    bidirectional LSTM tagger without loop_projection: 1.06x -> 1.52x at batch 8)."""
    def build():
        x = _input()
        tf.concat([_recurrence(x, "fwd", project_inside=True),
                   _recurrence(x, "bwd", project_inside=True, reverse=True)], 1, name="out")

    _, result = _optimized(build)
    assert _iterations(result.graph_def, "fwd") == _iterations(result.graph_def, "bwd") == {1}


def test_loops_without_a_recurrent_state_are_left_alone():
    """A map over the steps (each output from its own input, written to a TensorArray)."""
    def build():
        x = _input()
        mapped = tf.map_fn(lambda row: tf.tanh(row * 2.0), x)
        tf.identity(mapped + _recurrence(x, "rnn")[:, None], name="out")

    _, result = _optimized(build)
    assert _iterations(result.graph_def, "map") == {10}
    assert _iterations(result.graph_def, "rnn") == {2}  # alone: the map is no recurrence


def test_nested_loops_are_left_alone():
    def build():
        x = _input()

        def outer(i, h):
            _, g = tf.while_loop(lambda j, g: j < 2, lambda j, g: (j + 1, tf.tanh(g + h)),
                                 (0, h), name="inner")
            return i + 1, g

        _, h = tf.while_loop(lambda i, h: i < 3, outer, (0, x[:, 0]), name="outer")
        tf.identity(h, name="out")

    _, result = _optimized(build)
    assert not result.changed
