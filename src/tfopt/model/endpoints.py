"""TF2 attribute endpoints (``loaded.serve(x)``): found on the original, restated on the output.

A Keras 3 export or a ``tf.Module`` save exposes its functions as attributes of the loaded
object, with their own input and output structure: ``loaded.serve(x)`` returns the bare tensor
where ``loaded.signatures["serving_default"](x)`` returns ``{"output_0": tensor}``. User code
and ``keras.layers.TFSMLayer(path, call_endpoint="serve")`` call the attribute. An endpoint is
kept when a signature calls its function (what Keras and ``tf.saved_model.save(...,
signatures=...)`` write): the signature's frozen, optimized graph then answers for it, with the
endpoint's arguments and results mapped onto the signature's inputs and outputs through that
call. Endpoints no signature calls are not kept, and the notes say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import tensorflow as tf

from tfopt.graph.library import all_nodes, digest, with_functions_renamed
from tfopt.graph.lifted import WeightStore, inline
from tfopt.graph.nodes import LIFTED, const_shape, const_value, is_lifted
from tfopt.graph.ops import TF1_CONTROL_FLOW_OPS
from tfopt.graph.weights import weights_outside, with_placeholders
from tfopt.model.signature import SignatureGraph

_PASS_THROUGH = ("Identity", "IdentityN")
_CALLS = ("StatefulPartitionedCall", "PartitionedCall")


@dataclass
class Endpoint:
    """An attribute function of the loaded original, answered by signature ``key``'s graph."""

    name: str
    key: str
    args: Any      # the positional arguments' structure, TensorSpec leaves
    inputs: Any    # the same structure, each leaf the signature input key it feeds
    outputs: Any   # the result's structure, each leaf the signature output key it is

    def to_dict(self) -> dict:
        return {"name": self.name, "signature": self.key}


def _source(tensor: tf.Tensor) -> tf.Tensor:
    while tensor.op.type in _PASS_THROUGH:
        tensor = tensor.op.inputs[tensor.value_index]
    return tensor


def _through_call(func, sig: SignatureGraph, concrete) -> tuple[list, list] | None:
    """Signature input keys of the endpoint's flat arguments, and signature output keys of its
    flat results, read off the call the signature function makes; None if it makes none."""
    name = concrete.name.decode() if isinstance(concrete.name, bytes) else concrete.name
    calls = [op for op in func.graph.get_operations()
             if op.type in _CALLS and op.get_attr("f").name == name]
    if len(calls) != 1:
        return None
    call = calls[0]
    flat_args = tf.nest.flatten(concrete.structured_input_signature)
    placeholders = {t.ref(): key for t, key in zip(func.inputs, sig.inputs, strict=False)}
    inputs = [placeholders.get(_source(t).ref()) for t in call.inputs[:len(flat_args)]]
    by_port = {}
    for tensor, key in zip(func.outputs, sig.outputs, strict=True):
        src = _source(tensor)
        if src.op is call:
            by_port[src.value_index] = key
    outputs = [by_port.get(i) for i in range(len(tf.nest.flatten(concrete.structured_outputs)))]
    if None in inputs or None in outputs:
        return None
    return inputs, outputs


def find(obj, sigs: dict[str, SignatureGraph], notes: list[str]) -> list[Endpoint]:
    """The attribute endpoints of a loaded TF2 SavedModel that a kept signature calls."""
    found = []
    for name in sorted(dir(obj)):
        if name.startswith("_") or name == "signatures":
            continue
        fn = getattr(obj, name, None)
        concretes = getattr(fn, "concrete_functions", None)
        if not concretes:
            continue
        why = None
        if len(concretes) > 1:
            why = f"{len(concretes)} traces"
        else:
            concrete = concretes[0]
            args, kwargs = concrete.structured_input_signature
            for key, sig in sigs.items():
                mapped = None if kwargs else _through_call(obj.signatures[key], sig, concrete)
                if mapped is not None:
                    inputs = tf.nest.pack_sequence_as(args, mapped[0])
                    outputs = tf.nest.pack_sequence_as(concrete.structured_outputs, mapped[1])
                    found.append(Endpoint(name, key, args, inputs, outputs))
                    break
            else:
                why = "no kept signature calls it"
        if why:
            notes.append(f"attribute endpoint {name!r} not kept ({why}); call the model "
                         "through its signatures")
    return found


