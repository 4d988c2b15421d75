"""Write optimized signature graphs as a SavedModel (or a frozen GraphDef), atomically.

The SavedModel is written with the v1 builder: a frozen graph has no variables, and the v1
format lets us restate every signature exactly (keys, input tensor names, dtypes, shapes,
method name). Plain ``tf.saved_model.load`` and TF Serving read it with no tfopt import.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

import tensorflow as tf
from tensorflow.core.framework import tensor_shape_pb2
from tensorflow.core.protobuf import meta_graph_pb2

from tfopt.errors import TfoptError
from tfopt.model import SignatureGraph, TensorInfo


def _shape_proto(info: TensorInfo) -> tensor_shape_pb2.TensorShapeProto:
    return tf.TensorShape(None if info.shape is None else list(info.shape)).as_proto()


def _scope(sigs: dict[str, SignatureGraph]) -> dict[str, str]:
    """Import prefix per signature: none for a single one, the key for several."""
    if len(sigs) == 1:
        return {key: "" for key in sigs}
    return {key: key for key in sigs}


def _prefixed(prefix: str, tensor: str) -> str:
    return f"{prefix}/{tensor}" if prefix else tensor


def merged_graph(sigs: dict[str, SignatureGraph]) -> tuple[tf.Graph, dict[str, str]]:
    graph = tf.Graph()
    scopes = _scope(sigs)
    with graph.as_default():
        for key, sig in sigs.items():
            tf.import_graph_def(sig.graph_def, name=scopes[key])
    return graph, scopes


def _tensor_info(graph: tf.Graph, name: str, info: TensorInfo) -> meta_graph_pb2.TensorInfo:
    tensor = graph.get_tensor_by_name(name)
    proto = meta_graph_pb2.TensorInfo(name=tensor.name, dtype=info.dtype.as_datatype_enum)
    proto.tensor_shape.CopyFrom(_shape_proto(info))
    return proto


def write_saved_model(sigs: dict[str, SignatureGraph], export_dir: str,
                      tags: tuple[str, ...] = ("serve",)) -> None:
    """Write ``sigs`` to a *new* directory ``export_dir`` (which must not exist)."""
    _check_size(sigs)
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
                for key, sig in sigs.items() for name in sig.init_ops]
    with graph.as_default():
        main_op = tf.group(*init_ops, name="tfopt_init") if init_ops else None
    with tf.compat.v1.Session(graph=graph) as sess:
        builder.add_meta_graph_and_variables(sess, list(tags), signature_def_map=signature_map,
                                             strip_default_attrs=True, main_op=main_op)
    builder.save()


def _check_size(sigs: dict[str, SignatureGraph]) -> None:
    """A frozen graph holds every weight; protobuf cannot serialise one of 2 GiB or more."""
    total = sum(sig.graph_def.ByteSize() for sig in sigs.values())
    if total >= (1 << 31) - 1:
        raise TfoptError(f"the frozen graph would be {total / 2**30:.1f} GiB, over protobuf's "
                         "2 GiB limit for one GraphDef; models this large cannot be frozen")


def write_graph_def(sigs: dict[str, SignatureGraph], path: str) -> None:
    _check_size(sigs)
    if len(sigs) == 1:
        graph_def = next(iter(sigs.values())).graph_def
    else:
        graph_def = merged_graph(sigs)[0].as_graph_def()
    as_text = path.lower().endswith(".pbtxt")
    tf.io.write_graph(graph_def, os.path.dirname(path) or ".", os.path.basename(path),
                      as_text=as_text)


def check_output_path(out: str, overwrite: bool, src: str | None = None) -> None:
    """Refuse before any work is done: existing OUT without --overwrite, OUT == IN."""
    if src is not None:
        a, b = os.path.realpath(out), os.path.realpath(src)
        if a == b or b.startswith(a + os.sep):
            raise TfoptError(f"{out}: output would overwrite the input model; choose another path")
        if a.startswith(b + os.sep):
            raise TfoptError(f"{out}: output inside the input model's directory would modify "
                             "the input; choose a path outside it")
    if os.path.lexists(out) and not overwrite:
        raise TfoptError(f"{out}: already exists (use --overwrite to replace it)")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise TfoptError(f"{out}: parent directory {parent} does not exist")


@contextlib.contextmanager
def atomic_output(out: str, overwrite: bool) -> Iterator[str]:
    """Yield a temporary path next to ``out``; on success, move it into place in one rename."""
    out = os.path.abspath(out)
    parent = os.path.dirname(out)
    tmp_root = tempfile.mkdtemp(prefix=".tfopt-", dir=parent)
    tmp = os.path.join(tmp_root, os.path.basename(out))
    try:
        yield tmp
        if os.path.lexists(out):
            if not overwrite:
                raise TfoptError(f"{out}: already exists (use --overwrite to replace it)")
            old = os.path.join(tmp_root, "previous")
            os.rename(out, old)
        os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)

