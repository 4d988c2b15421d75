"""What a loaded model is, independent of where it came from."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from tensorflow.core.framework import graph_pb2
from tensorflow.python.framework import dtypes

from tfopt.graph.lifted import WeightStore, inline


@dataclass(frozen=True)
class TensorInfo:
    """One signature input or output: the graph tensor behind a signature key."""

    tensor: str  # "node:port"
    dtype: dtypes.DType
    shape: tuple[int | None, ...] | None  # None: unknown rank

    def describe(self) -> str:
        if self.shape is None:
            dims = "<unknown rank>"
        else:
            dims = "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"
        return f"{self.dtype.name}{dims}"


@dataclass
class SignatureGraph:
    """One signature's frozen graph: the unit every pass works on."""

    key: str
    graph_def: graph_pb2.GraphDef
    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo]
    method_name: str = "tensorflow/serving/predict"
    # Nodes to run once when the model loads (lookup-table initializers): the saved model's
    # main op, and what a Session must run before the first call.
    init_ops: list[str] = field(default_factory=list)
    # Key of an earlier signature with the very same graph, inputs and outputs (Keras exports
    # ``serve`` and ``serving_default`` over one function): optimized and stored once.
    same_as: str | None = None
    # Where the graph's lifted constants (:mod:`tfopt.graph.lifted`) read their values: a
    # large model is frozen and optimized with its weights outside the GraphDef, and written
    # from there. None: every value is in the graph.
    weights: WeightStore | None = None

    @property
    def protected_nodes(self) -> set[str]:
        """Nodes no pass may remove or rename: inputs, outputs and load-time initializers."""
        io = {t.tensor.rsplit(":", 1)[0] for t in (*self.inputs.values(), *self.outputs.values())}
        return io | set(self.init_ops)

    def with_graph(self, graph_def: graph_pb2.GraphDef) -> SignatureGraph:
        """The same signature (keys, tensors, initializers) over another graph, derived from
        this one (its lifted constants read from the same store)."""
        return dataclasses.replace(self, graph_def=graph_def, init_ops=list(self.init_ops))

    def with_lifted(self, graph_def: graph_pb2.GraphDef,
                    weights: WeightStore | None) -> SignatureGraph:
        """The same signature over ``graph_def`` whose lifted constants read from ``weights``."""
        return dataclasses.replace(self, graph_def=graph_def, init_ops=list(self.init_ops),
                                   weights=weights)

    def inlined(self) -> SignatureGraph:
        """The same signature with every weight's value in its graph: for what hands the
        graph to TensorFlow whole (a session, the v1 builder, a GraphDef file)."""
        if self.weights is None:
            return self
        return self.with_lifted(inline(self.graph_def, self.weights), None)

    @property
    def output_tensors(self) -> list[str]:
        return [t.tensor for t in self.outputs.values()]


@dataclass
class LoadedModel:
    """A model as tfopt sees it: frozen signature graphs plus a way to run the original."""

    path: str
    signatures: dict[str, SignatureGraph]
    notes: list[str] = field(default_factory=list)
    # Runs the *original* model (unfrozen, as a user would), for verification.
    reference: Any = None
    tags: tuple[str, ...] = ("serve",)
    format: Any = None  # the tfopt.model.formats.ModelFormat it was loaded as
    # TF2 attribute functions (``loaded.serve``) a signature answers for; restated on output.
    endpoints: list = field(default_factory=list)

    @property
    def kind(self) -> str:
        """The format's name: saved_model_tf2, saved_model_tf1, graph_def or keras."""
        return self.format.name if self.format is not None else ""
