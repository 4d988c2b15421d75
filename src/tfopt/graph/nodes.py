"""What a node holds: its attributes (the one place that knows AttrValue's layout), a
constant's value (in place, or lifted beside the graph while the passes run), and how new
nodes are made."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import numpy as np
from tensorflow.core.framework import attr_value_pb2, node_def_pb2
from tensorflow.python.framework import dtypes, tensor_util

from tfopt.graph.names import node_of


def get_attr(node: node_def_pb2.NodeDef, key: str, default=None):
    """Python value of an attribute (int, float, bool, bytes->str, list, DType, ndarray)."""
    if key not in node.attr:
        return default
    value = node.attr[key]
    kind = value.WhichOneof("value")
    if kind == "s":
        return value.s.decode()
    if kind in ("i", "f", "b"):
        return getattr(value, kind)
    if kind == "type":
        return dtypes.as_dtype(value.type)
    if kind == "shape":
        return value.shape
    if kind == "tensor":
        return const_value(node) if key == "value" else tensor_util.MakeNdarray(value.tensor)
    if kind == "list":
        lst = value.list
        for field in ("i", "f", "s", "type", "b", "shape"):
            items = list(getattr(lst, field))
            if items:
                if field == "s":
                    return [s.decode() for s in items]
                if field == "type":
                    return [dtypes.as_dtype(t) for t in items]
                return items
        return []
    return default


def copied_attrs(node: node_def_pb2.NodeDef, keys: Iterable[str] | None = None
                 ) -> dict[str, attr_value_pb2.AttrValue]:
    """Copies of ``node``'s attributes (those in ``keys`` it has), to give another node after
    ``node`` is retyped or removed."""
    out = {}
    for key in node.attr if keys is None else [k for k in keys if k in node.attr]:
        out[key] = attr_value_pb2.AttrValue()
        out[key].CopyFrom(node.attr[key])
    return out


def set_attrs(node: node_def_pb2.NodeDef, attrs: dict[str, attr_value_pb2.AttrValue]) -> None:
    for key, value in attrs.items():
        node.attr[key].CopyFrom(value)


def set_attr(node: node_def_pb2.NodeDef, key: str, value) -> None:
    """Set an attribute from a Python value; the type of ``value`` chooses the field."""
    attr = node.attr[key]
    attr.Clear()
    if isinstance(value, bool):
        attr.b = value
    elif isinstance(value, int):
        attr.i = value
    elif isinstance(value, float):
        attr.f = value
    elif isinstance(value, str):
        attr.s = value.encode()
    elif isinstance(value, bytes):
        attr.s = value
    elif isinstance(value, dtypes.DType):
        attr.type = value.as_datatype_enum
    elif isinstance(value, np.ndarray):
        attr.tensor.CopyFrom(tensor_util.make_tensor_proto(value))
    elif isinstance(value, (list, tuple)):
        if all(isinstance(v, dtypes.DType) for v in value) and value:
            attr.list.type.extend(v.as_datatype_enum for v in value)
        elif all(isinstance(v, str) for v in value) and value:
            attr.list.s.extend(v.encode() for v in value)
        elif all(isinstance(v, float) for v in value) and value:
            attr.list.f.extend(value)
        else:
            attr.list.i.extend(int(v) for v in value)
        if not value:
            attr.list.SetInParent()
    elif isinstance(value, attr_value_pb2.AttrValue):
        attr.CopyFrom(value)
    else:
        raise TypeError(f"unsupported attribute value for {key!r}: {type(value).__name__}")


def make_const(name: str, value: np.ndarray, device: str = "",
               dtype: dtypes.DType | None = None) -> node_def_pb2.NodeDef:
    """A Const holding ``value``; ``dtype`` stores it as another type (qint8 weights are
    int8 values that NumPy cannot tag as quantized)."""
    value = np.asarray(value)
    dtype = dtype or dtypes.as_dtype(value.dtype)
    node = node_def_pb2.NodeDef(name=name, op="Const", device=device)
    node.attr["dtype"].type = dtype.as_datatype_enum
    node.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(value, dtype=dtype))
    return node


def make_node(name: str, op: str, inputs: list[str], device: str = "",
              **attrs) -> node_def_pb2.NodeDef:
    """A new ``op`` node reading ``inputs``, its attributes set with :func:`set_attr`."""
    node = node_def_pb2.NodeDef(name=name, op=op, input=inputs, device=device)
    for key, value in attrs.items():
        set_attr(node, key, value)
    return node


# A constant whose value is held beside the graph while the passes run carries this attribute
# (its key there) and a value tensor with its dtype and shape but no content
# (:mod:`tfopt.graph.lifted`): passes copy the graph many times, its weights need not follow.
LIFTED = "_tfopt_lifted"


class WeightSource(Protocol):
    """Where lifted constants' values are read (:class:`tfopt.graph.lifted.WeightStore`)."""

    def value(self, key: str) -> np.ndarray: ...


