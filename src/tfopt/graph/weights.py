"""Graphs whose weights do not fit one protobuf: holding them, and crossing into TensorFlow.

Protobuf serialises no message of 2 GiB or more, and TensorFlow's C++ side (importing a
GraphDef, ``as_graph_def``, the SavedModel's ``saved_model.pb``) parses only serialised
messages. Python's protobuf holds larger messages in memory, so tfopt's passes keep working on
one in-memory GraphDef with every weight a ``Const`` (they read and rewrite weights exactly as
for small models). Only where a graph crosses into TensorFlow does a large one leave its
largest weights behind (:func:`split_weights`): they become placeholders of the same dtype and
shape, and the values travel beside the graph, fed once into variables
(:func:`initialize_weights`, for sessions), or written to the SavedModel's ``variables/``
checkpoint (the saver), as TensorFlow's own SavedModels keep theirs.

The threshold is :func:`graph_limit`: 1.5 GiB by default (safely under protobuf's 2 GiB with
the graph's other nodes), ``TFOPT_MAX_GRAPH_MB`` to lower it (the tests exercise this path on
small models) - an environment variable, so child processes see the same limit.

Memory sets a second, lower threshold (:func:`variables_from`, 1/24 of the limit: 64 MiB by
default). TensorFlow copies graph constants several times while it instantiates and optimizes
a function: a process loading GPT-2 6x512 (0.17 GiB) with inline weights held 4.3 GB, GPT-2
base (0.46 GiB) 10.9 GB, and reading them from variables 1.2 GB for GPT-2 base. So a model
past it keeps its matmul and embedding weights in variables too - read from variables they
ran as fast (ViT 1.10x [1.08-1.21] of inline constants; GPT-2 6x512 47.5 vs 47.8 samples/s at
batch 1, session 10) - while convolution filters stay
constants: oneDNN caches a reordered filter only for a constant (the SSD ran 0.94x
[0.92-1.00] with its filters in variables).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
from collections.abc import Iterable

import numpy as np
from tensorflow.core.framework import attr_value_pb2, graph_pb2, types_pb2

from tfopt.graph.names import node_of
from tfopt.graph.nodes import WeightSource, const_value, is_lifted, make_node, node_bytes

PROTO_LIMIT = (1 << 31) - 1
DEFAULT_LIMIT_MB = 1536


def graph_limit() -> int:
    """Bytes above which a serialised graph keeps its weights outside."""
    mb = float(os.environ.get("TFOPT_MAX_GRAPH_MB") or DEFAULT_LIMIT_MB)
    return int(mb * (1 << 20))


def release_memory(graph_def: graph_pb2.GraphDef) -> None:
    """Free what a pass or stage left for the cycle collector, when ``graph_def`` is large: a
    pass's StaticInfo imports every weight into a ``tf.Graph``, whose reference cycles keep
    that copy alive until the collector runs (GPT-2 4x256, 62 MB of weights: RSS grew ~one
    weight copy per pass application, 1.2 -> 1.8 GB over its passes; collected after each, it
    stays at ~0.75 GB). ``malloc_trim`` hands the freed pages back to the system."""
    if graph_bytes(graph_def) < RELEASE_BYTES:
        return
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # glibc only
        ctypes.CDLL("libc.so.6").malloc_trim(0)


# Graphs at least this large are worth a collection after each pass: a collection takes
# ~0.3 s with TensorFlow loaded, ~70 of them doubled GPT-2 2x256's (58 MB) pass time, while
# a small graph's leftover copies cost less than that.
RELEASE_BYTES = 256 << 20


def graph_bytes(graph_def: graph_pb2.GraphDef) -> int:
    """Serialised size, summed per node and function (no 2 GiB overflow on the way; weights
    counted from their shapes, see :func:`tfopt.graph.nodes.tensor_bytes`)."""
    return (sum(node_bytes(n) for n in graph_def.node)
            + sum(f.ByteSize() for f in graph_def.library.function))


def size_text(n: float) -> str:
    """``n`` bytes for a reader: "256 MiB", "1.50 GiB", "51 KiB"."""
    if n >= 1 << 30:
        return f"{n / 2**30:.2f} GiB"
    return f"{n / 2**20:.0f} MiB" if n >= 1 << 20 else f"{n / 2**10:.0f} KiB"


def variables_from(limit: int | None = None) -> int:
    """Bytes of graph from which matmul and embedding weights live in variables."""
    return (graph_limit() if limit is None else limit) // 24


# Past variables_from, a floating constant is a weight worth a variable when it holds at least
# this share of the graph (GPT-2 past 2 GiB: its 6.5-26 MB matrices go, its 5 KB biases stay).
WEIGHT_SHARE = 1e-3
FLOATING = frozenset({types_pb2.DT_FLOAT, types_pb2.DT_BFLOAT16, types_pb2.DT_HALF,
                      types_pb2.DT_DOUBLE})


def weights_outside(graph_def: graph_pb2.GraphDef, limit: int | None = None
                    ) -> dict[str, int]:
    """The main-graph constants :func:`split_weights` leaves outside, with their sizes in
    bytes: none under :func:`variables_from`; past it the floating weights no convolution
    reads (each at least ``WEIGHT_SHARE`` of the graph); and past ``limit`` the largest of
    the rest too, until what stays is under half of it."""
    limit = graph_limit() if limit is None else limit
    total = graph_bytes(graph_def)
    if total <= variables_from(limit):
        return {}
    consts = sorted((n for n in graph_def.node if n.op == "Const" and not n.input),
                    key=node_bytes, reverse=True)
    conv_read = _read_by_convolutions(graph_def)
    outside: dict[str, int] = {}
    for node in consts:
        size = node_bytes(node)
        if (size >= WEIGHT_SHARE * total and node.attr["dtype"].type in FLOATING
                and node.name not in conv_read):
            outside[node.name] = size
    rest = total - sum(outside.values())
    for node in consts:
        if rest <= limit // 2:
            break
        if node.name not in outside:
            outside[node.name] = node_bytes(node)
            rest -= outside[node.name]
    return outside


def _read_by_convolutions(graph_def: graph_pb2.GraphDef) -> set[str]:
    """Nodes a convolution reads, directly or through Identity (``weights/read`` in graphs
    frozen from TF1 variables)."""
    identities = {n.name: node_of(n.input[0]) for n in graph_def.node
                  if n.op == "Identity" and n.input}
    read = set()
    for node in graph_def.node:
        if "Conv" in node.op:
            for text in node.input:
                name = node_of(text)
                while name not in read and name in identities:
                    read.add(name)
                    name = identities[name]
                read.add(name)
    return read


def split_weights(graph_def: graph_pb2.GraphDef, limit: int | None = None,
                  weights: WeightSource | None = None
                  ) -> tuple[graph_pb2.GraphDef, dict[str, np.ndarray]]:
    """``graph_def`` itself when no weight leaves it (:func:`weights_outside`); else a copy
    whose outside constants are placeholders (same name, dtype and shape), and those
    constants' values by node name (lifted ones read from ``weights``)."""
    small, names = with_placeholders(graph_def, limit)
    return small, weight_values(graph_def, names, weights)


