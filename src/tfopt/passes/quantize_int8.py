"""int8: static post-training quantization of convolutions and matmuls, for oneDNN's kernels.

With ``--precision int8`` and the activation ranges calibrated on the user's samples
(:mod:`tfopt.optimizer.calibrate`, given as ``ranges``), each chain ::

    x ─► Conv2D|DepthwiseConv2dNative(W) ─► [BiasAdd(b)] ─► [Add(s) ─► Relu | Relu|Relu6] ─► y

becomes ::

    x ─► QuantizeV2(range x) ─► _FusedQuantized*Conv2D[BiasAdd, (Sum,) (Relu,) Requantize]
         ─► Dequantize ─► y     (W: int8, symmetric per output channel; b: float; the
                                 residual s in quint8, as the op before left it)

and ``MatMul(W) [+ BiasAdd] [+ Relu]`` becomes ``QuantizeV2 -> _QuantizedMatMul[BiasAdd, (Relu,)
Dequantize]``. A Dequantize read by a QuantizeV2 of the same range and type (consecutive
convolutions) is cancelled, so int8 flows from one convolution into the next. Activations are
unsigned (quint8) where the calibrated range has no negatives, else signed and symmetric; a
Relu6 is the Relu with its output range clipped at 6 (requantization saturates there).

Emits only the kernels and attribute forms :mod:`tfopt.graph.kernels` found to run (probed);
what stays in float32 is listed with its reason in the pass's notes (``keep_float`` names
ops returned to float32 to meet the accuracy budget: :mod:`tfopt.optimizer.sensitivity`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from tensorflow.python.framework import dtypes

from tfopt.graph.names import InputRef
from tfopt.graph.nodes import get_attr
from tfopt.graph.quantized import (
    CONV_OPS,
    MATMUL_OPS,
    QUANTIZED_OPS,
    Range,
    dequantize,
    fused_ops_of,
    quantize,
    quantized_conv,
    quantized_matmul,
    quantized_weights,
)
from tfopt.graph.shapes import StaticInfo
from tfopt.graph.view import GraphView, Step
from tfopt.passes.base import GraphPass, PassContext

RELUS = ("Relu", "Relu6")


@dataclass
class _Chain:
    """One matched op chain: the compute op, its optional BiasAdd, residual add (with the
    tensor it adds) and activation."""

    op: object
    bias: object | None
    act: object | None
    add: object | None = None
    summand: str | None = None

    @property
    def last(self):
        return self.act or self.add or self.bias or self.op


class QuantizeInt8(GraphPass):
    """``ranges``: calibrated value ranges of tensors ("node:port" -> Range); ``keep_float``:
    compute ops left in float32 to meet the accuracy budget (optimizer.sensitivity);
    ``quantize_isolated``: also ops int8 cannot pay for (isolated and light: the sensitivity
    measurement quantizes one op at a time, each isolated by construction)."""

    def __init__(self, ranges: Mapping[str, Range] | None = None,
                 keep_float: frozenset[str] = frozenset(), quantize_isolated: bool = False):
        self.ranges, self.keep_float = ranges or {}, frozenset(keep_float)
        self.quantize_isolated = quantize_isolated

    def apply(self, view: GraphView, ctx: PassContext) -> list[str]:
        if ctx.precision != "int8" or not self.ranges:
            return []
        graph = view.to_graph_def()
        info = StaticInfo(graph)
        before = GraphView(graph, view.weights, view.kept)  # the float graph: residual guards
        done: Counter[str] = Counter()
        kept: Counter[str] = Counter()
        quantized_inputs: dict[tuple[str, str], tuple[str, str, str]] = {}
        # A rewritten chain's readers read its Dequantize: ranges stay keyed by the tensor
        # calibration saw, so the Dequantize output is looked up under that name.
        was: dict[str, str] = {}
        light = (set() if self.quantize_isolated
                 else _isolated_and_light(view, self, (info, before)))
        for node in list(view):
            if node.name not in view or node.op not in QUANTIZED_OPS:
                continue
            if node.name in light:
                kept[f"{node.op} (isolated and light: converting in and out costs more than "
                     "int8 saves)"] += 1
                continue
            why = self._quantize(view, node, ctx, (info, before), quantized_inputs, was)
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

    def _quantize(self, view: GraphView, node, ctx: PassContext,
                  original: tuple[StaticInfo, GraphView], quantized_inputs: dict,
                  was: dict[str, str]) -> str | None:
        """Rewrite ``node``'s chain in int8; returns why not (None: done)."""
        if node.name in self.keep_float:
            return "accuracy budget"
        if get_attr(node, "T") != dtypes.float32:
            return "not float32"
        weights = view.const_input(node, 1)
        if weights is None:
            return "weights not constant"
        chain = _match(view, node, self.ranges, original, was)
        if view.keeps(chain.last.name):
            return "signature output"
        x = view.data_inputs(node)[0].tensor
        y = f"{chain.last.name}:0"
        x_range, y_range = self.ranges.get(was.get(x, x)), self.ranges.get(y)
        if x_range is None or y_range is None:
            return "no calibrated range"
        if node.op in MATMUL_OPS:
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
        in_type = x_range.quantized()[0]
        kernel = QUANTIZED_OPS[node.op]
        fused = fused_ops_of(node.op, chain.act is not None, chain.add is not None)
        if ctx.kernels is None or not ctx.kernels.supports(kernel, fused, in_type.name):
            return f"no {kernel}[{','.join(fused)}] for {in_type.name} (probed)"
        q_in = _quantize_input(view, x, x_range, quantized_inputs)
        if node.op in CONV_OPS:
            summand = (None if chain.summand is None else
                       _summand(view, chain.summand, self.ranges[was.get(chain.summand,
                                                                       chain.summand)],
                                quantized_inputs))
            out = _conv(view, node, chain, weights, bias, q_in, in_type,
                        y_range.quantized(relu6), summand)
        else:
            out = _matmul(view, node, chain, weights, bias, q_in, in_type)
        view.replace_uses(y, out)
        was[out] = y
        consts = [view.input_node(node, 1)] + ([view.input_node(chain.bias, 1)]
                                               if chain.bias is not None else [])
        view.remove([n.name for n in (chain.act, chain.add, chain.bias, node) if n is not None])
        # the float32 weights and bias, unless something else reads them (never kept twice)
        view.remove([c.name for c in consts if not view.consumers(c.name)])
        return None


