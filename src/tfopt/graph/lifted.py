"""Weights held beside the graph, from freezing to writing.

Every pass works on its own copy of the graph (``GraphView`` copies, so a rejected pass leaves
its input untouched) and hands a new GraphDef on; shape inference imports another. With the
weights inside the GraphDef each of those copies copied every weight: a 2.15 GiB GPT-2 peaked
at 8x its weights while optimizing, and a 59-node model with two 1.1 GiB tables spent 343 s
of its passes copying them. So large constants are *lifted*: the graph keeps the Const node
(name, dtype, shape, readers) with an empty value and the :data:`~tfopt.graph.nodes.LIFTED`
attribute naming its key in a :class:`WeightStore`, and :func:`inline` puts the values back
where a graph goes to TensorFlow whole::

    Const w [768, 3072] (9 MiB)   --lift-->   Const w [768, 3072] (empty, _tfopt_lifted="..")
                                                    store[".."] -> the 9 MiB, read in place

A large model is frozen this way from the start (its read weights stay in the variables they
were loaded into, see :func:`tfopt.model.freeze.freeze_concrete_function`), the passes lift
what they write (:func:`lift`, :func:`lift_new`), and its optimized graph reaches the writer
still lifted, which stores each weight in ``variables/`` from where it is: one copy of the
weights from load to write. Passes read values through their view (:meth:`GraphView.value`);
a pass that changes a weight writes a new inline constant, lifted again after the pass. Shape
inference imports lifted constants as placeholders
(:func:`tfopt.graph.weights.with_placeholders`), and what evaluates a graph feeds their values
from the store, so a stub's empty value never reaches TensorFlow.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable
from typing import Any

import numpy as np
from tensorflow.core.framework import graph_pb2, node_def_pb2, tensor_pb2
from tensorflow.python.framework import tensor_util

from tfopt.graph.library import all_nodes
from tfopt.graph.nodes import LIFTED, is_lifted

# Constants with at least this many bytes of content are lifted: weights, not the shapes,
# axes and scalars that passes match on (a 256-float bias is 1 KiB).
LIFT_BYTES = 64 << 10


class WeightStore:
    """Values of lifted constants by key. A weight can be held three ways, none of them a
    copy: a node of a graph the caller keeps anyway (read from its proto when asked for), a
    TensorFlow variable (a large model frozen without copying its weights, see
    :func:`tfopt.model.freeze.freeze_concrete_function`; the writer stores that very variable),
    or a read-only array (a value a pass produced). A store made with a ``parent`` answers
    for the parent's keys too: the passes' store over the one a frozen signature came with."""

    def __init__(self, parent: WeightStore | None = None) -> None:
        self._parent = parent
        self._sources: dict[str, node_def_pb2.NodeDef] = {}
        self._variables: dict[str, Any] = {}  # tf.Variable
        self._arrays: dict[str, np.ndarray] = {}
        # Keys unique across stores: a graph may hold keys of this store and of its parent.
        self._keys = (f"{uuid.uuid4().hex[:8]}.{i}" for i in itertools.count())

    def __len__(self) -> int:
        own = len(self._sources) + len(self._variables) + len(self._arrays)
        return own + (len(self._parent) if self._parent is not None else 0)

    def _owner(self, key: str) -> WeightStore:
        store: WeightStore | None = self
        while store is not None:
            if key in store._arrays or key in store._sources or key in store._variables:
                return store
            store = store._parent
        raise KeyError(f"no lifted weight {key!r} in this store")

    def value(self, key: str) -> np.ndarray:
        owner = self._owner(key)
        if key in owner._arrays:
            return owner._arrays[key]
        if key in owner._variables:  # a view of the variable's buffer where TF allows it
            value = np.asarray(owner._variables[key].read_value())
        else:
            value = tensor_util.MakeNdarray(owner._sources[key].attr["value"].tensor)
        value.setflags(write=False)
        return value

    def variable(self, key: str):
        """The ``tf.Variable`` holding ``key``, or None when it is held another way."""
        owner = self._owner(key)
        return owner._variables.get(key)

    def fill(self, key: str, tensor: tensor_pb2.TensorProto) -> None:
        """Write the value of ``key`` into ``tensor``."""
        owner = self._owner(key)
        if key in owner._sources:
            tensor.CopyFrom(owner._sources[key].attr["value"].tensor)
        else:
            tensor.CopyFrom(tensor_util.make_tensor_proto(self.value(key)))

    def hold_source(self, node: node_def_pb2.NodeDef) -> str:
        key = next(self._keys)
        self._sources[key] = node
        return key

    def hold_variable(self, variable) -> str:
        key = next(self._keys)
        self._variables[key] = variable
        return key

    def hold_array(self, value: np.ndarray) -> str:
        key = next(self._keys)
        value.setflags(write=False)
        self._arrays[key] = value
        return key

    def keep_only(self, keys: Iterable[str]) -> None:
        """Drop the arrays no graph refers to any more (a weight a later pass replaced); what
        the parent holds is the parent's."""
        keep = set(keys)
        for key in [k for k in self._arrays if k not in keep]:
            del self._arrays[key]


