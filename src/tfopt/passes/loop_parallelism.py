"""Run a lowered recurrence one or two iterations at a time (``parallel_iterations``).

A lowered loop lets up to ``parallel_iterations`` iterations be in flight (Keras and
``tf.while_loop`` ask for 32 or 10). In a recurrence little can run ahead — the counter, the
condition, reading step t's input, at most step t's input product — since every step's main
work waits for the previous step's state; the executor keeps up to 32 iterations' frames open
and hands that small work between threads. Beside a second recurrence (the two directions of a
``Bidirectional`` layer) the racing work of both loops is what the two threads do instead of
the two recurrences. Measured on 2 cores, TensorFlow 2.21, oneDNN off, in one process with
the variants called in alternating blocks (benchmarks/README.md, session 21):

- one iteration at a time beside another: masked bidirectional GRU 1.53x -> 2.23x its
  original at batch 1, 1.33x -> 1.58x at batch 8; a bidirectional LSTM pair 1.27x -> 2.06x;
  with the input product still in the loop (``loop_projection`` skipped) a bidirectional LSTM
  tagger 1.13x -> 1.63x at batch 1 and 1.06x -> 1.52x at batch 8;
- two at a time alone: three stacked GRUs 1.18x -> 1.33x at batch 8 (one at a time: 1.14x,
  the next step's input read no longer overlapping this step); with the input product in the
  loop, LSTM -> GRU 1.18x -> 1.46x and the stacked GRUs 1.28x -> 1.63x at batch 8.

So a loop whose floating-point state is computed from itself runs with 1 iteration in flight
when another such loop can run at the same time (neither reaches the other), else with 2.
Loops without such a state (``map_fn``: a counter and a list of outputs, each iteration
independent) keep their setting: there, iterations in flight are parallel work. Loops inside
loops are left alone. Only scheduling changes: every iteration computes what it computed.
"""

from __future__ import annotations

from tfopt.graph.frames import recurrences
from tfopt.graph.nodes import get_attr, set_attr
from tfopt.graph.view import GraphView
from tfopt.passes.base import GraphPass, PassContext

BESIDE_ANOTHER = 1  # iterations in flight for a recurrence that runs beside another
ALONE = 2           # for one that runs alone: the next step's input read overlaps this step


class LoopParallelism(GraphPass):

    def apply(self, view: GraphView, ctx: PassContext) -> list[str]:
        counts = {BESIDE_ANOTHER: 0, ALONE: 0}
        for loop, beside in recurrences(view):
            want = BESIDE_ANOTHER if beside else ALONE
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
