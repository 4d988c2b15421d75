"""Lowered loops (TF1 frames): which nodes run in a loop, what each iteration carries, which
loops can run at the same time.

A lowered ``While`` is a frame: tensors enter through ``Enter`` nodes sharing a
``frame_name``, each loop variable goes round ``Merge -> Switch -> ... -> NextIteration ->
Merge``, and results leave through ``Exit``. Every edge out of a frame goes through an Exit,
so the nodes reached from a frame's Enters, stopping at its Exits, are the nodes that run in
it::

    x ─► Enter ─► Merge ─► Switch ─:0─► Exit ─► y
                    ▲        └─:1─► [body] ─► NextIteration ─┐
                    └────────────────────────────────────────┘
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field

from tensorflow.core.framework import node_def_pb2

from tfopt.graph.nodes import get_attr
from tfopt.graph.view import GraphView

FLOATING = frozenset({"float16", "bfloat16", "float32", "float64"})
ACCUMULATORS = ("TensorArray", "TensorList")  # a loop variable they update collects outputs


@dataclass
class Frame:
    """One lowered loop of the main graph."""

    name: str
    enters: list[node_def_pb2.NodeDef]
    members: set[str] = field(default_factory=set)  # nodes that run in it, Enters and Exits too
    exits: list[str] = field(default_factory=list)
    nested: bool = False  # holds an inner loop or is held by an outer one

    def variables(self, view: GraphView) -> list[tuple[node_def_pb2.NodeDef,
                                                       node_def_pb2.NodeDef]]:
        """The loop variables: (Merge, the NextIteration feeding it back)."""
        found = []
        for name in self.members:
            merge = view.nodes[name]
            if merge.op != "Merge":
                continue
            back = [view.nodes.get(ref.node) for ref in view.data_inputs(merge)]
            nxt = [n for n in back if n is not None and n.op == "NextIteration"]
            if len(nxt) == 1:
                found.append((merge, nxt[0]))
        return found


def frames(view: GraphView) -> list[Frame]:
    """Every frame of the graph, members found from its Enters (see the module docstring)."""
    by_name: dict[str, list[node_def_pb2.NodeDef]] = defaultdict(list)
    for node in view:
        if node.op == "Enter":
            by_name[get_attr(node, "frame_name", "")].append(node)
    found = [Frame(name, enters) for name, enters in sorted(by_name.items())]
    for frame in found:
        queue = deque(n.name for n in frame.enters)
        while queue:
            name = queue.popleft()
            if name in frame.members:
                continue
            frame.members.add(name)
            if view.nodes[name].op == "Exit":
                frame.exits.append(name)
                continue
            queue.extend(n.name for n, _ in view.consumers(name))
    for frame in found:
        for other in found:
            if other is not frame and any(n.name in frame.members for n in other.enters):
                frame.nested = other.nested = True
    return found


def recurrent(view: GraphView, frame: Frame) -> list[node_def_pb2.NodeDef]:
    """The Merges of floating-point loop variables whose next value is computed from their
    current one (an RNN's state; not a counter, not a TensorList of outputs, nor a TF1
    TensorArray's float "flow", which only orders its writes)."""
    found = []
    for merge, nxt in frame.variables(view):
        dtype = get_attr(merge, "T")
        if dtype is None or dtype.name not in FLOATING:
            continue
        seen: set[str] = set()
        stack = [ref.node for ref in view.data_inputs(nxt)]
        while stack:
            name = stack.pop()
            if name in seen or name not in frame.members:
                continue
            seen.add(name)
            node = view.nodes[name]
            if node.op != "Merge" and not node.op.startswith(ACCUMULATORS):
                stack.extend(ref.node for ref in view.data_inputs(node))
        if merge.name in seen:
            found.append(merge)
    return found


def reached_after(view: GraphView, frame: Frame) -> set[str]:
    """Nodes that run after the loop ends: those its Exits reach (data or control)."""
    seen: set[str] = set()
    stack = list(frame.exits)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(n.name for n, _ in view.consumers(name))
    return seen


def recurrences(view: GraphView) -> list[tuple[Frame, bool]]:
    """Every loop (not nested) with a recurrent state (:func:`recurrent`), and whether another
    of them can run at the same time (neither one's Exits reach the other's Enters)."""
    loops = [f for f in frames(view) if not f.nested and recurrent(view, f)]
    after = {f.name: reached_after(view, f) for f in loops}

    def apart(a: Frame, b: Frame) -> bool:
        return not any(n.name in after[a.name] for n in b.enters) and not any(
            n.name in after[b.name] for n in a.enters)

    return [(a, any(apart(a, b) for b in loops if b is not a)) for a in loops]