# An op whose int8 form would need a QuantizeV2 in front and (a convolution) a Dequantize
# behind, with no int8 neighbour either side, stays float32 unless it does at least this many
# multiply-adds per element those conversions touch (input + output elements): converting
# costs a pass over each, int8 saves on the multiply-adds. EfficientNet-B0 with its
# depthwise 3x3s (9 per output, ~4.5 per element touched) between float swishes in int8 ran
# 0.74x of float32 at batch 1, with this rule 0.97x [0.95-1.06] (20 of its 81 convolutions
# int8); a per-output rule (>= 256) gave 0.94x but sent ResNet's stem (7x7x3: 147 per output,
# ~124 per element touched) to float32 (2.40x -> 1.98x over float32).
# (A matmul dequantizes inside its kernel: only its input counts.)
MIN_ISOLATED_INTENSITY = 100


def _intensity(node, weights: np.ndarray, info: StaticInfo, x: str) -> float:
    """Multiply-adds per element converted: output elements x multiply-adds per output,
    over input + output elements (static shapes; batch cancels). Unknown shapes: per
    output."""
    if node.op == "DepthwiseConv2dNative":
        per_output = int(np.prod(weights.shape[:2]))
    elif node.op in MATMUL_OPS:
        per_output = int(weights.shape[1 if get_attr(node, "transpose_b", False) else 0])
    else:
        per_output = int(np.prod(weights.shape[:3]))
    shapes = [info.shape(t) for t in (x, f"{node.name}:0")]
    if any(s is None or s.rank is None or None in s.as_list()[1:] for s in shapes):
        return float(per_output)
    n_in, n_out = (int(np.prod(s.as_list()[1:])) for s in shapes)
    touched = n_in + (n_out if node.op in CONV_OPS else 0)
    return per_output * n_out / max(touched, 1)