def _liftable(node: node_def_pb2.NodeDef) -> bool:
    return (node.op == "Const" and not is_lifted(node) and "value" in node.attr
            and len(node.attr["value"].tensor.tensor_content) >= LIFT_BYTES)


def _stub(node: node_def_pb2.NodeDef, key: str) -> node_def_pb2.NodeDef:
    """``node`` without its value's content, naming ``key``."""
    stub = node_def_pb2.NodeDef(name=node.name, op=node.op, input=node.input,
                                device=node.device)
    for name, attr in node.attr.items():
        if name == "value":
            tensor = attr.tensor
            stub.attr[name].tensor.CopyFrom(tensor_pb2.TensorProto(
                dtype=tensor.dtype, tensor_shape=tensor.tensor_shape))
        else:
            stub.attr[name].CopyFrom(attr)
    stub.attr[LIFTED].s = key.encode()
    return stub


def lifted_stub(name: str, dtype, shape, key: str, device: str = "") -> node_def_pb2.NodeDef:
    """A stub Const ``name`` of ``dtype`` and ``shape`` (TensorFlow's) whose value is ``key``
    in a store: a weight that never was in the graph (a variable frozen in place)."""
    tensor = tensor_pb2.TensorProto(dtype=dtype.as_datatype_enum,
                                    tensor_shape=shape.as_proto())
    node = node_def_pb2.NodeDef(name=name, op="Const", device=device)
    node.attr["dtype"].type = dtype.as_datatype_enum
    node.attr["value"].tensor.CopyFrom(tensor)
    node.attr[LIFTED].s = key.encode()
    return node


def lift(graph_def: graph_pb2.GraphDef, store: WeightStore) -> graph_pb2.GraphDef:
    """A copy of ``graph_def`` whose large main-graph constants are stubs read from ``store``
    (which reads them from ``graph_def``: keep it unchanged while the store is in use)."""
    if not any(_liftable(n) for n in graph_def.node):
        return graph_def
    out = graph_pb2.GraphDef()
    out.versions.CopyFrom(graph_def.versions)
    if graph_def.HasField("library"):
        out.library.CopyFrom(graph_def.library)
    for node in graph_def.node:
        out.node.append(_stub(node, store.hold_source(node)) if _liftable(node) else node)
    return out


def lift_new(graph_def: graph_pb2.GraphDef, store: WeightStore) -> int:
    """Lift, in place, the large constants a pass wrote into ``graph_def`` (a pass result the
    pipeline owns); returns how many."""
    lifted = 0
    for node in graph_def.node:
        if _liftable(node):
            tensor = node.attr["value"].tensor
            key = store.hold_array(tensor_util.MakeNdarray(tensor))
            tensor.ClearField("tensor_content")
            node.attr[LIFTED].s = key.encode()
            lifted += 1
    return lifted


def lifted_keys(graph_def: graph_pb2.GraphDef) -> set[str]:
    return {n.attr[LIFTED].s.decode() for n in all_nodes(graph_def) if is_lifted(n)}


def inline(graph_def: graph_pb2.GraphDef, store: WeightStore | None,
           keep: Iterable[str] = ()) -> graph_pb2.GraphDef:
    """``graph_def`` with every lifted constant's value back in place (a new GraphDef; the
    input is left as it is), but those named in ``keep`` (main-graph nodes the caller stores
    elsewhere, e.g. in variables). The inverse of :func:`lift`."""
    keep = set(keep)
    if not any(is_lifted(n) and n.name not in keep for n in all_nodes(graph_def)):
        return graph_def
    if store is None:
        raise ValueError("the graph holds lifted weights but no store was given for them")
    out = graph_pb2.GraphDef()
    out.CopyFrom(graph_def)  # the stubs are small: this copies no weight
    for node in all_nodes(out):
        if is_lifted(node) and node.name not in keep:
            key = node.attr[LIFTED].s.decode()
            del node.attr[LIFTED]
            store.fill(key, node.attr["value"].tensor)
    return out
