"""Verification inputs: generated to be valid for the graph, or loaded from ``--inputs-file``.

Generated inputs are valid by construction: integer ids stay within the embedding table they
index, one-hot inputs within the depth, masks 0/1; unknown dimensions get stated defaults. What
was assumed is said in one line, so a user knows what the verdict was reached on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from tfopt.errors import TfoptError
from tfopt.graph.readers import Readers
from tfopt.model.signature import LoadedModel, SignatureGraph, TensorInfo
from tfopt.options import MAX_INPUT_BYTES, check_shape_names

DEFAULT_INT_RANGE = (0, 10)
_WORDS = [b"the", b"quick", b"brown", b"fox", b"jumps"]


# Defaults for dimensions nothing in the signature or the graph fixes.
SPATIAL_DEFAULT = 224   # height/width of an image-like input [?, ?, ?, C] with C in 1..4
SEQUENCE_DEFAULT = 64   # other unknown non-batch dimensions (sequence lengths)

# Ops an integer input may pass through and still be the same ids.
_ID_PASSTHROUGH = {"Identity", "Cast", "Reshape", "ExpandDims", "Squeeze", "StridedSlice",
                   "Slice", "Transpose", "Tile", "BroadcastTo", "Pack", "ConcatV2"}
_GATHERS = {"GatherV2", "Gather", "ResourceGather"}
# A mask compared with a threshold in [0, 1] (GPT-2's attention mask: Minimum with the causal
# mask, then Greater(mask, Cast(0.5))); Minimum/Maximum keep a 0/1 value 0/1 and keep ids
# inside their table.
_MASK_TESTS = {"Greater", "GreaterEqual", "Less", "LessEqual", "Equal", "NotEqual"}
_VALUE_KEEPING = {"Minimum", "Maximum"}


# Ops that parse a string input as serialized tf.train.Example protos (input 0).
_EXAMPLE_PARSERS = {"ParseExample", "ParseExampleV2", "ParseSingleExample"}
# Image decoders, and the encoding TensorFlow can write for each (DecodeImage takes JPEG too;
# BMP and GIF it cannot encode: such a model needs --inputs-file).
_IMAGE_DECODERS = {"DecodePng": "png", "DecodeJpeg": "jpeg", "DecodeAndCropJpeg": "jpeg",
                   "DecodeImage": "jpeg"}
IMAGE_SIDE = 224  # generated encoded images are this many pixels square


@dataclass(frozen=True)
class ExampleFeature:
    """One feature a tf.train.Example parser reads: its key, value type, and the shape of a
    dense feature (None: a sparse or ragged one, any number of values)."""

    key: str
    dtype: tf.DType
    shape: tuple[int, ...] | None
    int_range: tuple[int, int] | None = None  # ids: what the parsed values index
    why: str = ""


@dataclass(frozen=True)
class InputHint:
    """What the graph says a generated input may hold."""

    int_range: tuple[int, int] | None = None  # [low, high) for integer ids
    why: str = ""
    # a string input the graph parses as serialized tf.train.Example (a TF Serving /
    # Estimator / TFX signature): the features to write into each generated proto
    features: tuple[ExampleFeature, ...] | None = None
    # a string input of encoded images (the graph decodes them): "jpeg", "png", ...
    image_format: str | None = None


def _const_node(nodes: dict, text: str, through: tuple[str, ...] = ("Identity",)):
    """The Const reached through ``through`` chains (Identity), else None."""
    from tfopt.graph.names import node_of

    node = nodes.get(node_of(text))
    while node is not None and node.op in through and node.input:
        node = nodes.get(node_of(node.input[0]))
    return node if node is not None and node.op == "Const" else None


def _const_of(nodes: dict, text: str, through: tuple[str, ...] = ("Identity",)):
    """Value of a Const reached through ``through`` chains (Identity), else None."""
    from tfopt.graph.nodes import const_value

    node = _const_node(nodes, text, through)
    return None if node is None else const_value(node)


def _const_shape(nodes: dict, text: str) -> tuple[int, ...] | None:
    """Shape of a Const reached through Identity chains, read without its value (an
    embedding table can be 1 GiB)."""
    from tfopt.graph.nodes import const_shape

    node = _const_node(nodes, text)
    return None if node is None else const_shape(node)


def input_hints(sig: SignatureGraph) -> dict[str, InputHint]:
    """Ranges for integer inputs, derived from what they index: the rows of the smallest
    embedding table they gather from, a one-hot depth, 0/1 for masks (cast to bool, or
    compared with a threshold in [0, 1] and indexing nothing); for a string input parsed as
    serialized tf.train.Example, the features the parser reads (and the ranges of its integer
    features, found the same way)."""
    from tfopt.graph.names import InputRef

    nodes = {n.name: n for n in sig.graph_def.node}
    consumers = Readers(sig.graph_def.node)
    hints: dict[str, InputHint] = {}
    for key, info in sig.inputs.items():
        start = InputRef.parse(info.tensor)
        if info.dtype == tf.string:
            features = _example_features(nodes, consumers, (start.node, start.port))
            if features:
                hints[key] = InputHint(features=features)
            elif image_format := _decoded_image_format(sig):
                hints[key] = InputHint(image_format=image_format)
        elif info.dtype.is_integer or info.dtype == tf.bool:
            limit = _id_limit(nodes, consumers, (start.node, start.port))
            if limit:
                hints[key] = InputHint(*limit)
    return hints


def _readers(consumers: Readers, start: tuple[str, int], follow
             ) -> Iterator[tuple[Any, int]]:
    """Every (node, input index) that reads tensor ``start``, and, through the nodes for
    which ``follow(node, index)`` holds, what reads their output 0, each tensor once."""
    seen, stack = set(), [start]
    while stack:
        tensor = stack.pop()
        if tensor in seen:
            continue
        seen.add(tensor)
        for node, index in consumers.of_tensor(*tensor):
            yield node, index
            if follow(node, index):
                stack.append((node.name, 0))


def _casts_to_bool(node) -> bool:
    from tfopt.graph.nodes import get_attr

    return node.op == "Cast" and get_attr(node, "DstT") == tf.bool


def _id_limit(nodes: dict, consumers: Readers, start: tuple[str, int]
              ) -> tuple[tuple[int, int], str] | None:
    """The ids ``[0, high)`` the integer tensor ``start`` may hold, and why (None: nothing in
    the graph says)."""
    def same_ids(node, index: int) -> bool:  # (Keras wraps negative ids with a SelectV2)
        return not _casts_to_bool(node) and (
            node.op in _ID_PASSTHROUGH | _VALUE_KEEPING
            or (node.op in ("Select", "SelectV2") and index > 0))

    limits: list[tuple[int, str]] = []
    compared = False
    for node, index in _readers(consumers, start, same_ids):
        if node.op in _GATHERS and index == 1:
            table = _const_shape(nodes, node.input[0])
            axis = _const_of(nodes, node.input[2]) if node.op == "GatherV2" else 0
            if table and axis is not None:
                limits.append((int(table[int(axis)]), "embedding rows"))
        elif node.op == "OneHot" and index == 0:
            depth = _const_of(nodes, node.input[1])
            if depth is not None:
                limits.append((int(depth), "one-hot depth"))
        elif _casts_to_bool(node):
            limits.append((2, "mask"))
        elif node.op in _MASK_TESTS and _is_mask_threshold(
                _const_of(nodes, node.input[1 - index], ("Identity", "Cast"))):
            compared = True  # ids are compared with 0 too (negative-id wrapping)
    if compared and not limits:  # compared, and indexing nothing: a mask
        limits.append((2, "mask"))
    if not limits:
        return None
    high, why = min(limits)
    return (0, max(high, 1)), why


def _decoded_image_format(sig: SignatureGraph) -> str | None:
    """The encoding the graph's image decoder takes (in the main graph or a function, such as
    a ``map_fn`` body decoding a batch), or None when it decodes no images."""
    from tfopt.graph.library import all_nodes

    found = {_IMAGE_DECODERS[n.op] for n in all_nodes(sig.graph_def) if n.op in _IMAGE_DECODERS}
    if not found:
        return None
    return "jpeg" if "jpeg" in found else found.pop()


def encoded_images(image_format: str, shape: tuple[int, ...], rng: np.random.Generator
                   ) -> np.ndarray:
    """``shape`` encoded images of random pixels, :data:`IMAGE_SIDE` square, RGB."""
    encode = {"jpeg": tf.io.encode_jpeg, "png": tf.io.encode_png}[image_format]
    out = np.empty(shape, dtype=object)
    for index in np.ndindex(*shape):
        pixels = rng.integers(0, 256, (IMAGE_SIDE, IMAGE_SIDE, 3), dtype=np.uint8)
        out[index] = encode(pixels).numpy()
    return out


def _example_features(nodes: dict, consumers: Readers, start: tuple[str, int]
                      ) -> tuple[ExampleFeature, ...] | None:
    """The features of the tf.train.Example parser that reads the string tensor ``start``
    (through Identity / Reshape), or None."""
    def same_strings(node, index: int) -> bool:
        return node.op in ("Identity", "Reshape", "ExpandDims", "Squeeze") and index == 0

    for node, index in _readers(consumers, start, same_strings):
        if node.op in _EXAMPLE_PARSERS and index == 0:
            return _parser_features(nodes, consumers, node)
    return None


def _parser_features(nodes: dict, consumers: Readers, node) -> tuple[ExampleFeature, ...] | None:
    """What one parser node reads: sparse keys first, then dense, then ragged (the order of
    its outputs), each dense feature with the id range its parsed values index."""
    from tfopt.graph.nodes import get_attr

    def keys_at(index: int) -> list[str] | None:
        value = _const_of(nodes, node.input[index])
        return None if value is None else [k.decode() for k in np.ravel(value)]

    ragged, ragged_types = [], []
    if node.op == "ParseExampleV2":
        sparse, dense, ragged = keys_at(2), keys_at(3), keys_at(4)
        ragged_types = get_attr(node, "ragged_value_types", [])
    elif node.op == "ParseExample":  # one scalar key tensor per feature
        n_sparse, n_dense = get_attr(node, "Nsparse"), get_attr(node, "Ndense")
        found = [keys_at(i) for i in range(2, 2 + n_sparse + n_dense)]
        if any(k is None for k in found):
            return None
        sparse, dense = [k[0] for k in found[:n_sparse]], [k[0] for k in found[n_sparse:]]
    else:  # ParseSingleExample: keys are attributes
        sparse, dense = get_attr(node, "sparse_keys", []), get_attr(node, "dense_keys", [])
    if sparse is None or dense is None or ragged is None:
        return None
    features = [ExampleFeature(k, t, None) for k, t in
                zip(sparse, get_attr(node, "sparse_types", []), strict=True)]
    # the dense values are outputs 3 * num_sparse + i (indices, values, shapes per sparse key)
    shapes = [tuple(d.size for d in s.dim) for s in get_attr(node, "dense_shapes", [])]
    for i, (k, dtype, shape) in enumerate(zip(dense, get_attr(node, "Tdense", []), shapes,
                                              strict=True)):
        limit = (_id_limit(nodes, consumers, (node.name, 3 * len(sparse) + i))
                 if dtype.is_integer else None)
        fixed = None if any(d < 0 for d in shape) else shape
        features.append(ExampleFeature(k, dtype, fixed, *(limit or (None, ""))))
    features += [ExampleFeature(k, t, None) for k, t in zip(ragged, ragged_types, strict=True)]
    return tuple(features)


def serialized_examples(features: tuple[ExampleFeature, ...], shape: tuple[int, ...],
                        rng: np.random.Generator, int_range: tuple[int, int] | None = None
                        ) -> np.ndarray:
    """``shape`` serialized tf.train.Example protos holding every feature: floats N(0,1),
    integers within ``int_range`` if given, else the feature's id range, else 0..9, words for
    bytes; a sparse or variable-length feature gets one to three values."""
    def one() -> bytes:
        values = {}
        for f in features:
            count = int(np.prod(f.shape)) if f.shape is not None else int(rng.integers(1, 4))
            if f.dtype.is_floating:
                values[f.key] = tf.train.Feature(float_list=tf.train.FloatList(
                    value=rng.standard_normal(count).tolist()))
            elif f.dtype.is_integer:
                low, high = int_range or f.int_range or DEFAULT_INT_RANGE
                values[f.key] = tf.train.Feature(int64_list=tf.train.Int64List(
                    value=rng.integers(low, high, count).tolist()))
            else:
                values[f.key] = tf.train.Feature(bytes_list=tf.train.BytesList(
                    value=[_WORDS[i] for i in rng.integers(0, len(_WORDS), count)]))
        return tf.train.Example(features=tf.train.Features(feature=values)).SerializeToString()

    out = np.empty(shape, dtype=object)
    for index in np.ndindex(*shape):
        out[index] = one()
    return out


def describe_features(features: tuple[ExampleFeature, ...]) -> str:
    """``serialized tf.train.Example: age int64, x float32[4], cat int64 in [0, 10)``."""
    parts = []
    for f in features:
        shape = "" if f.shape in (None, ()) else f"[{', '.join(map(str, f.shape))}]"
        ids = f" in [{f.int_range[0]}, {f.int_range[1]}) ({f.why})" if f.int_range else ""
        parts.append(f"{f.key} {f.dtype.name}{shape}{' (var-len)' if f.shape is None else ''}"
                     f"{ids}")
    return "serialized tf.train.Example: " + ", ".join(parts)


def _is_mask_threshold(value) -> bool:
    """A threshold between 0 and 1 (Keras compares a mask with Cast(0.5) -> 0)."""
    return value is not None and value.size == 1 and 0.0 <= float(value.reshape(())) <= 1.0


def resolve_shape(key: str, info: TensorInfo, batch_size: int,
                  shapes: dict[str, tuple[int, ...]]) -> tuple[tuple[int, ...], str]:
    """The shape to generate, and what was assumed for unknown dimensions ("" if nothing)."""
    hint = f"give it with --input-shape {key}=D1,D2,..."
    if key in shapes:
        shape = shapes[key]
        if info.shape is not None:
            if len(shape) != len(info.shape):
                raise TfoptError(f"input {key!r}: --input-shape has rank {len(shape)}, the model "
                                 f"expects {info.describe()}")
            for got, want in zip(shape, info.shape, strict=True):
                if want is not None and got != want:
                    raise TfoptError(f"input {key!r}: --input-shape {shape} does not fit "
                                     f"{info.describe()}")
        return shape, ""
    if info.shape is None:
        raise TfoptError(f"input {key!r} has unknown rank; {hint}")
    dims = list(info.shape)
    if dims and dims[0] is None:
        dims[0] = batch_size
    assumed = ""
    if any(d is None for d in dims):
        image_like = (len(dims) == 4 and (info.dtype.is_floating or info.dtype == tf.uint8)
                      and dims[-1] is not None and 1 <= dims[-1] <= 4)
        default = SPATIAL_DEFAULT if image_like else SEQUENCE_DEFAULT
        assumed = (f"unknown {'spatial' if image_like else 'non-batch'} dims set to {default}")
        dims = [default if d is None else d for d in dims]
    return tuple(dims), assumed


def make_inputs(specs: dict[str, TensorInfo], batch_size: int = 1,
                shapes: dict[str, tuple[int, ...]] | None = None,
                int_range: tuple[int, int] | None = None, seed: int = 0,
                hints: dict[str, InputHint] | None = None,
                notes: list[str] | None = None) -> dict[str, np.ndarray]:
    """Random inputs that fit the signature: floats N(0,1), uint8 images, integer ids within
    ``int_range`` if given, else within what ``hints`` derived from the graph, else 0..9.
    What was assumed is appended to ``notes``, one phrase per input."""
    rng = np.random.default_rng(seed)
    shapes = shapes or {}
    hints = hints or {}
    check_shape_names(shapes, specs)
    feeds: dict[str, np.ndarray] = {}
    for key, info in specs.items():
        shape, assumed = resolve_shape(key, info, batch_size, shapes)
        dtype = info.dtype
        itemsize = 16 if dtype == tf.string else np.dtype(dtype.as_numpy_dtype).itemsize
        size = int(np.prod(shape, dtype=object)) * itemsize
        if size > MAX_INPUT_BYTES:
            raise TfoptError(f"input {key!r}: generating {info.describe()} as "
                             f"{list(shape)} would take {size / 2**30:,.1f} GiB; give a "
                             f"smaller shape with --input-shape {key}=D1,D2,... or real "
                             "samples with --inputs-file")
        what = [f"{key} {dtype.name}[{', '.join(map(str, shape))}]"]
        if dtype.is_floating:
            feeds[key] = rng.standard_normal(shape).astype(dtype.as_numpy_dtype)
        elif dtype == tf.uint8:
            feeds[key] = rng.integers(0, 256, shape, dtype=np.uint8)
        elif dtype.is_integer:
            hint = hints.get(key)
            low, high = int_range or (hint.int_range if hint else None) or DEFAULT_INT_RANGE
            feeds[key] = rng.integers(low, high, shape).astype(dtype.as_numpy_dtype)
            source = ("--int-range" if int_range else hint.why if hint else "default")
            what.append(f"in [{low}, {high}) ({source})")
        elif dtype == tf.bool:
            feeds[key] = rng.integers(0, 2, shape).astype(bool)
        elif dtype == tf.string and hints.get(key) and hints[key].features:
            features = hints[key].features
            feeds[key] = serialized_examples(features, shape, rng, int_range)
            what.append(f"({describe_features(features)})")
        elif dtype == tf.string and hints.get(key) and hints[key].image_format:
            image_format = hints[key].image_format
            feeds[key] = encoded_images(image_format, shape, rng)
            what.append(f"({image_format.upper()} images {IMAGE_SIDE}x{IMAGE_SIDE}, random "
                        "pixels)")
        elif dtype == tf.string:
            words = np.array(_WORDS, dtype=object)
            feeds[key] = words[rng.integers(0, len(words), shape)]
        else:
            raise TfoptError(f"input {key!r}: cannot generate {dtype.name} values; give real "
                             "inputs with --inputs-file inputs.npz")
        if assumed:
            what.append(f"({assumed})")
        if notes is not None:
            notes.append(" ".join(what))
    return feeds


def load_inputs(path: str, specs: dict[str, TensorInfo],
                known: set[str] | None = None) -> dict[str, np.ndarray]:
    """Samples from an .npz keyed by input name, checked against the declared inputs
    (:func:`tfopt.verify.user_files.read_samples`)."""
    from tfopt.verify.user_files import read_samples

    return read_samples(path, specs, known=known)


def model_feeds(model: LoadedModel, inputs_file: str | None,
                shapes: dict[str, tuple[int, ...]], batch_size: int,
                int_range: tuple[int, int] | None) -> dict[str, dict[str, np.ndarray]]:
    """Verification inputs per signature: from ``inputs_file``, or generated to be valid for
    the graph (see :func:`input_hints`); signatures over one graph share theirs. What was
    assumed is added to ``model.notes`` in one line."""
    if not inputs_file:
        check_shape_names(shapes, {k for s in model.signatures.values() for k in s.inputs})
    feeds: dict[str, dict[str, np.ndarray]] = {}
    described: dict[str, str] = {}
    known = {k for s in model.signatures.values() for k in s.inputs}
    for key, sig in model.signatures.items():
        if sig.same_as in feeds:
            feeds[key] = feeds[sig.same_as]
        elif inputs_file:
            feeds[key] = load_inputs(inputs_file, sig.inputs, known)
        else:
            relevant = {k: v for k, v in shapes.items() if k in sig.inputs}
            notes: list[str] = []
            feeds[key] = make_inputs(sig.inputs, batch_size, relevant, int_range,
                                     hints=input_hints(sig), notes=notes)
            for note in notes:
                described.setdefault(note.split(" ", 1)[0], note)
    if described:
        model.notes.append("verification inputs: " + "; ".join(described.values()))
    return feeds


def load_labels(path: str, feeds: dict[str, dict[str, np.ndarray]],
                outputs: dict[str, TensorInfo] | None = None) -> np.ndarray:
    """True classes (``.npy``, one integer per sample of the inputs file), within the class
    count of each output that declares class scores (``[samples, classes]``, float)."""
    from tfopt.verify.user_files import class_counts, read_labels

    samples = {len(v) for f in feeds.values() for v in f.values() if np.ndim(v)}
    return read_labels(path, max(samples) if samples else None, class_counts(outputs or {}))
