"""int8: static post-training quantization of convolutions and matmuls, for oneDNN's kernels.

With ``--precision int8`` and the activation ranges calibrated on the user's samples
(:mod:`tfopt.optimizer.calibrate`, given as ``ctx.ranges``), each chain ::

    x ─► Conv2D|DepthwiseConv2dNative(W) ─► [BiasAdd(b)] ─► [Relu|Relu6] ─► y

becomes ::

    x ─► QuantizeV2(range x) ─► _FusedQuantized*Conv2D[BiasAdd, (Relu,) Requantize] ─► Dequantize ─► y
                                 W: int8, symmetric per output channel; b: float

and ``MatMul(W) [+ BiasAdd] [+ Relu]`` becomes ``QuantizeV2 -> _QuantizedMatMul[BiasAdd, (Relu,)
Dequantize]``. A Dequantize read by a QuantizeV2 of the same range and type (consecutive
convolutions) is cancelled, so int8 flows from one convolution into the next. Activations are
unsigned (quint8) where the calibrated range has no negatives, else signed and symmetric; a
Relu6 is the Relu with its output range clipped at 6 (requantization saturates there).

Emits only the kernels and attribute forms :mod:`tfopt.graph.kernels` found to run (probed);
what stays in float32 is listed with its reason in the pass's notes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from tensorflow.python.framework import dtypes

from tfopt.graph.view import GraphView, InputRef, Step, get_attr, make_node
from tfopt.passes.base import GraphPass, PassContext

CONVS = {"Conv2D": "_FusedQuantizedConv2D",
         "DepthwiseConv2dNative": "_FusedQuantizedDepthwiseConv2D"}
MATMULS = {"MatMul": "_QuantizedMatMul"}
RELUS = ("Relu", "Relu6")
# Weights of a quantized op: symmetric int8 in [-127, 127] (narrow range: the kernels' own
# convention, which keeps -128 out so that negation is exact).
WEIGHT_LEVELS = 127.0


@dataclass(frozen=True)
class Range:
    """A tensor's calibrated value range."""

    low: float
    high: float

    @property
    def unsigned(self) -> bool:
        return self.low >= 0.0

    def quantized(self, relu6: bool = False) -> tuple[dtypes.DType, float, float]:
        """The int8 form of a tensor with this range: (type, min, max) as QuantizeV2 in SCALED
        mode takes them (unsigned from 0, signed symmetric). Never an empty range."""
        if self.unsigned:
            high = min(self.high, 6.0) if relu6 else self.high
            return dtypes.quint8, 0.0, max(high, 1e-6)
        bound = max(abs(self.low), abs(self.high), 1e-6)
        return dtypes.qint8, -bound, bound


@dataclass
class _Chain:
    """One matched op chain: the compute op, its optional BiasAdd and activation."""

    op: object
    bias: object | None
    act: object | None

    @property
    def last(self):
        return self.act or self.bias or self.op


