"""The function library: which functions a graph calls, renaming them, and a function's
body as a GraphDef and back (If/While branches, loop bodies, compiled clusters)."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator

from tensorflow.core.framework import attr_value_pb2, graph_pb2, node_def_pb2

from tfopt.graph.names import InputRef


def _functions_in_attr(value: attr_value_pb2.AttrValue) -> list[str]:
    if value.HasField("func"):
        return [value.func.name]
    if value.HasField("list"):
        return [f.name for f in value.list.func]
    return []


def renamed_refs(node: node_def_pb2.NodeDef, names: dict[str, str]) -> node_def_pb2.NodeDef:
    """A copy of ``node`` whose references to library functions (as its op, or in ``func`` /
    ``list(func)`` attributes) follow ``names`` (old -> new; others unchanged)."""
    copy = node_def_pb2.NodeDef()
    copy.CopyFrom(node)
    if copy.op in names:
        copy.op = names[copy.op]
    for value in copy.attr.values():
        if value.HasField("func"):
            value.func.name = names.get(value.func.name, value.func.name)
        for fn in value.list.func:
            fn.name = names.get(fn.name, fn.name)
    return copy


def with_functions_renamed(graph_def: graph_pb2.GraphDef,
                           names: dict[str, str]) -> graph_pb2.GraphDef:
    """A copy of ``graph_def`` whose library functions are renamed by ``names``, with every
    reference to them (main graph and function bodies) following."""
    out = graph_pb2.GraphDef()
    out.versions.CopyFrom(graph_def.versions)
    out.node.extend(renamed_refs(n, names) for n in graph_def.node)
    for fn in graph_def.library.function:
        copy = out.library.function.add()
        copy.CopyFrom(fn)
        copy.signature.name = names.get(fn.signature.name, fn.signature.name)
        del copy.node_def[:]
        copy.node_def.extend(renamed_refs(n, names) for n in fn.node_def)
    out.library.gradient.extend(graph_def.library.gradient)
    return out


def referenced_functions(nodes: Iterable[node_def_pb2.NodeDef],
                         lib) -> set[str]:
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


def digest(fdef) -> str:
    """A short hash of a function's whole definition: a name part that two different bodies
    never share (functions are registered process-wide, and signature graphs merged, by
    name)."""
    return hashlib.sha1(fdef.SerializeToString(deterministic=True)).hexdigest()[:10]


def all_nodes(graph_def: graph_pb2.GraphDef) -> Iterator[node_def_pb2.NodeDef]:
    """The main graph's nodes, then those of every function in its library."""
    yield from graph_def.node
    for fn in graph_def.library.function:
        yield from fn.node_def


def function_uses(graph_def: graph_pb2.GraphDef) -> Counter:
    """How many nodes (main graph and function bodies) name each library function, as their
    op or in a function attribute: a function named once belongs to that one node."""
    uses: Counter = Counter()
    for node in all_nodes(graph_def):
        uses[node.op] += 1
        for value in node.attr.values():
            uses.update(_functions_in_attr(value))
    return uses


def passes_through(fdef, index: int) -> bool:
    """A loop body returns its argument ``index`` unchanged: a loop invariant."""
    ret = fdef.ret[fdef.signature.output_arg[index].name]
    return InputRef.parse(ret).node == fdef.signature.input_arg[index].name


def function_nodes(graph_def: graph_pb2.GraphDef) -> int:
    """Nodes inside the graph's function library (If/While bodies, calls freezing left)."""
    return sum(len(f.node_def) for f in graph_def.library.function)


# --- function bodies ------------------------------------------------------------------------


def function_body(fdef) -> tuple[graph_pb2.GraphDef, list[str]]:
    """A FunctionDef's body as a GraphDef (arguments become Placeholders named like them,
    ``node:out_arg:i`` inputs become flat ``node:k``: TensorFlow's own conversion) and its
    results as flat tensor names, in output order."""
    from tensorflow.python.framework.function_def_to_graph import function_def_to_graph_def

    graph_def, nested_to_flat = function_def_to_graph_def(fdef)
    return graph_def, [nested_to_flat[fdef.ret[a.name]] for a in fdef.signature.output_arg]


def _output_offsets(node: node_def_pb2.NodeDef, library: dict) -> list[tuple[str, int]] | None:
    """(output arg name, flat start) per output arg of ``node``'s op, or None if unknown."""
    from tensorflow.python.framework import op_def_registry

    if node.op in library:
        return [(arg.name, i) for i, arg in enumerate(library[node.op].signature.output_arg)]
    op_def = op_def_registry.get(node.op)
    if op_def is None:
        return None
    offsets, start = [], 0
    for arg in op_def.output_arg:
        if arg.number_attr:
            length = node.attr[arg.number_attr].i
        elif arg.type_list_attr:
            length = len(node.attr[arg.type_list_attr].list.type)
        else:
            length = 1
        if length:  # an empty list (ParseExampleV2 with no sparse keys) names no output
            offsets.append((arg.name, start))
        start += length
    return offsets


def body_to_function(template, body: graph_pb2.GraphDef, library: dict,
                     results: list[str] | None = None):
    """Put an edited ``body`` (from :func:`function_body`) back into a copy of the FunctionDef
    ``template``: same signature, results and control results; flat inputs nested again.
    With ``results`` (flat tensor names, one per output arg) the results are set from them.
    Returns None when an op's outputs cannot be named (then keep the original)."""
    from tensorflow.core.framework import function_pb2

    args = {a.name for a in template.signature.input_arg}
    nodes = {n.name: n for n in body.node}
    offsets: dict[str, list[tuple[str, int]]] = {}

    def nested(text: str) -> str | None:
        ref = InputRef.parse(text)
        if ref.node in args:
            return ("^" if ref.control else "") + ref.node
        if ref.control:
            return text
        if ref.node not in offsets:
            found = _output_offsets(nodes[ref.node], library) if ref.node in nodes else None
            if found is None:
                return None
            offsets[ref.node] = found
        name, start = max((o for o in offsets[ref.node] if o[1] <= ref.port), key=lambda o: o[1])
        return f"{ref.node}:{name}:{ref.port - start}"

    fdef = function_pb2.FunctionDef()
    fdef.CopyFrom(template)
    del fdef.node_def[:]
    for node in body.node:
        if node.name in args:
            continue
        copy = fdef.node_def.add()
        copy.CopyFrom(node)
        del copy.input[:]
        for text in node.input:
            converted = nested(text)
            if converted is None:
                return None
            copy.input.append(converted)
    for arg, tensor in zip(fdef.signature.output_arg, results or [], strict=False):
        converted = nested(tensor)
        if converted is None:
            return None
        fdef.ret[arg.name] = converted
    return fdef
