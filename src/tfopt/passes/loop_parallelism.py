"""Run a lowered recurrence one or two iterations at a time (``parallel_iterations``).

A lowered loop lets up to ``parallel_iterations`` iterations be in flight (Keras and
``tf.while_loop`` ask for 32 or 10). In a recurrence only the bookkeeping can run ahead —
the counter, the condition, reading step t's input — since every step's real work waits for
the previous step's state; so the executor keeps up to 32 iterations' frames open, and hands
that small work between threads, for nothing. Beside a second recurrence (the two directions
of a ``Bidirectional`` layer) the racing bookkeeping of both loops is what the two threads do
instead of the two recurrences. Measured on 2 cores, TensorFlow 2.21, batch 1, oneDNN off
(benchmarks/RECURRENT_ONEDNN_OFF.md has the tables): a masked bidirectional GRU 1.53x -> 2.23x
its original, a bidirectional LSTM pair 1.27x -> 2.06x, with one iteration at a time; a lone
recurrence gains with two in flight (three stacked GRUs at batch 8: 1.18x -> 1.33x) and loses
a little with one (1.14x), since the next step's input read then overlaps the current step.

So: a loop whose floating-point state is computed from itself, and whose work that does not
wait for that state holds no matmul or convolution (Keras' RNNs once ``loop_projection`` took
the input product out), runs with 1 iteration in flight when another such loop can run at
the same time (neither reaches the other), else with 2. A loop whose independent work is
heavy (an accumulation of per-step products, ``map_fn``) keeps its setting: there, iterations
in flight are real parallel work. Loops inside loops are left alone. Only scheduling changes:
every iteration computes what it computed.
"""

from __future__ import annotations

from tfopt.graph.frames import frames, light_recurrence, side_by_side
from tfopt.graph.nodes import get_attr, set_attr
from tfopt.graph.view import GraphView
from tfopt.passes.base import GraphPass, PassContext

BESIDE_ANOTHER = 1  # iterations in flight for a recurrence that runs beside another
ALONE = 2           # for one that runs alone: the next step's input read overlaps this step


class LoopParallelism(GraphPass):

    def apply(self, view: GraphView, ctx: PassContext) -> list[str]:
        loops = [f for f in frames(view) if light_recurrence(view, f)]
        beside = side_by_side(view, loops)
        counts = {BESIDE_ANOTHER: 0, ALONE: 0}
        for loop in loops:
            want = BESIDE_ANOTHER if loop.name in beside else ALONE
            enters = [n for n in loop.enters if get_attr(n, "parallel_iterations", 10) > want]
            for enter in enters:
                set_attr(enter, "parallel_iterations", want)
            counts[want] += bool(enters)
        notes = []
        if counts[BESIDE_ANOTHER]:
            notes.append(f"{counts[BESIDE_ANOTHER]} recurrent loops run one iteration at a "
                         "time (each runs beside another recurrence)")
        if counts[ALONE]:
            notes.append(f"{counts[ALONE]} recurrent loops run with at most 2 iterations in "
                         "flight")
        return notes
