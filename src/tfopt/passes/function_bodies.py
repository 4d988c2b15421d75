"""Run the clean-up passes inside the function library: ``If``/``While``/``Case`` branches and
loop bodies, and any other function the graph still calls.

TF2 keeps ``tf.cond``/``tf.while_loop`` bodies, ``map_fn`` and Keras RNN steps as functions;
their Identity chains, debug ops and constant arithmetic run on every call (every loop
iteration). Each body is turned into a GraphDef (arguments as placeholders), cleaned by the
pipeline itself with the registry's rows marked ``in_bodies`` (so ``--skip`` and the graph
checks apply, and each inner pass gets its own record), the function's arguments, results and
control results protected, then put back under the same signature. What makes a loop correct is untouched: the While node, its
attributes and the loop-carried signature; stateful ops stay (only pure nodes that no result
reaches are dropped).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from tensorflow.core.framework import graph_pb2

from tfopt.graph.library import body_to_function, function_body
from tfopt.graph.names import InputRef
from tfopt.graph.ops import DEBUG_OPS
from tfopt.graph.shapes import is_stateful
from tfopt.graph.view import GraphView
from tfopt.graph.walk import reachable_from
from tfopt.passes.base import GraphPass, PassContext, PassResult, count_note

if TYPE_CHECKING:
    from tfopt.passes.base import PassRecord

# The pipeline's run over the rows marked in_bodies: (body graph, its context) -> a result
# with ``graph_def`` and ``records``.
RunBody = Callable[[graph_pb2.GraphDef, PassContext], object]


def _clean(fdef, library: dict, ctx: PassContext, run_body: RunBody
           ) -> tuple[object, int, list[PassRecord]]:
    """The cleaned FunctionDef (None: left as it was), how many nodes it lost, and what each
    inner pass did."""
    try:
        body, results = function_body(fdef)
    except Exception:  # TensorFlow cannot read this body back (e.g. nested direct calls)
        return None, 0, []
    ops = {n.name: n.op for n in body.node}
    # Control results keep side effects in order; a check or print is no side effect we keep,
    # nor a pure op (a variable read that freezing turned into an Identity of the weight).
    effects = {n for n in fdef.control_ret.values()
               if ops.get(n) not in DEBUG_OPS and (n not in ops or is_stateful(ops[n]))}
    keep = {InputRef.parse(t).node for t in results} | effects
    args = [a.name for a in fdef.signature.input_arg]
    inner = PassContext(protected=keep | set(args),
                        outputs=[InputRef.parse(t).tensor for t in results],
                        inputs=[a + ":0" for a in args], kernels=None,
                        max_const_bytes=ctx.max_const_bytes)
    result = run_body(body, inner)
    body = result.graph_def
    reached = reachable_from(body, list(keep))
    view = GraphView(body)
    view.remove([n.name for n in body.node if n.name not in reached and n.name not in args
                 and not is_stateful(n.op)])
    body = view.to_graph_def()
    new = body_to_function(fdef, body, library)
    if new is None:
        return None, 0, []
    present = {n.name for n in new.node_def}
    gone = [k for k, v in new.control_ret.items() if v not in present]
    for key in gone:
        del new.control_ret[key]
    if gone:
        kept = [c for c in new.signature.control_output if c not in gone]
        del new.signature.control_output[:]
        new.signature.control_output.extend(kept)
    return new, len(fdef.node_def) - len(new.node_def), result.records


class CleanFunctionBodies(GraphPass):
    """Given ``run_body`` by the pipeline (its run over the rows marked ``in_bodies``)."""

    def __init__(self, run_body: RunBody):
        self.run_body = run_body

    def run(self, graph_def: graph_pb2.GraphDef, ctx: PassContext) -> PassResult:
        view = GraphView(graph_def)
        lib = view.graph_def.library
        library = {f.signature.name: f for f in lib.function}
        cleaned = removed = 0
        records: list[PassRecord] = []
        for i, fdef in enumerate(list(lib.function)):
            new, lost, inner = _clean(fdef, library, ctx, self.run_body)
            if new is None or new.SerializeToString(deterministic=True) == \
                    fdef.SerializeToString(deterministic=True):
                continue
            lib.function[i].CopyFrom(new)
            records.extend(r for r in inner if r.changed)
            cleaned += 1
            removed += lost
        notes = count_note(cleaned, f"function bodies cleaned ({removed} nodes fewer)")
        return PassResult(view.to_graph_def(), bool(notes), notes, records)
