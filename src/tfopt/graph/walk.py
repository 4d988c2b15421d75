"""Questions about a whole GraphDef that need no index: an order, what a tensor depends on,
op counts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from tensorflow.core.framework import graph_pb2, node_def_pb2

from tfopt.graph.library import referenced_functions
from tfopt.graph.names import node_of


def topological_order(graph_def: graph_pb2.GraphDef) -> list[node_def_pb2.NodeDef]:
    """Nodes ordered so each comes after its inputs (cycles, e.g. TF1 loops, appended last)."""
    nodes = {n.name: n for n in graph_def.node}
    pending = {n.name: {node_of(t) for t in n.input if node_of(t) in nodes} for n in graph_def.node}
    users: dict[str, list[str]] = defaultdict(list)
    for name, deps in pending.items():
        for dep in deps:
            users[dep].append(name)
    ready = [n.name for n in graph_def.node if not pending[n.name]]
    order: list[str] = []
    while ready:
        name = ready.pop()
        order.append(name)
        for user in users[name]:
            deps = pending[user]
            deps.discard(name)
            if not deps:
                ready.append(user)
    placed = set(order)
    order.extend(n.name for n in graph_def.node if n.name not in placed)
    return [nodes[n] for n in order]


def reachable_from(nodes: graph_pb2.GraphDef | Iterable[node_def_pb2.NodeDef],
                   targets: Iterable[str]) -> set[str]:
    """Names of nodes the ``targets`` depend on (data and control), targets included."""
    if isinstance(nodes, graph_pb2.GraphDef):
        nodes = nodes.node
    nodes = {n.name: n for n in nodes}
    seen: set[str] = set()
    stack = [node_of(t) for t in targets]
    while stack:
        name = stack.pop()
        if name in seen or name not in nodes:
            continue
        seen.add(name)
        stack.extend(node_of(t) for t in nodes[name].input)
    return seen


def depends_on_op(graph_def: graph_pb2.GraphDef, tensor: str, ops: Iterable[str]) -> bool:
    """Whether ``tensor`` is computed from a node of one of ``ops``, in the main graph or in a
    function it calls."""
    ops = set(ops)
    reached = reachable_from(graph_def, [tensor])
    upstream = [n for n in graph_def.node if n.name in reached]
    if any(n.op in ops for n in upstream):
        return True
    library = {f.signature.name: f for f in graph_def.library.function}
    return any(n.op in ops for name in referenced_functions(upstream, graph_def.library)
               for n in library[name].node_def)


def op_counts(graph_def: graph_pb2.GraphDef) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for node in graph_def.node:
        counts[node.op] += 1
    return dict(counts)
