"""Static shapes and dtypes, as TensorFlow's own shape inference sees them."""

from __future__ import annotations

import tensorflow as tf
from tensorflow.core.framework import graph_pb2
from tensorflow.python.framework import op_def_registry


class StaticInfo:
    """Shapes/dtypes of every tensor of a GraphDef (placeholders keep their declared shapes,
    so batch stays unknown: nothing folded from this is specialised to one batch size).

    A graph too large for one protobuf is imported with its largest weights as placeholders
    of the same shape (:mod:`tfopt.graph.weights`); ``weights`` then holds their values, to be
    fed when something in :attr:`graph` is evaluated."""

    def __init__(self, graph_def: graph_pb2.GraphDef):
        from tfopt.graph.weights import split_weights

        graph_def, values = split_weights(graph_def)
        self.weights = {f"{name}:0": value for name, value in values.items()}
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.import_graph_def(graph_def, name="")

    def shape(self, tensor: str) -> tf.TensorShape | None:
        try:
            return self.graph.get_tensor_by_name(_canon(tensor)).shape
        except (KeyError, ValueError):
            return None

    def rank(self, tensor: str) -> int | None:
        shape = self.shape(tensor)
        return None if shape is None else shape.rank

    def dtype(self, tensor: str) -> tf.DType | None:
        try:
            return self.graph.get_tensor_by_name(_canon(tensor)).dtype
        except (KeyError, ValueError):
            return None

    def num_outputs(self, node: str) -> int:
        return len(self.graph.get_operation_by_name(node).outputs)


def _canon(name: str) -> str:
    return name if ":" in name else name + ":0"


def is_stateful(op: str) -> bool:
    op_def = op_def_registry.get(op)
    return op_def is None or op_def.is_stateful
