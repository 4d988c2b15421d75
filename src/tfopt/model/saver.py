"""Write optimized signature graphs as a SavedModel (or a frozen GraphDef), atomically.

The SavedModel is written with the v1 builder: a frozen graph has no variables, and the v1
format lets us restate every signature exactly (keys, input tensor names, dtypes, shapes,
method name). Plain ``tf.saved_model.load`` and TF Serving read it with no tfopt import.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import tensorflow as tf
from tensorflow.core.framework import tensor_shape_pb2
from tensorflow.core.protobuf import meta_graph_pb2

from tfopt.errors import TfoptError
from tfopt.graph.weights import (
    PROTO_LIMIT,
    graph_bytes,
    graph_limit,
    size_text,
    weights_outside,
)
from tfopt.model.signature import SignatureGraph, TensorInfo

if TYPE_CHECKING:
    from tfopt.model.endpoints import Endpoint


def _shape_proto(info: TensorInfo) -> tensor_shape_pb2.TensorShapeProto:
    return tf.TensorShape(None if info.shape is None else list(info.shape)).as_proto()


def _scope(sigs: dict[str, SignatureGraph]) -> dict[str, str]:
    """Import prefix per signature: none for a single graph, the key for several; a signature
    with the same graph as another (``same_as``) shares that one's scope."""
    unique = [key for key, sig in sigs.items() if sig.same_as not in sigs]
    scopes = {key: "" if len(unique) == 1 else key for key in unique}
    for key, sig in sigs.items():
        if key not in scopes:
            scopes[key] = scopes[sig.same_as]
    return scopes


def _prefixed(prefix: str, tensor: str) -> str:
    return f"{prefix}/{tensor}" if prefix else tensor


def merged_graph(sigs: dict[str, SignatureGraph]) -> tuple[tf.Graph, dict[str, str]]:
    """One graph holding every signature's graph (each once), weights stored once."""
    scopes = _scope(sigs)
    graph = tf.Graph()
    with graph.as_default():
        for key, sig in sigs.items():
            if sig.same_as not in sigs:
                tf.import_graph_def(sig.graph_def, name=scopes[key])
    if len(set(scopes.values())) > 1:
        merged = share_constants(graph.as_graph_def())
        graph = tf.Graph()
        with graph.as_default():
            tf.import_graph_def(merged, name="")
    return graph, scopes


def share_constants(graph_def, min_bytes: int = 1024):
    """Merge equal weight constants of different signatures' graphs into one node, so shared
    weights are stored once. Small constants are left alone (not worth a cross-scope edge)."""
    from tfopt.graph.names import InputRef
    from tfopt.graph.view import GraphView

    view = GraphView(graph_def)
    first: dict[tuple, str] = {}
    doomed = []
    for node in view:
        if node.op != "Const" or node.input:
            continue
        tensor = node.attr["value"].tensor
        if len(tensor.tensor_content) < min_bytes:
            continue
        ident = (tensor.dtype, tensor.tensor_shape.SerializeToString(), tensor.tensor_content)
        if ident in first:
            view.replace_uses(InputRef(node.name), InputRef(first[ident]))
            doomed.append(node.name)
        else:
            first[ident] = node.name
    view.remove(doomed)
    return view.to_graph_def()


def _tensor_info(graph: tf.Graph, name: str, info: TensorInfo) -> meta_graph_pb2.TensorInfo:
    tensor = graph.get_tensor_by_name(name)
    proto = meta_graph_pb2.TensorInfo(name=tensor.name, dtype=info.dtype.as_datatype_enum)
    proto.tensor_shape.CopyFrom(_shape_proto(info))
    return proto


def write_saved_model(sigs: dict[str, SignatureGraph], export_dir: str,
                      tags: tuple[str, ...] = ("serve",), endpoints: Sequence[Endpoint] = ()
                      ) -> dict[str, dict[str, int]]:
    """Write ``sigs`` to a *new* directory ``export_dir`` (which must not exist); returns the
    weights kept in ``variables/`` per signature graph (:func:`stored_outside`). With
    attribute ``endpoints`` to restate (a Keras export's ``serve``), a TF2 SavedModel (it
    cannot run table initializers at load: the caller keeps none then), else the v1
    builder's. A graph with weights to keep outside (too large for one protobuf, or large
    enough that loading inline weights costs several times their memory) is written as a TF2
    SavedModel too, those weights in ``variables/`` (see :mod:`tfopt.graph.weights`)."""
    large = stored_outside(sigs)
    if endpoints or large:
        _write_tf2(sigs, export_dir, endpoints)
        return large
    sigs = {key: sig.inlined() for key, sig in sigs.items()}
    graph, scopes = merged_graph(sigs)
    signature_map = {}
    for key, sig in sigs.items():
        sd = meta_graph_pb2.SignatureDef(method_name=sig.method_name)
        for k, info in sig.inputs.items():
            sd.inputs[k].CopyFrom(_tensor_info(graph, _prefixed(scopes[key], info.tensor), info))
        for k, info in sig.outputs.items():
            sd.outputs[k].CopyFrom(_tensor_info(graph, _prefixed(scopes[key], info.tensor), info))
        signature_map[key] = sd
    builder = tf.compat.v1.saved_model.Builder(export_dir)
    init_ops = [graph.get_operation_by_name(_prefixed(scopes[key], name))
                for key, sig in sigs.items() if sig.same_as not in sigs
                for name in sig.init_ops]
    with graph.as_default():
        main_op = tf.group(*init_ops, name="tfopt_init") if init_ops else None
    with tf.compat.v1.Session(graph=graph) as sess:
        builder.add_meta_graph_and_variables(sess, list(tags), signature_def_map=signature_map,
                                             strip_default_attrs=True, main_op=main_op)
    builder.save()
    return large


