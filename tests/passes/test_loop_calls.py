"""loop_calls: recurrences that run side by side are each called as a function of their own;
a lone one stays in the graph."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tests.passes.helpers import context, counts, run
from tests.passes.test_loop_parallelism import X, _built, _input, _recurrence
from tfopt.passes.loop_calls import LoopCalls


def _outlined(build, outputs=("out",)):
    graph_def = _built(build)
    result = LoopCalls().run(graph_def, context(list(outputs), ["x:0"]))
    for name in outputs:
        np.testing.assert_allclose(run(result.graph_def, [name], X)[0],
                                   run(graph_def, [name], X)[0], rtol=1e-6)
    return result


def test_two_directions_are_each_called_as_a_function():
    def build():
        x = _input()
        tf.concat([_recurrence(x, "fwd"), _recurrence(x, "bwd", reverse=True)], 1, name="out")

    result = _outlined(build)
    graph = result.graph_def
    calls = [n for n in graph.node if n.op == "PartitionedCall"]
    assert len(calls) == 2 and "Enter" not in counts(graph)  # the frames live in the calls
    functions = {f.signature.name: f for f in graph.library.function}
    # named by their bodies: graphs of two signatures merge into one SavedModel graph
    names = {call.attr["f"].func.name for call in calls}
    assert len(names) == 2 and all(n.startswith("tfopt_loop_") for n in names)
    for call in calls:
        body = functions[call.attr["f"].func.name]
        assert body.attr["_noinline"].b  # Grappler and the runtime keep the call
        assert {"Enter", "Merge", "NextIteration", "Exit"} <= {n.op for n in body.node_def}
    assert result.notes == ["2 recurrent loops that run side by side each called as a "
                            "function of its own (a thread each)"]


def test_an_output_read_from_a_loop_keeps_its_name():
    def build():
        x = _input()
        fwd = tf.identity(_recurrence(x, "fwd"), name="fwd_state")
        tf.concat([fwd, _recurrence(x, "bwd", reverse=True)], 1, name="out")

    result = _outlined(build, outputs=("out", "fwd_state"))
    assert result.changed
    assert {n.name for n in result.graph_def.node} >= {"out", "fwd_state"}


def test_a_lone_recurrence_stays_in_the_graph():
    def build():
        x = _input()
        first = _recurrence(x, "first")
        tf.identity(_recurrence(x + first[:, None], "second"), name="out")

    assert not _outlined(build).changed
