"""What a SavedModel declares before it is loaded (its proto: signatures, inputs, the
serving graph), and the behaviour both SavedModel formats share."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import tensorflow as tf
from google.protobuf import message, text_format
from tensorflow.core.protobuf import saved_model_pb2

from tfopt.errors import TfoptError, first_line
from tfopt.model.format import ModelFormat, OpenSignature, pick_signature
from tfopt.model.signature import TensorInfo


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


def is_tf2_saved_model(proto: saved_model_pb2.SavedModel) -> bool:
    """TF2 SavedModels carry an object graph; v1-builder exports do not."""
    return any(len(m.object_graph_def.nodes) > 0 for m in proto.meta_graphs)


def load_error(path: str, err: Exception) -> TfoptError:
    return TfoptError(f"{path}: cannot load the model: {first_line(err)}")


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


class SavedModelFormat(ModelFormat):
    loads_by_path = True

    def __init__(self, path: str, proto):
        super().__init__(path)
        self.proto = proto

    def signature_keys(self) -> list[str]:
        return signature_keys(self.proto)

    def signature_inputs(self) -> dict[str, list[str]]:
        return signature_input_keys(self.proto)

    def open(self, signature: str | None, config) -> OpenSignature:
        import tensorflow as tf

        try:
            obj = tf.saved_model.load(self.path)
        except Exception as err:
            raise load_error(self.path, err) from None
        key = pick_signature(list(obj.signatures.keys()), signature, self.path)
        fn = obj.signatures[key]
        specs = fn.structured_input_signature[1]
        inputs = {k: TensorInfo(k, s.dtype, shape_tuple(s.shape))
                  for k, s in specs.items()}

        def prepare(feeds: dict[str, np.ndarray]) -> Callable[[], object]:
            tensors = {k: tf.constant(v) for k, v in feeds.items()}
            return lambda: fn(**tensors)

        return OpenSignature(inputs, prepare, owner=obj)

    def _no_node_names(self, inputs, outputs) -> None:
        if inputs or outputs:
            raise TfoptError("--inputs/--outputs apply to GraphDef files; a SavedModel's "
                             "signature names them (use --signature)")