def _isolated_and_light(view: GraphView, settings: QuantizeInt8,
                        original: tuple[StaticInfo, GraphView]) -> set[str]:
    """Ops left in float32 because int8 cannot pay for them: no int8 producer in front, no
    int8 reader behind (among the ops that will be int8), and few multiply-adds for the
    conversions (:data:`MIN_ISOLATED_INTENSITY`). Dropping one can isolate a neighbour:
    repeated to a fixed point."""
    info = original[0]
    chains, intensity = {}, {}
    for node in view:
        weights = view.const_input(node, 1) if node.op in QUANTIZED_OPS else None
        if weights is not None and node.name not in settings.keep_float:
            chains[node.name] = _match(view, node, settings.ranges, original, {})
            intensity[node.name] = _intensity(node, weights, info,
                                              view.data_inputs(node)[0].tensor)
    light: set[str] = set()
    while True:
        active = {n: c for n, c in chains.items() if n not in light}
        # int8 tensors: what a convolution leaves before its Dequantize (a matmul's is float)
        ends = {f"{c.last.name}:0" for c in active.values() if c.op.op in CONV_OPS}
        read = {_original(view, c.op, {}) for c in active.values()} | {
            c.summand for c in active.values() if c.summand}

        drop = {n for n, c in active.items() if intensity[n] < MIN_ISOLATED_INTENSITY
                and _isolated(view, c, ends, read)}
        if not drop:
            return light
        light |= drop


def _isolated(view: GraphView, chain: _Chain, ends: set[str], read: set[str]) -> bool:
    """No int8 tensor in front of ``chain`` (``ends``), and (a convolution) no int8 reader
    of its output behind it (``read``)."""
    needs_dequantize = chain.op.op in CONV_OPS and f"{chain.last.name}:0" not in read
    return _original(view, chain.op, {}) not in ends and (
        needs_dequantize or chain.op.op in MATMUL_OPS)


def candidates(graph_def) -> list[str]:
    """Names of the ops this pass may quantize (float32 compute ops with constant weights)."""
    view = GraphView(graph_def)
    return [n.name for n in view if n.op in QUANTIZED_OPS
            and get_attr(n, "T") == dtypes.float32 and view.const_input(n, 1) is not None]


def _match(view: GraphView, node, ranges: Mapping[str, Range],
           original: tuple[StaticInfo, GraphView], was: dict[str, str]) -> _Chain:
    """::

        op ─► [BiasAdd] ─► [Add|AddV2(·, summand)] ─► [Relu|Relu6]

    each the sole reader of the one before. The residual add only after a Conv2D with its
    BiasAdd, followed by Relu, with a summand of the conv output's full static shape and an
    unsigned calibrated range (the one int8 sum form the kernel computes right), which no
    op reads after the add (the kernel accumulates into the summand's buffer: a later reader,
    or the conv itself reading it as its input, crashed it); otherwise the chain ends at the
    BiasAdd."""
    info, before = original
    def first_input(n, prev) -> bool:
        return view.data_inputs(n)[0].node == prev.name

    def residual(n, prev) -> bool:
        refs = view.data_inputs(n)
        return len(refs) == 2 and sum(r.node == prev.name for r in refs) == 1

    steps = [Step("bias", ("BiasAdd",), optional=True, where=first_input),
             Step("add", ("Add", "AddV2"), optional=True, where=residual),
             Step("act", RELUS, optional=True)]
    found = dict(view.match_chain(node, steps))
    bias, add, act = found.get("bias"), found.get("add"), found.get("act")
    if add is None:
        return _Chain(node, bias, act)
    summand = next(r.tensor for r in view.data_inputs(add) if r.node != bias.name) if bias \
        else None
    rng = ranges.get(was.get(summand, summand)) if summand else None
    ours, theirs = info.shape(f"{node.name}:0"), info.shape(was.get(summand, summand) or "")
    if (node.op != "Conv2D" or bias is None or act is None or act.op != "Relu"
            or rng is None or not rng.unsigned or ours is None or theirs is None
            or ours.rank != 4 or ours.as_list() != theirs.as_list()
            or None in ours.as_list()[1:]
            or _original(view, node, was) == was.get(summand, summand)
            or not _read_only_before(before, was.get(summand, summand), add.name)):
        return _Chain(node, bias, None)
    return _Chain(node, bias, act, add, summand)


def _original(view: GraphView, node, was: dict[str, str]) -> str:
    """The tensor ``node`` reads as its input, by the name calibration knew it."""
    x = view.data_inputs(node)[0].tensor
    return was.get(x, x)


def _read_only_before(view: GraphView, tensor: str, add: str) -> bool:
    """Every reader of ``tensor`` other than ``add`` runs before it (is one of its
    ancestors), so nothing reads the tensor once the add has consumed it."""
    ref = InputRef.parse(tensor)
    readers = {c.name for c, r in view.consumers(ref.node) if r.port == ref.port or r.control}
    readers.discard(add)
    if not readers:
        return True
    seen, stack = set(), [add]
    while stack and not readers <= seen:
        for text in view.node(stack.pop()).input:
            name = InputRef.parse(text).node
            if name not in seen and name in view:
                seen.add(name)
                stack.append(name)
    return readers <= seen