def graph_function(sig: SignatureGraph
                   ) -> tuple[tf.types.experimental.GenericFunction, list[tf.Variable]]:
    """A tf.function running ``sig``'s frozen graph: keyword inputs and dict outputs named by
    the signature's keys (what a serving signature is); and the variables it reads, which the
    caller must track: a graph too large for one protobuf keeps its largest weights in them
    (see :mod:`tfopt.graph.weights`), as TensorFlow's own SavedModels do."""
    keys, out_keys = list(sig.inputs), list(sig.outputs)
    specs = [tf.TensorSpec(None if i.shape is None else list(i.shape), i.dtype, name=k)
             for k, i in sig.inputs.items()]
    # Functions are registered process-wide by name: the original's (loaded in this process)
    # share names with the optimized bodies, so these get names of their own.
    # Weights leave first, one at a time into their variables: renaming copies the graph,
    # and a dict of every value beside the variables held the weights twice more. Lifted
    # weights the graph keeps (convolution filters) go back in place.
    outside = weights_outside(sig.graph_def)
    graph_def, _ = with_placeholders(inline(sig.graph_def, sig.weights, keep=outside),
                                     outside=outside)
    graph_def = with_functions_renamed(graph_def, {
        f.signature.name: f"{f.signature.name}_{digest(f)}"
        for f in sig.graph_def.library.function})
    weights = {node.name: _variable(node, sig.weights)
               for node in sig.graph_def.node if node.name in outside}

    def imported(input_map: dict | None = None) -> list[tf.Tensor]:
        reads = {f"{name}:0": var.read_value() for name, var in weights.items()}
        return tf.graph_util.import_graph_def(
            graph_def, input_map={**(input_map or {}), **reads} or None, name="model",
            return_elements=[sig.outputs[k].tensor for k in out_keys])

    # A graph with lowered loops (Enter/Exit frames) is imported once into a wrap_function
    # graph and pruned, as TensorFlow loads a v1 signature: inside a tf.function, automatic
    # control edges between stateful ops would cross the frames ("inputs from different
    # frames"). Other graphs are imported straight into the signature's function, one call
    # level fewer (the runtime and `analyze` see the ops themselves).
    if any(n.op in TF1_CONTROL_FLOW_OPS for n in all_nodes(graph_def)):
        wrapped = tf.compat.v1.wrap_function(imported, [])
        tensor = wrapped.graph.get_tensor_by_name
        run = wrapped.prune([tensor(f"model/{sig.inputs[k].tensor}") for k in keys],
                            [tensor(f"model/{sig.outputs[k].tensor}") for k in out_keys])
    else:
        def run(*args):
            return imported({sig.inputs[k].tensor: a for k, a in zip(keys, args, strict=True)})

    def call(*args):
        results = run(*args)
        return {k: tf.identity(t, name=k) for k, t in zip(out_keys, results, strict=True)}

    return tf.function(call, input_signature=specs, autograph=False), list(weights.values())


def _variable(node, weights: WeightStore | None) -> tf.Variable:
    """The variable a weight is stored in: the loaded model's own where the frozen graph
    reads it in place (nothing copied), else a new one holding its value."""
    if is_lifted(node) and weights is not None:
        source = weights.variable(node.attr[LIFTED].s.decode())
        if (source is not None and source.dtype == node.attr["dtype"].type
                and source.shape == const_shape(node)):
            return source
    return tf.Variable(const_value(node, weights), trainable=False,
                       name=node.name.replace("/", "_"))


def endpoint_function(endpoint: Endpoint, sig: SignatureGraph,
                      graph_fn) -> tf.types.experimental.GenericFunction:
    """The endpoint restated over the signature's graph function (``graph_function(sig)``):
    same arguments, same result structure."""
    keys = tf.nest.flatten(endpoint.inputs)
    out_keys = tf.nest.flatten(endpoint.outputs)

    def call(*args):
        given = dict(zip(keys, tf.nest.flatten(args), strict=True))
        results = graph_fn(*[given[k] for k in sig.inputs])
        return tf.nest.pack_sequence_as(endpoint.outputs, [results[k] for k in out_keys])

    return tf.function(call, input_signature=list(endpoint.args), autograph=False)
