"""Load each form of a pre-trained model into frozen signature graphs.

Forms: TF2 SavedModel, TF1-era SavedModel (``tf.compat.v1.saved_model.Builder``), frozen
GraphDef (``.pb`` binary or ``.pbtxt`` text) and Keras ``.keras``/``.h5`` files; which one a
path holds is :func:`tfopt.model.formats.detect`'s question. Each loader returns a
:class:`LoadedModel` whose ``reference`` runs the *original* model, unfrozen, so that
verification compares against what the user had, not against our own first step.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import tensorflow as tf
from google.protobuf import message, text_format
from tensorflow.core.framework import graph_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.util import nest

from tfopt.errors import TfoptError, first_line
from tfopt.graph.library import all_nodes
from tfopt.graph.names import canonical_tensor, node_of
from tfopt.graph.ops import ASSIGN_OPS
from tfopt.model import endpoints, restore
from tfopt.model.freeze import (
    TABLE_INIT_OPS,
    FrozenFunction,
    freeze_concrete_function,
    freeze_session,
)
from tfopt.model.signature import LoadedModel, SignatureGraph, TensorInfo
from tfopt.verify.runners import call_signature, feed_dict

DEFAULT_SIGNATURE = "serving_default"
Reference = Callable[[str, dict[str, np.ndarray]], dict[str, np.ndarray]]

# Sinks that are never a model output when outputs are inferred from a bare GraphDef.
_NOT_OUTPUT_OPS = {"NoOp", "Assert", "Const", "Placeholder", "PlaceholderWithDefault", "SaveV2",
                   "Save", "RestoreV2", "MergeV2Checkpoints", "Print", "PrintV2", "VariableV2",
                   "VarHandleOp", "AssignVariableOp", "Assign"}


def shape_tuple(shape) -> tuple[int | None, ...] | None:
    shape = tf.TensorShape(shape)
    if shape.rank is None:
        return None
    return tuple(shape.as_list())


def read_saved_model_proto(path: str) -> saved_model_pb2.SavedModel:
    proto = saved_model_pb2.SavedModel()
    pb = os.path.join(path, "saved_model.pb")
    try:
        if os.path.exists(pb):
            with open(pb, "rb") as f:
                proto.ParseFromString(f.read())
        else:
            with open(os.path.join(path, "saved_model.pbtxt")) as f:
                text_format.Parse(f.read(), proto)
    except (message.DecodeError, text_format.ParseError, UnicodeDecodeError) as err:
        raise TfoptError(f"{path}: corrupt SavedModel ({type(err).__name__}: "
                         f"{first_line(err, 'cannot parse')})") from None
    if not proto.meta_graphs:
        raise TfoptError(f"{path}: SavedModel has no MetaGraph")
    return proto


def read_graph_def(path: str) -> graph_pb2.GraphDef:
    graph_def = graph_pb2.GraphDef()
    try:
        with open(path, "rb") as f:
            data = f.read()
        if path.lower().endswith(".pbtxt"):
            text_format.Parse(data.decode(), graph_def)
        else:
            graph_def.ParseFromString(data)
    except (message.DecodeError, text_format.ParseError, UnicodeDecodeError) as err:
        raise TfoptError(f"{path}: corrupt GraphDef ({type(err).__name__})") from None
    if not graph_def.node:
        raise TfoptError(f"{path}: GraphDef is empty or not a GraphDef")
    return graph_def


def is_tf2_saved_model(proto: saved_model_pb2.SavedModel) -> bool:
    """TF2 SavedModels carry an object graph; v1-builder exports do not."""
    return any(len(m.object_graph_def.nodes) > 0 for m in proto.meta_graphs)


def pick_signatures(available: list[str], wanted: list[str] | None, path: str) -> list[str]:
    """The signatures to work on: ``wanted`` (each must exist), or all of them."""
    if not available:
        raise TfoptError(f"{path}: the model has no signatures")
    unknown = [k for k in wanted or () if k not in available]
    if unknown:
        raise TfoptError(f"{path}: unknown signature {unknown[0]!r} (available: "
                         f"{', '.join(sorted(available))})")
    return list(dict.fromkeys(wanted)) if wanted else sorted(available)


def pick_signature(available: list[str], wanted: str | None, path: str) -> str:
    """One signature (benchmark, analyze): ``wanted``, else serving_default or the only one."""
    if wanted is not None:
        return pick_signatures(available, [wanted], path)[0]
    if DEFAULT_SIGNATURE in available or len(available) != 1:
        return pick_signatures(available, [DEFAULT_SIGNATURE], path)[0]
    return available[0]


def load_error(path: str, err: Exception) -> TfoptError:
    return TfoptError(f"{path}: cannot load the model: {first_line(err)}")


# --- TF2 functions (SavedModel signatures, Keras models) ---------------------------------------


def _freeze(path: str, func):
    try:
        return freeze_concrete_function(func)
    except ValueError as err:
        writes = _variable_writes(func.graph.as_graph_def())
        if writes:
            raise TfoptError(
                f"{path}: cannot freeze: calling it writes variables ({len(writes)} "
                f"assignments, e.g. {writes[0]}), as a batch norm computing in training mode "
                "does; frozen weights cannot follow such updates: export the model for "
                "inference (training=False)") from None
        raise TfoptError(f"{path}: cannot freeze: {first_line(err)}") from None


def _variable_writes(graph_def) -> list[str]:
    """Names of the nodes that assign to resource variables, in the graph or its functions."""
    return [n.name for n in all_nodes(graph_def) if n.op in ASSIGN_OPS]


def _trace_identity(func) -> tuple:
    """What makes two signature functions freeze to the same graph: the same traced body
    (function names aside, see :func:`_canonical`), the same captured variables and the same
    input and output structure."""
    nodes, functions = _canonical(func.graph.as_graph_def())
    captures = tuple(id(t) for t in func.captured_inputs)
    outputs = tf.nest.map_structure(lambda t: (getattr(t, "dtype", None), str(getattr(t, "shape", t))),
                                    func.structured_outputs)
    return nodes, functions, captures, repr(func.structured_input_signature), repr(outputs)


def _signature_from_function(key: str, func, frozen: FrozenFunction) -> SignatureGraph:
    specs = tf.nest.flatten(func.structured_input_signature, expand_composites=True)
    names = sorted(func.structured_input_signature[1]) if func.structured_input_signature[1] else \
        [s.name for s in specs]
    placeholders = frozen.io.inputs[:len(specs)]
    inputs = {}
    for spec_key, spec, ph in zip(names, specs, placeholders, strict=False):
        inputs[spec_key] = TensorInfo(ph.name, spec.dtype, shape_tuple(spec.shape))
    outputs = {}
    # The frozen function's outputs follow the flattening order of the original's structure.
    paths = nest.flatten_with_joined_string_paths(func.structured_outputs)
    for (path, declared), tensor in zip(paths, frozen.io.outputs, strict=True):
        # A function call's output (a graph with lowered loops, as tfopt writes one) has no
        # inferred shape: the signature's declared one says it.
        shape = tensor.shape if tensor.shape.rank is not None else getattr(declared, "shape",
                                                                             tensor.shape)
        outputs[path or "output_0"] = TensorInfo(tensor.name, tensor.dtype, shape_tuple(shape))
    return SignatureGraph(key, frozen.graph_def, inputs, outputs,
                          init_ops=list(frozen.init_ops), weights=frozen.weights)


def load_tf2(path: str, signatures: list[str] | None) -> LoadedModel:
    try:
        obj = restore.load(path)
    except Exception as err:  # TF raises many types here; the message is what matters
        raise load_error(path, err) from None
    keys = pick_signatures(list(obj.signatures.keys()), signatures, path)
    sigs = {}
    # Signatures over one function (Keras 3 exports "serve" and "serving_default") are
    # frozen once: freezing copies every weight (GPT-2 base: +0.8 GB for the second).
    done: dict[tuple, tuple] = {}
    for key in keys:
        func = obj.signatures[key]
        ident = _trace_identity(func)
        if ident not in done:
            done[ident] = _freeze(path, func)
        sigs[key] = _signature_from_function(key, func, done[ident])
    del done
    mark_identical(sigs)
    notes: list[str] = []
    found = endpoints.find(obj, sigs, notes)

    def reference(key: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return call_signature(obj, key, feeds)

    return LoadedModel(path, sigs, notes=notes, reference=reference, endpoints=found)


def load_keras(path: str) -> LoadedModel:
    import keras

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as err:
        raise load_error(path, err) from None
    specs = {}
    for t in model.inputs:
        name = t.name.split(":")[0]
        specs[name] = tf.TensorSpec(t.shape, t.dtype, name=name)

    @tf.function(input_signature=[specs])
    def serve(inputs):
        args = [inputs[k] for k in specs]
        out = model(args if len(args) > 1 else args[0], training=False)
        if isinstance(out, dict):  # named outputs keep their names, as model.export() does
            return dict(out)
        flat = tf.nest.flatten(out)
        return {f"output_{i}": t for i, t in enumerate(flat)}

    func = serve.get_concrete_function()
    frozen = _freeze(path, func)
    sig = SignatureGraph(DEFAULT_SIGNATURE, frozen.graph_def, {}, {},
                         init_ops=list(frozen.init_ops), weights=frozen.weights)
    # Inputs of a dict-structured function flatten in sorted-key order.
    for key, ph in zip(sorted(specs), frozen.io.inputs[:len(specs)], strict=False):
        spec = specs[key]
        sig.inputs[key] = TensorInfo(ph.name, spec.dtype, shape_tuple(spec.shape))
    paths = nest.flatten_with_joined_string_paths(func.structured_outputs)
    for (out_key, _), tensor in zip(paths, frozen.io.outputs, strict=True):
        sig.outputs[out_key] = TensorInfo(tensor.name, tensor.dtype, shape_tuple(tensor.shape))

    def reference(key: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = func(inputs={k: tf.constant(v) for k, v in feeds.items()})
        return {k: np.asarray(v) for k, v in result.items()}

    # As Keras 3's model.export() does: "serve" and "serving_default" over one function.
    serve = sig.with_graph(sig.graph_def)
    serve.key, serve.same_as = "serve", DEFAULT_SIGNATURE
    return LoadedModel(path, {DEFAULT_SIGNATURE: sig, "serve": serve},
                       reference=reference)


# --- TF1 sessions (v1 SavedModels, frozen GraphDefs) -------------------------------------------


def _session_reference(sess: tf.compat.v1.Session, sigs: dict[str, SignatureGraph]) -> Reference:
    def reference(key: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        sig = sigs[key]
        fetch_keys = list(sig.outputs)
        values = sess.run([sig.outputs[k].tensor for k in fetch_keys],
                          feed_dict(sig, feeds))
        return dict(zip(fetch_keys, values, strict=True))

    return reference


def load_tf1(path: str, proto: saved_model_pb2.SavedModel,
              signatures: list[str] | None) -> LoadedModel:
    meta = serving_meta_graph(proto)
    tags = tuple(meta.meta_info_def.tags)
    keys = pick_signatures(signature_keys(proto), signatures, path)
    graph = tf.Graph()
    sess = tf.compat.v1.Session(graph=graph)
    try:
        with graph.as_default():
            tf.compat.v1.saved_model.loader.load(sess, list(tags), path)
    except Exception as err:
        raise load_error(path, err) from None
    graph_def = graph.as_graph_def()
    sigs: dict[str, SignatureGraph] = {}
    for key in keys:
        sd = meta.signature_def[key]
        inputs = {k: TensorInfo(canonical_tensor(v.name), tf.as_dtype(v.dtype),
                                shape_tuple(v.tensor_shape)) for k, v in sd.inputs.items()}
        outputs = {k: TensorInfo(canonical_tensor(v.name), tf.as_dtype(v.dtype),
                                 shape_tuple(v.tensor_shape)) for k, v in sd.outputs.items()}
        out_nodes = sorted({node_of(t.tensor) for t in outputs.values()})
        init_ops = _table_initializers(graph_def, out_nodes)
        try:
            frozen = freeze_session(sess, graph_def, out_nodes + init_ops)
        except Exception as err:
            raise load_error(path, err) from None
        sigs[key] = SignatureGraph(key, frozen, inputs, outputs,
                                   sd.method_name or "tensorflow/serving/predict",
                                   init_ops=init_ops)
    mark_identical(sigs)
    return LoadedModel(path, sigs, reference=_session_reference(sess, sigs),
                       tags=tags)


def _table_initializers(graph_def: graph_pb2.GraphDef, out_nodes: list[str]) -> list[str]:
    """Initializers of the lookup tables the outputs read (a TF1 export runs them from its
    main op, which freezing to the outputs would otherwise drop)."""
    from tfopt.graph.ops import CHECKPOINT_OPS
    from tfopt.graph.walk import reachable_from

    reached = reachable_from(graph_def, out_nodes)
    by_name = {n.name: n for n in graph_def.node}
    found = []
    for node in graph_def.node:
        if node.op not in TABLE_INIT_OPS or not node.input or node_of(node.input[0]) not in reached:
            continue
        feeds = reachable_from(graph_def, [node.name])
        if any(by_name[n].op in CHECKPOINT_OPS for n in feeds):
            continue  # a Saver's restore of a mutable table, not an initializer
        found.append(node.name)
    return sorted(found)


def _parse_names(names: str | list[str] | None) -> list[str]:
    if names is None:
        return []
    if isinstance(names, str):
        names = names.split(",")
    return [n.strip() for n in names if n.strip()]


def load_graph_def(path: str, input_names, output_names) -> LoadedModel:
    graph_def = read_graph_def(path)
    notes = []
    graph = tf.Graph()
    try:
        with graph.as_default():
            tf.import_graph_def(graph_def, name="")
    except Exception as err:
        raise load_error(path, err) from None
    by_name = {n.name: n for n in graph_def.node}
    ins = _parse_names(input_names)
    outs = _parse_names(output_names)
    if not ins:
        ins = [n.name for n in graph_def.node if n.op == "Placeholder"]
        notes.append(f"inferred inputs (placeholders): {', '.join(ins) or '(none)'}")
    if not outs:
        consumed = {node_of(t) for n in graph_def.node for t in n.input}
        outs = [n.name for n in graph_def.node
                if n.name not in consumed and n.op not in _NOT_OUTPUT_OPS]
        notes.append(f"inferred outputs (sinks): {', '.join(outs) or '(none)'}")
    if not outs:
        raise TfoptError(f"{path}: no outputs found; name them with --outputs")
    for name in ins + outs:
        if node_of(name) not in by_name:
            raise TfoptError(f"{path}: unknown node {node_of(name)!r}")

    def info(name: str) -> TensorInfo:
        tensor = graph.get_tensor_by_name(canonical_tensor(name))
        return TensorInfo(tensor.name, tensor.dtype, shape_tuple(tensor.shape))

    inputs = {node_of(n) if ":" not in n or n.endswith(":0") else n.replace(":", "_"): info(n)
              for n in ins}
    outputs = {node_of(n) if ":" not in n or n.endswith(":0") else n.replace(":", "_"): info(n)
               for n in outs}
    init_ops = _table_initializers(graph_def, [node_of(t.tensor) for t in outputs.values()])
    sig = SignatureGraph(DEFAULT_SIGNATURE, graph_def, inputs, outputs, init_ops=init_ops)
    sigs = {DEFAULT_SIGNATURE: sig}
    sess = tf.compat.v1.Session(graph=graph)
    if init_ops:
        sess.run(init_ops)
    return LoadedModel(path, sigs, notes=notes,
                       reference=_session_reference(sess, sigs))


def mark_identical(sigs: dict[str, SignatureGraph]) -> None:
    """Signatures over the same function (Keras 3 exports ``serve`` and ``serving_default``)
    freeze to the same graph: mark later ones so they are optimized and stored once."""
    seen: dict[tuple, str] = {}
    # Signatures frozen once (load_tf2) hold one graph object: no digest is needed then (it
    # serialises every weight, 1.1 GB at a time for a large embedding table).
    distinct = {id(s.graph_def) for s in sigs.values() if not s.same_as}
    for key, sig in sigs.items():
        if sig.same_as:
            continue
        nodes, functions = (_canonical(sig.graph_def) if len(distinct) > 1
                            else ((id(sig.graph_def),), ()))
        ident = (nodes, functions,
                 tuple(sorted((k, v.tensor) for k, v in sig.inputs.items())),
                 tuple(sorted((k, v.tensor) for k, v in sig.outputs.items())),
                 tuple(sig.init_ops), sig.method_name)
        if ident in seen:
            # The same graph: hold one copy (a large model's weights are most of it).
            first = sigs[seen[ident]]
            sig.same_as, sig.graph_def, sig.weights = first.key, first.graph_def, first.weights
        else:
            seen[ident] = key


def _canonical(graph_def: graph_pb2.GraphDef) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """Nodes (their digests) and library functions (their bytes), sorted, with function names
    replaced by a hash
    of their body: each trace names its functions anew (``__inference_f_379`` vs ``_412``)."""
    import hashlib

    from tensorflow.core.framework import function_pb2

    from tfopt.graph.library import renamed_refs as renamed

    lib = graph_def.library.function
    blank = {f.signature.name: "" for f in lib}
    digest, bodies = {}, []
    for fn in lib:
        copy = function_pb2.FunctionDef()
        copy.CopyFrom(fn)
        copy.signature.name = ""
        nodes = [renamed(n, blank) for n in copy.node_def]
        del copy.node_def[:]
        copy.node_def.extend(nodes)
        body = copy.SerializeToString(deterministic=True)
        digest[fn.signature.name] = hashlib.sha1(body).hexdigest()
        bodies.append(body)
    # Digests, not the bytes: a large model's nodes are its weights, and the caller keeps
    # what this returns for every distinct signature.
    nodes = tuple(sorted(hashlib.sha1(_traced(renamed(n, digest)).SerializeToString(
        deterministic=True)).digest() for n in graph_def.node))
    return nodes, tuple(sorted(bodies))


def _traced(node):
    """``node`` without what tracing names differently each time: a captured weight's
    placeholder is ``_user_specified_name`` "241" in one trace and "258" in the next (a Keras
    export's ``serve`` and ``serving_default``, frozen twice for it)."""
    if "_user_specified_name" in node.attr:
        del node.attr["_user_specified_name"]
    return node


def serving_meta_graph(proto: saved_model_pb2.SavedModel):
    """The MetaGraph tagged ``serve`` (else the first): what TF Serving would load."""
    metas = proto.meta_graphs
    return next((m for m in metas if "serve" in m.meta_info_def.tags), metas[0])


def signature_input_keys(proto: saved_model_pb2.SavedModel) -> dict[str, list[str]]:
    """Input keys per stored signature (TF2: the serving signatures; TF1: the signature_def
    map), read from the proto without loading the model."""
    return {k: list(sd.inputs) for k, sd in serving_meta_graph(proto).signature_def.items()
            if not k.startswith("__")}


def signature_keys(proto: saved_model_pb2.SavedModel) -> list[str]:
    """Signature keys as stored."""
    return list(signature_input_keys(proto))
