"""Static shapes and dtypes, as TensorFlow's own shape inference sees them."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2
from tensorflow.python.framework import op_def_registry

from tfopt.graph.nodes import WeightSource


class StaticInfo:
    """Shapes/dtypes of every tensor of a GraphDef (placeholders keep their declared shapes,
    so batch stays unknown: nothing folded from this is specialised to one batch size).

    A large graph is imported with its large weights as placeholders of the same shape
    (:mod:`tfopt.graph.weights`), named in ``outside``: what evaluates something in
    :attr:`graph` feeds those it needs (:meth:`weight_feeds`). Their values are not kept
    here: every pass builds a StaticInfo, and a copy of the weights each time was most of
    optimize's peak memory on large models."""

    def __init__(self, graph_def: graph_pb2.GraphDef):
        from tfopt.graph.weights import with_placeholders

        graph_def, self.outside = with_placeholders(graph_def)
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.import_graph_def(graph_def, name="")

    def weight_feeds(self, graph_def: graph_pb2.GraphDef, names: Iterable[str],
                     weights: WeightSource | None = None) -> dict[str, np.ndarray]:
        """Feeds for the outside weights among ``names``, read from ``graph_def`` (the graph
        this was built from; its lifted constants from ``weights``)."""
        from tfopt.graph.weights import weight_values

        return {f"{name}:0": value for name, value
                in weight_values(graph_def, self.outside.intersection(names), weights).items()}

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