def quantized_weights(weights: np.ndarray, channel_axis: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-channel int8 weights and the per-channel bound (``max|W|``, the
    ``max_filter`` input; ``min_filter`` is its negation)."""
    moved = np.moveaxis(weights, channel_axis, -1)
    bound = np.abs(moved).reshape(-1, moved.shape[-1]).max(axis=0).astype(np.float32)
    bound = np.where(bound > 0, bound, np.float32(1.0))
    q = np.clip(np.rint(moved / bound * WEIGHT_LEVELS), -WEIGHT_LEVELS, WEIGHT_LEVELS)
    return np.moveaxis(q.astype(np.int8), -1, channel_axis), bound


class QuantizeInt8(GraphPass):

    def apply(self, view: GraphView, ctx: PassContext) -> list[str]:
        if ctx.precision != "int8" or not ctx.ranges:
            return []
        done: Counter[str] = Counter()
        kept: Counter[str] = Counter()
        quantized_inputs: dict[tuple[str, str], tuple[str, str, str]] = {}
        # A rewritten chain's readers read its Dequantize: ranges stay keyed by the tensor
        # calibration saw, so the Dequantize output is looked up under that name.
        was: dict[str, str] = {}
        for node in list(view):
            if node.name not in view or node.op not in CONVS and node.op not in MATMULS:
                continue
            why = self._quantize(view, node, ctx, quantized_inputs, was)
            if why is None:
                done[node.op] += 1
            else:
                kept[f"{node.op} ({why})"] += 1
        cancelled = _cancel_pairs(view)
        notes = [f"{n} {op} to int8" for op, n in sorted(done.items())]
        notes += [f"{n} {what} kept in float32" for what, n in sorted(kept.items())]
        if cancelled:
            notes.append(f"{cancelled} Dequantize -> QuantizeV2 pairs cancelled (int8 flows "
                         "between ops)")
        return notes if done else []

    # --- one op ---------------------------------------------------------------------------

    def _quantize(self, view: GraphView, node, ctx: PassContext, quantized_inputs: dict,
                  was: dict[str, str]) -> str | None:
        """Rewrite ``node``'s chain in int8; returns why not (None: done)."""
        if get_attr(node, "T") != dtypes.float32:
            return "not float32"
        weights = view.const_input(node, 1)
        if weights is None:
            return "weights not constant"
        chain = _match(view, node, ctx)
        if chain.last.name in ctx.protected:
            return "signature output"
        x = view.data_inputs(node)[0].tensor
        y = f"{chain.last.name}:0"
        x_range, y_range = ctx.ranges.get(was.get(x, x)), ctx.ranges.get(y)
        if x_range is None or y_range is None:
            return "no calibrated range"
        if node.op in MATMULS:
            if get_attr(node, "transpose_a", False):
                return "transposed input"
            if get_attr(node, "transpose_b", False):
                weights = weights.T
        elif get_attr(node, "data_format", "NHWC") != "NHWC":
            return "not NHWC"
        bias = (view.const_input(chain.bias, 1) if chain.bias is not None
                else np.zeros(weights.shape[-1] if node.op != "DepthwiseConv2dNative"
                              else weights.shape[2] * weights.shape[3], np.float32))
        if bias is None:
            return "bias not constant"
        relu6 = chain.act is not None and chain.act.op == "Relu6"
        if relu6 and not y_range.unsigned:
            return "Relu6 range"
        q_in = _quantize_input(view, x, x_range, quantized_inputs)
        if node.op in CONVS:
            out = _conv(view, node, chain, weights, bias, q_in, y_range.quantized(relu6))
        else:
            out = _matmul(view, node, chain, weights, bias, q_in)
        view.replace_uses(y, out)
        was[out] = y
        view.remove([n.name for n in (chain.act, chain.bias, node) if n is not None])
        return None


def _match(view: GraphView, node, ctx: PassContext) -> _Chain:
    """::

        op ─► [BiasAdd] ─► [Relu|Relu6]     (each the sole reader of the one before)
    """
    def first_input(n, prev) -> bool:
        return view.data_inputs(n)[0].node == prev.name

    steps = [Step("bias", ("BiasAdd",), optional=True, where=first_input),
             Step("act", RELUS, optional=True)]
    found = dict(view.match_chain(node, steps, ctx.protected))
    return _Chain(node, found.get("bias"), found.get("act"))


def _quantize_input(view: GraphView, x: str, rng: Range, cache: dict) -> tuple[str, str, str]:
    """A QuantizeV2 of tensor ``x`` (one per tensor and form): its three outputs."""
    dtype, low, high = rng.quantized()
    key = (x, dtype.name)
    if key not in cache:
        base = InputRef.parse(x).node
        q = view.add(make_node(
            view.unique_name(f"{base}/quantize"), "QuantizeV2",
            [x, view.add_const(f"{base}/quantize/min", np.float32(low)),
             view.add_const(f"{base}/quantize/max", np.float32(high))],
            T=dtype, mode="SCALED", round_mode="HALF_TO_EVEN"))
        cache[key] = (f"{q.name}:0", f"{q.name}:1", f"{q.name}:2")
    return cache[key]


def _conv(view: GraphView, node, chain: _Chain, weights: np.ndarray, bias: np.ndarray,
          q_in: tuple[str, str, str], out: tuple[dtypes.DType, float, float]) -> str:
    """The quantized convolution with requantized output, then its Dequantize."""
    depthwise = node.op == "DepthwiseConv2dNative"
    if depthwise:  # [h, w, in, mult] -> channels in*mult, quantized per output channel
        h, w, c, m = weights.shape
        qw, bound = quantized_weights(weights.reshape(h, w, c * m, 1), 2)
        qw = qw.reshape(h, w, c, m)
    else:
        qw, bound = quantized_weights(weights, weights.ndim - 1)
    in_type = dtypes.as_dtype(_type_of(view, q_in[0]))
    out_type, low, high = out
    fused = ["BiasAdd"] + (["Relu"] if chain.act is not None else []) + ["Requantize"]
    name = view.unique_name(f"{node.name}/int8")
    q = view.add(make_node(
        name, CONVS[node.op],
        [q_in[0], view.add_const(f"{name}/filter", qw, dtype=dtypes.qint8),
         view.add_const(f"{name}/bias", bias.astype(np.float32)), q_in[1], q_in[2],
         view.add_const(f"{name}/min_filter", -bound), view.add_const(f"{name}/max_filter", bound),
         view.add_const(f"{name}/min_output", np.float32(low)),
         view.add_const(f"{name}/max_output", np.float32(high))],
        device=node.device,
        Tinput=in_type, Tfilter=dtypes.qint8, Tbias=dtypes.float32, Tsummand=out_type,
        out_type=out_type, strides=get_attr(node, "strides"), padding=get_attr(node, "padding"),
        data_format="NHWC", dilations=get_attr(node, "dilations", [1, 1, 1, 1]),
        fused_ops=fused,
        Thost_inputs=[in_type, dtypes.qint8] + [dtypes.float32] * 7,
        Thost_outputs=[out_type, dtypes.float32, dtypes.float32],
        Tdevice_inputs=[], Tdevice_outputs=[]))
    if get_attr(node, "padding") == "EXPLICIT":
        q.attr["explicit_paddings"].CopyFrom(node.attr["explicit_paddings"])
    dq = view.add(make_node(view.unique_name(f"{node.name}/dequantize"), "Dequantize",
                            [f"{name}:0", f"{name}:1", f"{name}:2"], device=node.device,
                            T=out_type, mode="SCALED", dtype=dtypes.float32))
    return f"{dq.name}:0"


def _matmul(view: GraphView, node, chain: _Chain, weights: np.ndarray, bias: np.ndarray,
            q_in: tuple[str, str, str]) -> str:
    """The quantized matmul with its output dequantized inside the kernel (float out)."""
    qw, bound = quantized_weights(weights, 1)
    in_type = dtypes.as_dtype(_type_of(view, q_in[0]))
    fused = ["BiasAdd"] + (["Relu"] if chain.act is not None else []) + ["Dequantize"]
    name = view.unique_name(f"{node.name}/int8")
    view.add(make_node(
        name, MATMULS[node.op],
        [q_in[0], view.add_const(f"{name}/weights", qw, dtype=dtypes.qint8),
         view.add_const(f"{name}/bias", bias.astype(np.float32)), q_in[1], q_in[2],
         view.add_const(f"{name}/min_weights", -bound),
         view.add_const(f"{name}/max_weights", bound)],
        device=node.device,
        T1=in_type, T2=dtypes.qint8, Tbias=dtypes.float32, Tout=dtypes.float32,
        U=dtypes.float32, transpose_a=False, transpose_b=False, is_weight_const=True,
        is_bias_const=True, fused_ops=fused, input_quant_mode="SCALED",
        output_quant_mode="SCALED",
        Thost_inputs=[in_type, dtypes.qint8] + [dtypes.float32] * 5,
        Thost_outputs=[dtypes.float32], Tdevice_inputs=[], Tdevice_outputs=[]))
    return f"{name}:0"


def _type_of(view: GraphView, tensor: str):
    node = view.node(tensor)
    return node.attr["T"].type


def _cancel_pairs(view: GraphView) -> int:
    """``Dequantize(q, lo, hi) -> QuantizeV2(lo, hi)`` of the same type: the QuantizeV2's
    readers read ``q`` (and its range) directly."""
    cancelled = 0
    for node in list(view):
        if node.name not in view or node.op != "QuantizeV2":
            continue
        src = view.input_node(node, 0)
        if src is None or src.op != "Dequantize" or src.attr["T"].type != node.attr["T"].type:
            continue
        producer = view.node(src.input[0])
        lo, hi = view.const_input(node, 1), view.const_input(node, 2)
        p_lo = view.const_input(producer, 7) if producer.op in CONVS.values() else None
        p_hi = view.const_input(producer, 8) if producer.op in CONVS.values() else None
        if lo is None or p_lo is None or not (np.isclose(lo, p_lo) and np.isclose(hi, p_hi)):
            continue
        view.bypass(node, [InputRef.parse(t) for t in src.input[:3]])
        cancelled += 1
    for node in list(view):  # Dequantize nodes no reader needs any more
        if node.op == "Dequantize" and not view.consumers(node.name):
            view.remove([node.name])
    return cancelled
