"""Outline a set of nodes into a library function, called in their place with
``PartitionedCall``: the XLA stage's compiled cluster, a recurrence's own call.

The set must be convex (no path leaves it and comes back) and have no control edges out;
:func:`boundary` finds what flows in and out, or says why it cannot be cut out. Signature
outputs made inside keep their names, as Identity nodes of the call's results.
"""

from __future__ import annotations

from collections.abc import Iterable

from tensorflow.core.framework import function_pb2, graph_pb2, node_def_pb2

from tfopt.graph.library import body_to_function
from tfopt.graph.names import InputRef
from tfopt.graph.nodes import set_attr
from tfopt.graph.shapes import StaticInfo
from tfopt.graph.view import GraphView

CALL_ATTRS = ("config", "config_proto", "executor_type")  # PartitionedCall's, left empty


def boundary(view: GraphView, chosen: set[str], outputs_wanted: Iterable[str]
             ) -> tuple[list[str], list[str]] | str:
    """Tensors flowing in (read by ``chosen``, made outside) and out (made inside, read
    outside, or among ``outputs_wanted``, the signature's); or why it cannot be cut out."""
    inputs: list[str] = []
    outputs: list[str] = []
    wanted = {InputRef.parse(t).tensor for t in outputs_wanted}
    for node in view:
        if node.name not in chosen:
            continue
        for text in node.input:
            ref = InputRef.parse(text)
            if ref.node not in chosen and ref.tensor not in inputs:
                if ref.control:
                    return "control edges into it"
                inputs.append(ref.tensor)
        for consumer, ref in view.consumers(node.name):
            if consumer.name not in chosen:
                if ref.control:
                    return "control edges out of it"
                if ref.tensor not in outputs:
                    outputs.append(ref.tensor)
    outputs += [t for t in sorted(wanted) if InputRef.parse(t).node in chosen
                and t not in outputs]
    if not inputs or not outputs:
        return "no inputs or outputs"
    return inputs, outputs


def as_function(view: GraphView, info: StaticInfo, chosen: set[str], inputs: list[str],
                outputs: list[str], name: str, attrs: dict[str, bool]
                ) -> function_pb2.FunctionDef | None:
    """The ``chosen`` nodes as function ``name`` (function attributes ``attrs``): one argument
    per input, one result per output; None when it cannot be one."""
    arg_names = [f"arg{i}" for i in range(len(inputs))]
    body = graph_pb2.GraphDef()
    for arg, tensor in zip(arg_names, inputs, strict=True):
        set_attr(body.node.add(name=arg, op="Placeholder"), "dtype", info.dtype(tensor))
    renamed = dict(zip(inputs, arg_names, strict=True))
    for node in view:
        if node.name not in chosen:
            continue
        copy = body.node.add()
        copy.CopyFrom(node)
        del copy.input[:]
        for text in node.input:
            ref = InputRef.parse(text)
            copy.input.append(text if ref.node in chosen else renamed[ref.tensor])
        copy.device = ""
    fdef = function_pb2.FunctionDef()
    fdef.signature.name = name
    for arg, tensor in zip(arg_names, inputs, strict=True):
        fdef.signature.input_arg.add(name=arg, type=info.dtype(tensor).as_datatype_enum)
    for i, tensor in enumerate(outputs):
        fdef.signature.output_arg.add(name=f"out{i}", type=info.dtype(tensor).as_datatype_enum)
    for key, value in attrs.items():
        fdef.attr[key].b = value
    library = {f.signature.name: f for f in view.graph_def.library.function}
    return body_to_function(fdef, body, library, results=outputs)


def call_in_place(view: GraphView, info: StaticInfo, chosen: set[str], inputs: list[str],
                  outputs: list[str], fdef: function_pb2.FunctionDef, call_name: str,
                  protected_outputs: Iterable[str], attrs: dict[str, bool]) -> None:
    """Replace ``chosen`` in ``view`` by one call of ``fdef`` (added to the library, call
    attributes ``attrs``); signature outputs made inside (``protected_outputs``, tensors)
    keep their names as Identity nodes of the call's results."""
    call = node_def_pb2.NodeDef(name=view.unique_name(call_name), op="PartitionedCall",
                                input=inputs)
    set_attr(call, "Tin", [info.dtype(t) for t in inputs])
    set_attr(call, "Tout", [info.dtype(t) for t in outputs])
    call.attr["f"].func.name = fdef.signature.name
    for key, value in attrs.items():
        set_attr(call, key, value)
    for key in CALL_ATTRS:
        set_attr(call, key, "")
    view.add(call)
    if fdef.signature.name not in {f.signature.name for f in view.graph_def.library.function}:
        view.graph_def.library.function.add().CopyFrom(fdef)  # else the same body (named by it)
    for port, tensor in enumerate(outputs):
        view.replace_uses(InputRef.parse(tensor), InputRef(call.name, port), keep_controls=False)
    kept = {InputRef.parse(t).node for t in protected_outputs}
    for name in chosen & kept:
        node = view.nodes[name]
        port = outputs.index(InputRef(name).tensor)
        view.retype(node, "Identity", keep=("T",))
        set_attr(node, "T", info.dtype(InputRef(name).tensor))
        view.set_inputs(node, [f"{call.name}:{port}" if port else call.name])
    view.remove([n for n in chosen if n not in kept])