def stored_outside(sigs: dict[str, SignatureGraph]) -> dict[str, dict[str, int]]:
    """Per signature stored with its own graph, the weights the written SavedModel keeps in
    ``variables/`` (:func:`tfopt.graph.weights.weights_outside`), where any. A model that
    initialises lookup tables at load is written by the v1 builder, which runs them, with
    its weights inline: possible up to the graph limit, refused in one line past it."""
    outside = {key: weights_outside(sig.graph_def) for key, sig in sigs.items()
               if sig.same_as not in sigs}
    outside = {key: names for key, names in outside.items() if names}
    if outside and any(sig.init_ops for sig in sigs.values()):
        over = [key for key, sig in sigs.items() if graph_bytes(sig.graph_def) > graph_limit()]
        if over:
            raise TfoptError(f"signature {over[0]!r}: its graph is over the "
                             f"{size_text(graph_limit())} kept in one protobuf and it "
                             "initialises lookup tables at load; tfopt cannot write both yet")
        return {}
    return outside


def write(sigs: dict[str, SignatureGraph], path: str, fmt: str,
          tags: tuple[str, ...] = ("serve",), endpoints: Sequence[Endpoint] = ()
          ) -> dict[str, dict[str, int]]:
    """Write ``sigs`` to the new path ``path`` as ``fmt``: "saved_model" or "pb"; returns the
    weights kept in ``variables/`` per signature graph (none in a GraphDef file)."""
    if fmt == "pb":
        write_graph_def(sigs, path)
        return {}
    return write_saved_model(sigs, path, tags, endpoints)


def _write_tf2(sigs: dict[str, SignatureGraph], export_dir: str,
               endpoints: Sequence[Endpoint]) -> None:
    """A TF2 SavedModel: one function per distinct graph, serving every signature over it,
    and each endpoint as an attribute calling its signature's function."""
    from tfopt.model.endpoints import endpoint_function, graph_function

    module = tf.Module()
    module.weights = []  # tracked, so the SavedModel stores them in variables/
    functions = {}
    for key, sig in sigs.items():
        if sig.same_as not in sigs:
            functions[key], weights = graph_function(sig)
            module.weights.extend(weights)
    for key, sig in sigs.items():
        if key not in functions:
            functions[key] = functions[sig.same_as]
    signatures = {key: fn.get_concrete_function() for key, fn in functions.items()}
    for endpoint in endpoints:
        fn = endpoint_function(endpoint, sigs[endpoint.key], functions[endpoint.key])
        # A concrete function: saving retraces a tf.function, and the body with it (twice on
        # disk); a concrete one is stored as traced, calling the one body.
        setattr(module, endpoint.name, fn.get_concrete_function())
    tf.saved_model.save(module, export_dir, signatures=signatures)


def _check_size(sigs: dict[str, SignatureGraph]) -> None:
    """A frozen GraphDef file holds every weight; protobuf cannot serialise one of 2 GiB."""
    total = sum(graph_bytes(sig.graph_def) for sig in sigs.values())
    if total >= PROTO_LIMIT:
        raise TfoptError(f"--format pb: the frozen graph would be {total / 2**30:.1f} GiB, over "
                         "protobuf's 2 GiB limit for one GraphDef file; write a SavedModel "
                         "(the default), which keeps the weights in variables/")


def write_graph_def(sigs: dict[str, SignatureGraph], path: str) -> None:
    _check_size(sigs)
    sigs = {key: sig.inlined() for key, sig in sigs.items()}
    if len(sigs) == 1:
        graph_def = next(iter(sigs.values())).graph_def
    else:
        graph_def = merged_graph(sigs)[0].as_graph_def()
    as_text = path.lower().endswith(".pbtxt")
    tf.io.write_graph(graph_def, os.path.dirname(path) or ".", os.path.basename(path),
                      as_text=as_text)