class LiftedWeightError(ValueError):
    """A lifted constant's value was asked for without the store that holds it."""


def is_lifted(node: node_def_pb2.NodeDef) -> bool:
    return LIFTED in node.attr


def const_value(node: node_def_pb2.NodeDef, weights: WeightSource | None = None) -> np.ndarray:
    """A Const's value; a lifted one's from ``weights`` (read-only there: edits make a new
    constant with :func:`set_const_value` or :meth:`GraphView.add_const`)."""
    if LIFTED in node.attr:
        if weights is None:
            raise LiftedWeightError(f"constant {node.name!r} is held outside the graph; read it "
                                    "through the GraphView that has its weights")
        return weights.value(node.attr[LIFTED].s.decode())
    return tensor_util.MakeNdarray(node.attr["value"].tensor)


# The repeated value fields of a TensorProto: a tensor that uses one is small (or a string).
_LISTED = ("float_val", "double_val", "int_val", "int64_val", "half_val", "bool_val",
           "uint32_val", "uint64_val", "scomplex_val", "dcomplex_val", "string_val",
           "resource_handle_val", "variant_val")


def tensor_bytes(tensor) -> int:
    """About what a TensorProto serialises to, from its shape and dtype: upb's ``ByteSize``
    serialises the message to count it (0.36 s per 100 MB), which on a 2 GiB model's weights
    was most of optimize's time. Exact for ``tensor_content`` tensors (weights)."""
    if any(len(getattr(tensor, f)) for f in _LISTED):
        return tensor.ByteSize()
    count = 1
    for dim in tensor.tensor_shape.dim:
        count *= max(dim.size, 0)
    return count * dtypes.as_dtype(tensor.dtype).size


def node_bytes(node: node_def_pb2.NodeDef) -> int:
    """About what a node serialises to: :func:`tensor_bytes` for a constant's value (plus its
    name and attributes' worth), ``ByteSize`` for the others (small)."""
    if node.op != "Const" or "value" not in node.attr:
        return node.ByteSize()
    return tensor_bytes(node.attr["value"].tensor) + len(node.name) + 64


def const_shape(node: node_def_pb2.NodeDef) -> tuple[int, ...]:
    """A Const's shape, read without its value (lifted or not; a weight can be 1 GiB)."""
    return tuple(d.size for d in node.attr["value"].tensor.tensor_shape.dim)


def set_const_value(node: node_def_pb2.NodeDef, value: np.ndarray) -> None:
    """Give a Const a new value, in the graph (a lifted one is lifted again after the pass)."""
    value = np.asarray(value)
    if LIFTED in node.attr:
        del node.attr[LIFTED]
    node.attr["dtype"].type = dtypes.as_dtype(value.dtype).as_datatype_enum
    node.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(value))


def dedupe_controls(node: node_def_pb2.NodeDef) -> None:
    """Drop repeated ``^x`` inputs and controls that duplicate a data input's node."""
    data_nodes = {node_of(t) for t in node.input if not t.startswith("^")}
    seen: set[str] = set()
    kept = []
    for text in node.input:
        if text.startswith("^"):
            if text in seen or text[1:] in data_nodes or text[1:] == node.name:
                continue
            seen.add(text)
        kept.append(text)
    if len(kept) != len(node.input):
        del node.input[:]
        node.input.extend(kept)