def _summand(view: GraphView, tensor: str, rng: Range, cache: dict) -> tuple[str, str, str]:
    """A residual operand in quint8: the int8 output behind our own Dequantize when it is one
    (no requantization), else a QuantizeV2 at its calibrated range."""
    src = view.node(tensor)
    if src.op == "Dequantize" and src.attr["T"].type == dtypes.quint8.as_datatype_enum:
        return tuple(src.input[:3])
    return _quantize_input(view, tensor, rng, cache)


def _quantize_input(view: GraphView, x: str, rng: Range, cache: dict) -> tuple[str, str, str]:
    """A QuantizeV2 of tensor ``x`` (one per tensor and form): its three outputs."""
    dtype, low, high = rng.quantized()
    key = (x, dtype.name)
    if key not in cache:
        base = InputRef.parse(x).node
        name = view.unique_name(f"{base}/quantize")
        view.add(quantize(name, x, view.add_const(f"{name}/min", np.float32(low)),
                          view.add_const(f"{name}/max", np.float32(high)), dtype))
        cache[key] = (f"{name}:0", f"{name}:1", f"{name}:2")
    return cache[key]


def _conv(view: GraphView, node, chain: _Chain, weights: np.ndarray, bias: np.ndarray,
          q_in: tuple[str, str, str], in_type, out: tuple[dtypes.DType, float, float],
          summand: tuple[str, str, str] | None = None) -> str:
    """The quantized convolution with requantized output, then its Dequantize."""
    if node.op == "DepthwiseConv2dNative":  # [h, w, in, mult]: per output channel in*mult
        h, w, c, m = weights.shape
        qw, bound = quantized_weights(weights.reshape(h, w, c * m, 1), 2)
        qw = qw.reshape(h, w, c, m)
    else:
        qw, bound = quantized_weights(weights, weights.ndim - 1)
    out_type, low, high = out
    name = view.unique_name(f"{node.name}/int8")
    view.add(quantized_conv(
        name, node.op,
        [q_in[0], view.add_const(f"{name}/filter", qw, dtype=dtypes.qint8),
         view.add_const(f"{name}/bias", bias.astype(np.float32)), q_in[1], q_in[2],
         view.add_const(f"{name}/min_filter", -bound), view.add_const(f"{name}/max_filter", bound),
         view.add_const(f"{name}/min_output", np.float32(low)),
         view.add_const(f"{name}/max_output", np.float32(high))],
        in_type, out_type, chain.act is not None, get_attr(node, "strides"),
        get_attr(node, "padding"), get_attr(node, "dilations", [1, 1, 1, 1]),
        node.attr.get("explicit_paddings"), node.device, summand))
    dq = view.add(dequantize(view.unique_name(f"{node.name}/dequantize"), name, out_type,
                             node.device))
    return f"{dq.name}:0"


def _matmul(view: GraphView, node, chain: _Chain, weights: np.ndarray, bias: np.ndarray,
            q_in: tuple[str, str, str], in_type) -> str:
    """The quantized matmul with its output dequantized inside the kernel (float out)."""
    qw, bound = quantized_weights(weights, 1)
    name = view.unique_name(f"{node.name}/int8")
    view.add(quantized_matmul(
        name, [q_in[0], view.add_const(f"{name}/weights", qw, dtype=dtypes.qint8),
               view.add_const(f"{name}/bias", bias.astype(np.float32)), q_in[1], q_in[2],
               view.add_const(f"{name}/min_weights", -bound),
               view.add_const(f"{name}/max_weights", bound)],
        in_type, chain.act is not None, node.device))
    return f"{name}:0"


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
        if producer.op not in CONV_OPS.values():
            continue
        last = len(view.data_inputs(producer))  # the output range: its last two inputs
        p_lo, p_hi = view.const_input(producer, last - 2), view.const_input(producer, last - 1)
        if lo is None or p_lo is None or not (np.isclose(lo, p_lo) and np.isclose(hi, p_hi)):
            continue
        view.bypass(node, [InputRef.parse(t) for t in src.input[:3]])
        cancelled += 1
    for node in list(view):  # Dequantize nodes no reader needs any more
        if node.op == "Dequantize" and not view.consumers(node.name):
            view.remove([node.name])
    return cancelled
