"""Fold batch normalisation, and any per-channel scale and shift, into conv/matmul weights.

Handled after ``Conv2D``, ``DepthwiseConv2dNative``, ``MatMul`` and ``Conv2DBackpropInput``
(optionally through a ``BiasAdd``/``Add`` of a constant):

- ``FusedBatchNorm``/``V2``/``V3`` with ``is_training=False`` and
  ``BatchNormWithGlobalNormalization`` with constant statistics;
- the decomposed form Keras 3 exports (``x * c1 + c2`` once constant folding has reduced the
  ``Rsqrt(var + eps) * gamma`` arithmetic): ``Mul`` by a per-channel constant, then ``Add``;
- ``Add``/``AddV2`` of a per-channel constant, which becomes (or merges into) a ``BiasAdd``.

``W' = W * scale`` along the output channel and ``b' = b * scale + shift``; the BN node
becomes ``BiasAdd(conv, b')`` under its own name, so downstream names do not change. A fold
happens only where the conv (and its bias) feed nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from tfopt.graph.names import InputRef
from tfopt.graph.nodes import const_shape, get_attr, set_attr, set_const_value
from tfopt.graph.view import GraphView
from tfopt.passes.base import GraphPass, PassContext

BATCH_NORMS = {"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3",
               "BatchNormWithGlobalNormalization"}
# Input order of the statistics, per op: (scale, offset, mean, variance) indices.
BN_INPUTS = {
    "FusedBatchNorm": (1, 2, 3, 4),
    "FusedBatchNormV2": (1, 2, 3, 4),
    "FusedBatchNormV3": (1, 2, 3, 4),
    "BatchNormWithGlobalNormalization": (4, 3, 1, 2),  # t, m, v, beta, gamma
}
# The attribute holding epsilon, per op.
BN_EPSILON = {"BatchNormWithGlobalNormalization": "variance_epsilon"}
ADDS = {"Add", "AddV2", "BiasAdd"}


@dataclass
class LinearProducer:
    """A conv/matmul whose constant weights can absorb a per-channel affine map."""

    op_node: object
    weights: object     # the Const node
    channels: int
    channel_axis: int   # of the op's output
    rank: int           # of the op's output
    bias: object | None  # BiasAdd/Add node with a const vector, between op and the affine map

    def scaled_weights(self, w: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """``w`` (this producer's weights) scaled per output channel."""
        op = self.op_node.op
        if op == "DepthwiseConv2dNative":
            return w * scale.reshape(w.shape[2], w.shape[3])
        if op == "Conv2DBackpropInput":
            return w * scale.reshape(1, 1, -1, 1)
        if op == "MatMul":
            return w * (scale.reshape(-1, 1) if get_attr(self.op_node, "transpose_b") else scale)
        return w * scale  # Conv2D/Conv3D: output channel is the last weight dim


def _out_channels(node, shape: tuple[int, ...]) -> int | None:
    """Output channels of ``node`` from its weights' ``shape``."""
    if node.op in ("Conv2D", "Conv3D"):
        return shape[-1]
    if node.op == "DepthwiseConv2dNative":
        return shape[2] * shape[3]
    if node.op == "Conv2DBackpropInput":
        return shape[2]
    if node.op == "MatMul":
        return shape[0] if get_attr(node, "transpose_b") else shape[1]
    return None


def _weights_index(node) -> int:
    return 1  # Conv2D(input, filter), MatMul(a, b), Conv2DBackpropInput(sizes, filter, grad)


def _channel_layout(node) -> tuple[int, int]:
    """(channel axis, rank) of the op's output."""
    if node.op == "MatMul":
        return 1, 2
    rank = 5 if node.op == "Conv3D" else 4
    fmt = get_attr(node, "data_format", "NHWC")
    return (1 if fmt.startswith("NC") else rank - 1), rank


def find_producer(view: GraphView, ref: InputRef, ctx: PassContext) -> LinearProducer | None:
    """The linear op behind tensor ``ref``, if its weights can be rewritten in place."""
    node = view.nodes.get(ref.node)
    if node is None or ref.port != 0 or view.keeps(node.name):
        return None
    bias = None
    if node.op in ADDS and len(view.data_consumers(node.name)) == 1:
        vec = _add_constant(view, node)
        inner = view.input_node(node, 0)
        if vec is not None and inner is not None and inner.op in LINEAR_OPS:
            bias, node = node, inner
    if node.op not in LINEAR_OPS or view.keeps(node.name):
        return None
    weights = view.input_node(node, _weights_index(node))
    if weights is None or weights.op != "Const":
        return None
    consumers = view.data_consumers(node.name)
    if len(consumers) != 1:
        return None
    channels = _out_channels(node, const_shape(weights))  # the value is read only to rewrite
    if channels is None or get_attr(weights, "dtype") not in NUMPY_FLOATS:
        return None
    axis, rank = _channel_layout(node)
    if bias is not None and _per_channel(_add_constant(view, bias), channels, axis, rank) is None:
        return None
    return LinearProducer(node, weights, channels, axis, rank, bias)


# Weight dtypes NumPy counts as floating (bfloat16 is not one: such weights stay as they are).
NUMPY_FLOATS = (tf.float16, tf.float32, tf.float64)
LINEAR_OPS = {"Conv2D", "Conv3D", "DepthwiseConv2dNative", "MatMul", "Conv2DBackpropInput"}


def _add_constant(view: GraphView, node) -> np.ndarray | None:
    """The constant operand of an Add/BiasAdd whose other operand is input 0."""
    if node.op not in ADDS:
        return None
    return view.const_input(node, 1)


def _per_channel(value: np.ndarray | None, channels: int, axis: int, rank: int
                 ) -> np.ndarray | None:
    """``value`` as a [channels] vector if it broadcasts along the channel axis only."""
    if value is None or value.ndim > rank:
        return None
    if value.size == 1:
        return np.full(channels, value.reshape(()), dtype=value.dtype)
    shape = (1,) * (rank - value.ndim) + value.shape
    if shape[axis] != channels or any(d != 1 for i, d in enumerate(shape) if i != axis):
        return None
    return value.reshape(channels)


class FoldBatchNorm(GraphPass):

    def apply(self, view: GraphView, ctx: PassContext) -> list[str]:
        counts = {"batch norms": 0, "scales": 0, "shifts": 0}
        for node in view:
            if node.name not in view:
                continue
            if node.op in BATCH_NORMS:
                counts["batch norms"] += self._fold_batch_norm(view, node, ctx)
            elif node.op == "Mul":
                counts["scales"] += self._fold_mul(view, node, ctx)
            elif node.op in ("Add", "AddV2", "BiasAdd"):
                counts["shifts"] += self._fold_add(view, node, ctx)
        return [f"{n} {what} folded into weights" for what, n in counts.items() if n]

    # --- the three patterns ----------------------------------------------------------------
    def _fold_batch_norm(self, view: GraphView, node, ctx: PassContext) -> int:
        if get_attr(node, "is_training", False):
            return 0
        if any(ref.port != 0 for _, ref in view.consumers(node.name) if not ref.control):
            return 0  # batch statistics outputs are read: not an inference-only BN
        idx = BN_INPUTS[node.op]
        params = [view.const_input(node, i) for i in idx]
        if any(p is None for p in params):
            return 0
        gamma, beta, mean, var = (p.astype(np.float64) for p in params)
        if node.op == "BatchNormWithGlobalNormalization" and not get_attr(
                node, "scale_after_normalization", True):
            gamma = np.ones_like(gamma)
        if mean.size == 0 or var.size == 0:
            return 0
        eps = get_attr(node, BN_EPSILON.get(node.op, "epsilon"), 1e-3)
        scale = gamma / np.sqrt(var + eps)
        shift = beta - mean * scale
        producer = find_producer(view, view.data_inputs(node)[0], ctx)
        if producer is None or producer.channels != scale.size:
            return 0
        if node.op != "BatchNormWithGlobalNormalization":
            fmt = get_attr(node, "data_format", "NHWC")
            if (1 if fmt.startswith("NC") else producer.rank - 1) != producer.channel_axis:
                return 0
        self._rewrite(view, ctx, node, producer, scale, shift)
        return 1

    def _fold_mul(self, view: GraphView, node, ctx: PassContext) -> int:
        refs = view.data_inputs(node)
        for data_idx, const_idx in ((0, 1), (1, 0)):
            value = view.const_input(node, const_idx)
            if value is None or not np.issubdtype(value.dtype, np.floating):
                continue
            producer = find_producer(view, refs[data_idx], ctx)
            if producer is None:
                continue
            scale = _per_channel(value, producer.channels, producer.channel_axis, producer.rank)
            if scale is None:
                continue
            self._rewrite(view, ctx, node, producer, scale.astype(np.float64),
                          np.zeros(producer.channels))
            return 1
        return 0

    def _fold_add(self, view: GraphView, node, ctx: PassContext) -> int:
        orders = ((0, 1),) if node.op == "BiasAdd" else ((0, 1), (1, 0))
        refs = view.data_inputs(node)
        for data_idx, const_idx in orders:
            value = view.const_input(node, const_idx)
            if value is None or not np.issubdtype(value.dtype, np.floating):
                continue
            producer = find_producer(view, refs[data_idx], ctx)
            if producer is not None:
                return self._fold_shift(view, ctx, node, producer, value)
        return 0

    def _fold_shift(self, view: GraphView, ctx: PassContext, node, producer: LinearProducer,
                    value: np.ndarray) -> int:
        shift = _per_channel(value, producer.channels, producer.channel_axis, producer.rank)
        if shift is None:
            return 0
        if producer.bias is None and node.op == "BiasAdd":
            return 0  # already the canonical form
        self._rewrite(view, ctx, node, producer, np.ones(producer.channels),
                      shift.astype(np.float64))
        return 1

    # --- the one rewrite they share --------------------------------------------------------
    def _rewrite(self, view: GraphView, ctx: PassContext, node, producer: LinearProducer,
                 scale: np.ndarray, shift: np.ndarray) -> None:
        """``node(producer(x)) == x * scale + shift`` per channel: absorb it into the weights."""
        w_node = producer.weights
        w = view.value(w_node)
        if not np.all(scale == 1.0):
            new_w = producer.scaled_weights(w, scale).astype(w.dtype)
            # Shared weights get a copy; a control edge on the const reads no value.
            if len(view.data_consumers(w_node.name)) > 1:
                view.set_input(producer.op_node, _weights_index(producer.op_node),
                               view.add_const(w_node.name + "/folded", new_w, w_node.device))
            else:
                set_const_value(w_node, new_w)
        bias = np.zeros(producer.channels)
        if producer.bias is not None:
            old = _per_channel(_add_constant(view, producer.bias), producer.channels,
                               producer.channel_axis, producer.rank)
            bias = old.astype(np.float64)
        bias = bias * scale + shift
        dtype = w.dtype
        controls = [str(r) for r in view.control_inputs(node)]
        if producer.bias is not None:
            controls += [str(r) for r in view.control_inputs(producer.bias)
                         if str(r) not in controls]
        source = producer.op_node.name
        if producer.bias is not None:
            view.remove([producer.bias.name])
        if np.all(bias == 0) and producer.bias is None and not view.keeps(node.name):
            view.set_inputs(node, [source] + controls)
            view.bypass(node, [InputRef(source)])
            return
        b_const = view.add_const(node.name + "/bias", bias.astype(dtype), node.device)
        fmt = "NCHW" if producer.channel_axis == 1 and producer.rank > 2 else "NHWC"
        view.retype(node, "BiasAdd")
        set_attr(node, "T", _dtype_of(dtype))
        set_attr(node, "data_format", fmt)
        view.set_inputs(node, [source, b_const] + controls)


def _dtype_of(np_dtype):
    return tf.as_dtype(np_dtype)