def with_placeholders(graph_def: graph_pb2.GraphDef, limit: int | None = None,
                      outside: Iterable[str] | None = None
                      ) -> tuple[graph_pb2.GraphDef, frozenset[str]]:
    """:func:`split_weights` without the values (for shapes and dtypes, nothing is read):
    the graph and the names of the constants it left outside (``outside`` when the caller
    already chose them, else :func:`weights_outside`). Lifted constants
    (:mod:`tfopt.graph.lifted`) are always left outside: their stubs hold no value."""
    outside = set(weights_outside(graph_def, limit) if outside is None else outside)
    outside.update(n.name for n in graph_def.node if is_lifted(n))
    if not outside:
        return graph_def, frozenset()
    small = graph_pb2.GraphDef(versions=graph_def.versions, library=graph_def.library)
    ordering = {f"^{name}" for name in outside}
    for node in graph_def.node:
        if node.name not in outside:
            small.node.append(node)
            if ordering.intersection(node.input):
                # A control edge from a constant orders nothing, but from a placeholder fed
                # by a variable read it is an input no ``input_map`` replaces: a lowered
                # LSTM's ``LoopExecuted`` waits on its weights, and the signature function
                # could not be cut from the graph ("depends on placeholder unknown_0").
                kept = [t for t in node.input if t not in ordering]
                del small.node[-1].input[:]
                small.node[-1].input.extend(kept)
            continue
        tensor = node.attr["value"].tensor
        shape = attr_value_pb2.AttrValue(shape=tensor.tensor_shape)
        small.node.append(make_node(node.name, "Placeholder", [], node.device,
                                    dtype=node.attr["dtype"], shape=shape))
    return small, frozenset(outside)


def weight_values(graph_def: graph_pb2.GraphDef, names: Iterable[str],
                  weights: WeightSource | None = None) -> dict[str, np.ndarray]:
    """The values of constants ``names`` of ``graph_def`` (lifted ones from ``weights``), by
    node name."""
    wanted = set(names)
    return {node.name: const_value(node, weights) for node in graph_def.node
            if node.name in wanted}


def initialize_weights(graph, values: dict[str, np.ndarray]):
    """In graph mode, inside ``graph``: a variable per split weight, initialised once from a
    fed placeholder (never a constant in the graph). Returns the input map (placeholder
    tensor -> variable value) to import the split graph with, the initializer op and its
    feed."""
    import tensorflow as tf

    input_map, feed, inits = {}, {}, []
    with graph.as_default(), tf.name_scope("tfopt_weights"):
        for name, value in values.items():
            initial = tf.compat.v1.placeholder(tf.as_dtype(value.dtype), value.shape)
            var = tf.compat.v1.Variable(initial, trainable=False, use_resource=True,
                                        name=name.replace("/", "_"))
            input_map[f"{name}:0"] = var.read_value()
            feed[initial] = value
            inits.append(var.initializer)
        # Inside the graph: outside it (eager, TensorFlow 2's default) tf.group runs at once and
        # returns None, and the session then ran with every variable uninitialised ("Container
        # localhost does not exist": the demo's profile of a split SSD).
        init = tf.group(*inits) if inits else None
    return input_map, init, feed
