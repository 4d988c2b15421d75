"""A frozen GraphDef file (``.pb`` binary, ``.pbtxt`` text): inputs and outputs named or
inferred (placeholders, sinks)."""

from __future__ import annotations

import tensorflow as tf
from google.protobuf import message, text_format
from tensorflow.core.framework import graph_pb2

from tfopt.errors import TfoptError
from tfopt.graph.names import canonical_tensor, node_of
from tfopt.model.format import DEFAULT_SIGNATURE, SingleSignature
from tfopt.model.saved_model import load_error, shape_tuple
from tfopt.model.saved_model_tf1 import session_reference, table_initializers
from tfopt.model.signature import LoadedModel, SignatureGraph, TensorInfo


class FrozenGraphDef(SingleSignature):
    name = "graph_def"

    def _load(self, inputs, outputs) -> LoadedModel:
        return load_graph_def(self.path, inputs, outputs)

    def stored_graph(self, signature):
        return read_graph_def(self.path), None


# Sinks that are never a model output when outputs are inferred from a bare GraphDef.
_NOT_OUTPUT_OPS = {"NoOp", "Assert", "Const", "Placeholder", "PlaceholderWithDefault", "SaveV2",
                   "Save", "RestoreV2", "MergeV2Checkpoints", "Print", "PrintV2", "VariableV2",
                   "VarHandleOp", "AssignVariableOp", "Assign"}


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
    init_ops = table_initializers(graph_def, [node_of(t.tensor) for t in outputs.values()])
    sig = SignatureGraph(DEFAULT_SIGNATURE, graph_def, inputs, outputs, init_ops=init_ops)
    sigs = {DEFAULT_SIGNATURE: sig}
    sess = tf.compat.v1.Session(graph=graph)
    if init_ops:
        sess.run(init_ops)
    return LoadedModel(path, sigs, notes=notes,
                       reference=session_reference(sess, sigs))
