"""Merge loop variables that hold the same value in every iteration.

Keras' recurrent loops carry a loop counter and a time step that both start at 0 and add 1,
and a masked RNN carries its output and its state, both starting at zeros and both updated as
``SelectV2(mask, new, own previous)``. Once lowered, each variable costs a Merge, Switch,
Identity and NextIteration per iteration besides its own update ops; at batch 1 a loop is
executor overhead more than arithmetic, so every node per iteration counts::

    While(0, 0, zeros, zeros)                      While(0, 0, zeros, zeros)
      body(i, t, o, h):                              body(i, t, o, h):
        i + 1, t + 1,                        =>        i, t + 1,                (i passes through)
        Select(m, f(h), o), Select(m, f(h), h)         o, Select(m, f(t...), h) (o passes through)
    readers of While:0 / While:2               readers of While:1 / While:3

Two variables are the same value in every iteration when they enter with the same tensor and
the body computes the same expression for both, given that they were equal on entry
(induction). That is checked on a copy of the body: variables entering alike start as one class,
each aliased to its class's first member, duplicate nodes merged (the ``cse`` pass), and each
class split by the tensor the body returns for its members; repeated until no class splits,
so what is kept is a consistent set. The body and the condition then
read the kept variable, the duplicate passes through unchanged (``lower_control_flow`` turns it
into a constant Enter nobody reads, and removes it), and readers after the loop read the kept
variable's output. The loop's signature and attributes stay as they are.
"""

from __future__ import annotations

import numpy as np
from tensorflow.core.framework import graph_pb2, node_def_pb2

from tfopt.graph.library import body_to_function, function_body, passes_through
from tfopt.graph.names import InputRef
from tfopt.graph.nodes import const_shape
from tfopt.graph.symbolic import SymbolicShapes
from tfopt.graph.view import GraphView
from tfopt.passes.base import PassContext
from tfopt.passes.loops import Loop, LoopPass

_SINK = "__tfopt_loop_result_"


def _zeros_shape(view: GraphView, shapes: SymbolicShapes, ref: InputRef):
    """The symbolic shape of an all-zeros tensor (``ZerosLike``, ``Fill`` with 0, a small
    zero constant); None for any other tensor or an unknown shape."""
    node = view.nodes.get(ref.node)
    if node is None or ref.port != 0:
        return None
    if node.op == "ZerosLike":
        return shapes.shape(view.data_inputs(node)[0])
    if node.op == "Fill":
        fill = view.const_input(node, 1)
        return shapes.shape(ref) if fill is not None and not fill.any() else None
    if node.op == "Const" and int(np.prod(const_shape(node))) <= 4096:
        return const_shape(node) if not view.value(node).any() else None
    return None


def _candidates(view: GraphView, loop: node_def_pb2.NodeDef, body,
                shapes: SymbolicShapes) -> dict[int, int]:
    """duplicate index -> kept index, for loop variables entering with the same value: one
    tensor, or zeros of one shape (Keras starts a masked RNN's output as zeros_like its first
    step and its state as zeros of the batch). A variable the body passes through is left to
    lower_control_flow."""
    types = list(loop.attr["T"].list.type)
    first: dict[tuple, int] = {}
    pairs = {}
    for index, ref in enumerate(view.data_inputs(loop)):
        if passes_through(body, index):
            continue
        zeros = _zeros_shape(view, shapes, ref)
        key = (("zeros", zeros) if zeros is not None else str(ref), types[index])
        if key in first:
            pairs[index] = first[key]
        else:
            first[key] = index
    return pairs


def _aliased(body: graph_pb2.GraphDef, args: list[str], pairs: dict[int, int]) -> GraphView:
    """The body with every read of a duplicate's argument reading its kept variable's."""
    view = GraphView(body)
    for dup, kept in pairs.items():
        view.replace_uses(InputRef(args[dup], 0), InputRef(args[kept], 0))
    return view


def equal_pairs(fdef, pairs: dict[int, int]) -> dict[int, int]:
    """Which of the hypothesised ``pairs`` (duplicate -> kept argument index of the body
    ``fdef``) hold: the coarsest split of the classes they form whose members the body
    computes as one tensor once each member is aliased to its class's first (partition
    refinement, as in minimising an automaton). Returns duplicate -> kept index."""
    from tfopt.passes.cse import MergeDuplicates

    body, results = function_body(fdef)
    args = [a.name for a in fdef.signature.input_arg]
    sinks = [f"{_SINK}{k}" for k in range(len(results))]
    ctx = PassContext(protected=set(sinks) | set(args), outputs=[], inputs=[])
    while pairs:
        view = _aliased(body, args, pairs)
        for sink, tensor in zip(sinks, results, strict=True):
            view.add_input(view.add(node_def_pb2.NodeDef(name=sink, op="Identity")), tensor)
        merged = MergeDuplicates().run(view.to_graph_def(), ctx).graph_def
        read = {n.name: str(InputRef.parse(n.input[0])) for n in merged.node if n.name in sinks}
        first: dict[tuple[int, str], int] = {}  # (class, result tensor) -> its first member
        split = {}
        for index in sorted({*pairs, *pairs.values()}):
            key = (pairs.get(index, index), read[sinks[index]])
            first.setdefault(key, index)
            if first[key] != index:
                split[index] = first[key]
        if split == pairs:
            return pairs
        pairs = split
    return {}


def _rewritten(fdef, library: dict, pairs: dict[int, int], pass_through: bool):
    """``fdef`` reading each kept variable for its duplicates; ``pass_through`` (the body):
    each duplicate's result is its own argument. None if the function cannot be rebuilt."""
    body, results = function_body(fdef)
    args = [a.name for a in fdef.signature.input_arg]
    view = _aliased(body, args, pairs)
    if pass_through:
        results = [f"{args[i]}:0" if i in pairs else t for i, t in enumerate(results)]
    return body_to_function(fdef, view.to_graph_def(), library, results)


class MergeLoopVariables(LoopPass):

    def start(self, view: GraphView) -> None:
        self.shapes = SymbolicShapes(view)  # the loops' inputs stay put while it runs

    def rewrite(self, view: GraphView, loop: Loop, library: dict) -> tuple[object, object, int]:
        pairs = _candidates(view, loop.node, loop.body, self.shapes)
        pairs = equal_pairs(loop.body, pairs) if pairs else {}
        if not pairs:
            return None, None, 0
        body = _rewritten(loop.body, library, pairs, pass_through=True)
        cond = _rewritten(loop.cond, library, pairs, pass_through=False)
        if body is None or cond is None:
            return None, None, 0
        for dup, kept in pairs.items():
            view.replace_uses(InputRef(loop.node.name, dup), InputRef(loop.node.name, kept),
                              keep_controls=False)
        return body, cond, len(pairs)

    def note(self, count: int, loops: int) -> list[str]:
        return [f"{count} loop variables merged into one holding the same value every "
                f"iteration ({loops} loops)"]
