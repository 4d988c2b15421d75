"""Remove every node (and library function) that the requested outputs never reach."""

from __future__ import annotations

from collections.abc import Iterable

from tensorflow.core.framework import attr_value_pb2, function_pb2, node_def_pb2

from tfopt.graph import GraphView, reachable_from
from tfopt.passes.base import GraphPass, PassContext, count_note


def _functions_in_attr(value: attr_value_pb2.AttrValue) -> list[str]:
    if value.HasField("func"):
        return [value.func.name]
    if value.HasField("list"):
        return [f.name for f in value.list.func]
    return []


def referenced_functions(nodes: Iterable[node_def_pb2.NodeDef],
                         lib: function_pb2.FunctionDefLibrary) -> set[str]:
    """Library functions reachable from ``nodes`` (transitively)."""
    nodes = list(nodes)
    library = {f.signature.name: f for f in lib.function}
    stack = [name for node in nodes for value in node.attr.values()
             for name in _functions_in_attr(value)]
    stack += [node.op for node in nodes if node.op in library]
    seen: set[str] = set()
    while stack:
        name = stack.pop()
        if name in seen or name not in library:
            continue
        seen.add(name)
        for node in library[name].node_def:
            if node.op in library:
                stack.append(node.op)
            for value in node.attr.values():
                stack.extend(_functions_in_attr(value))
    return seen


class StripUnused(GraphPass):
    name = "strip_unused"

    def apply(self, view: GraphView, ctx: PassContext) -> list[str]:
        keep = reachable_from(view.nodes.values(), ctx.outputs + ctx.init_ops) | ctx.protected
        doomed = [n.name for n in view if n.name not in keep]
        view.remove(doomed)
        notes = count_note(len(doomed), "unreachable nodes removed")
        used = referenced_functions(view.nodes.values(), view.graph_def.library)
        library = view.graph_def.library
        unused = [f for f in library.function if f.signature.name not in used]
        if unused:
            kept = [f for f in library.function if f.signature.name in used]
            del library.function[:]
            library.function.extend(kept)
            grads = [g for g in library.gradient if g.function_name in used]
            del library.gradient[:]
            library.gradient.extend(grads)
            notes += count_note(len(unused), "unused library functions removed")
        return notes
