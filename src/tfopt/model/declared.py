"""A SavedModel's declared signatures read from ``saved_model.pb``'s bytes, without
TensorFlow: the names, dtypes and shapes of each signature's inputs and outputs.

Importing TensorFlow takes seconds (5 here); the user's files (``--inputs-file``,
``--labels``, ``--calibration-file``) are checked against these declarations before that, so
that a wrong file is refused at once. Only the few fields needed are decoded (protobuf's wire
format: SavedModel.meta_graphs -> MetaGraphDef.meta_info_def.tags and .signature_def ->
SignatureDef.inputs/outputs -> TensorInfo.dtype/tensor_shape); the graph itself is skipped
unread. Anything unexpected returns None, and the checks then wait for the loaded model.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

# tensorflow/core/framework/types.proto: DataType -> its name (TensorFlow's dtype names)
DTYPES = {1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8",
          7: "string", 8: "complex64", 9: "int64", 10: "bool", 14: "bfloat16",
          17: "uint16", 18: "complex128", 19: "float16", 22: "uint32", 23: "uint64"}


@dataclass(frozen=True)
class Spec:
    """One declared tensor: its dtype's name and its shape (None: unknown rank; a None
    dimension: unknown size)."""

    dtype: str
    shape: tuple[int | None, ...] | None

    def describe(self) -> str:
        if self.shape is None:
            return f"{self.dtype}<unknown rank>"
        return f"{self.dtype}[{', '.join('?' if d is None else str(d) for d in self.shape)}]"


Signature = tuple[dict[str, Spec], dict[str, Spec]]


def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7


def _fields(buf: memoryview) -> Iterator[tuple[int, int | memoryview]]:
    """(field number, value) of a message: varints as ints, length-delimited as views."""
    i, end = 0, len(buf)
    while i < end:
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            size, i = _varint(buf, i)
            value, i = buf[i:i + size], i + size
        elif wire == 1:
            value, i = 0, i + 8
        elif wire == 5:
            value, i = 0, i + 4
        else:
            raise ValueError(f"wire type {wire}")
        yield field, value


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _shape(buf: memoryview) -> tuple[int | None, ...] | None:
    dims: list[int | None] = []
    for field, value in _fields(buf):
        if field == 3 and value:  # unknown_rank
            return None
        if field == 2:
            size = next((_signed(v) for f, v in _fields(value) if f == 1), 0)
            dims.append(None if size < 0 else size)
    return tuple(dims)


def _tensor(buf: memoryview) -> Spec:
    dtype, shape = 0, None
    for field, value in _fields(buf):
        if field == 2:
            dtype = value
        elif field == 3:
            shape = _shape(value)
    return Spec(DTYPES.get(dtype, f"dtype{dtype}"), shape)


def _map(buf: memoryview) -> tuple[str, memoryview]:
    key, value = "", memoryview(b"")
    for field, item in _fields(buf):
        if field == 1:
            key = bytes(item).decode()
        elif field == 2:
            value = item
    return key, value


def _signature(buf: memoryview) -> Signature:
    inputs: dict[str, Spec] = {}
    outputs: dict[str, Spec] = {}
    for field, value in _fields(buf):
        if field in (1, 2):
            key, tensor = _map(value)
            (inputs if field == 1 else outputs)[key] = _tensor(tensor)
    return inputs, outputs


def declared_signatures(path: str, tag: str = "serve") -> dict[str, Signature] | None:
    """Signature key -> (inputs, outputs) of the SavedModel directory ``path``'s MetaGraph
    tagged ``tag`` (else its first); None when it cannot be read this way."""
    try:
        with open(os.path.join(path, "saved_model.pb"), "rb") as f:
            data = memoryview(f.read())
        graphs = []
        for field, meta in _fields(data):
            if field != 2:
                continue
            tags: list[str] = []
            sigs: dict[str, Signature] = {}
            for sub, value in _fields(meta):
                if sub == 1:  # meta_info_def
                    tags += [bytes(v).decode() for f, v in _fields(value) if f == 4]
                elif sub == 5:  # signature_def map entry
                    key, sig = _map(value)
                    if not key.startswith("__"):
                        sigs[key] = _signature(sig)
            graphs.append((tags, sigs))
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None
    chosen = next((s for t, s in graphs if tag in t), graphs[0][1] if graphs else None)
    return chosen
