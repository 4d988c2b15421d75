"""Give each of two recurrences that run side by side its own function call, so each starts
on its own thread.

TensorFlow's executor runs a ready node on the thread that made it ready unless the node is
"expensive" (its measured cost above ~8000 cycles), and a recurrence's per-step ops at small
batch never are: which thread a loop runs on follows from the order its first nodes became
ready. Two loops that can run at once (a ``Bidirectional`` layer's directions) then often run
interleaved on one thread while the other idles — on a TF1 export whose sequence length
constant folding made known, both loops started from the same constants and one thread did
72% of the work (profiler, 2 inter-op threads). A function call starts its body as a task of
the thread pool, so each loop outlined into a ``PartitionedCall`` (``_noinline``: Grappler
and the runtime keep the call) gets a thread of its own::

    ─► Enter ─► [frame A] ─► Exit ─►          ─► PartitionedCall(loop A) ─►
    ─► Enter ─► [frame B] ─► Exit ─►   =>     ─► PartitionedCall(loop B) ─►

Measured with 2 inter-op threads, oneDNN off, batch 1, after ``loop_parallelism``: that TF1
bidirectional LSTM 1.00x -> 1.11x its original; Keras bidirectional LSTM pair 2.04x -> 2.24x,
masked bi-GRU 2.17x -> 2.32x; level at batch 8; 2-6% slower with a single inter-op thread
(one call's overhead per loop, no second thread to gain). Only loops ``loop_parallelism``
runs one iteration at a time (recurrences side by side) are outlined.
"""

from __future__ import annotations

from tfopt.graph.frames import recurrences
from tfopt.graph.library import digest
from tfopt.graph.names import node_of
from tfopt.graph.outline import as_function, boundary, call_in_place
from tfopt.graph.shapes import StaticInfo
from tfopt.graph.view import GraphView
from tfopt.passes.base import GraphPass, PassContext, count_note

FUNCTION_PREFIX = "tfopt_loop"


class LoopCalls(GraphPass):

    def apply(self, view: GraphView, ctx: PassContext) -> list[str]:
        output_nodes = {node_of(t) for t in ctx.outputs}  # kept, as Identity of the call
        outlined = 0
        for loop in [f for f, beside in recurrences(view) if beside]:
            found = boundary(view, loop.members, ctx.outputs)
            if isinstance(found, str) or any(view.keeps(n) and n not in output_nodes
                                             for n in loop.members):
                continue
            inputs, outputs = found
            info = StaticInfo(view.to_graph_def())
            fdef = as_function(view, info, loop.members, inputs, outputs, FUNCTION_PREFIX,
                               {"_noinline": True})
            if fdef is None:
                continue
            # named by its body: two signatures' graphs merge into one SavedModel graph
            fdef.signature.name = f"{FUNCTION_PREFIX}_{digest(fdef)}"
            call_in_place(view, info, loop.members, inputs, outputs, fdef,
                          f"{loop.name}/call", ctx.outputs, {})
            outlined += 1
        return count_note(outlined, "recurrent loops that run side by side each called as "
                                    "a function of its own (a thread each)")
