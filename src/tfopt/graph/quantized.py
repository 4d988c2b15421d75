"""How oneDNN's int8 ops are spelled in a GraphDef: ``QuantizeV2``, ``Dequantize``, and the
quantized convolutions and matmul with their fused post-ops.

Their attributes follow the kernels' registrations (``mkl_nn_ops.cc``): inputs
``x, weights, bias, min_x, max_x, min_w, max_w[, min_out, max_out]``, all on the host,
listed in ``Thost_inputs``; a convolution requantizes its output (``fused_ops`` ending in
``Requantize``, ``out_type`` int8, the output range given) because this TensorFlow's op
registration has no float ``out_type`` for it; the matmul dequantizes inside the kernel
(``Dequantize``, float out). Both :mod:`tfopt.passes.quantize_int8` and the kernel probe
build their nodes here, so the probe tests exactly what the pass emits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tensorflow.core.framework import node_def_pb2
from tensorflow.python.framework import dtypes

from tfopt.graph.nodes import make_node

# The int8 kernels quantize_int8 emits (spelled below): op -> its
# fused_ops forms. The probe runs each for both activation types (the dtype of a Fusion
# here) and checks it against float32.
INT8_FORMS = {
    # Sum: a residual add of an unsigned int8 summand, then Relu (oneDNN's sum post-op; with a
    # signed summand this TensorFlow's kernel answered 23% off, without Relu it failed to run).
    # Nothing else: the kernel's own list (mkl_conv_ops.cc) has no swish, no Relu6, no sum
    # without Relu.
    "_FusedQuantizedConv2D": (("BiasAdd", "Requantize"), ("BiasAdd", "Relu", "Requantize"),
                              ("BiasAdd", "Sum", "Relu", "Requantize")),
    "_FusedQuantizedDepthwiseConv2D": (("BiasAdd", "Requantize"),
                                       ("BiasAdd", "Relu", "Requantize")),
    "_QuantizedMatMul": (("BiasAdd", "Dequantize"), ("BiasAdd", "Relu", "Dequantize")),
}
INT8_DTYPES = ("quint8", "qint8")


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

CONV_OPS = {"Conv2D": "_FusedQuantizedConv2D",
            "DepthwiseConv2dNative": "_FusedQuantizedDepthwiseConv2D"}
MATMUL_OPS = {"MatMul": "_QuantizedMatMul"}
QUANTIZED_OPS = {**CONV_OPS, **MATMUL_OPS}
# Weights: symmetric int8 in [-127, 127] (narrow range, the kernels' own convention: -128 stays
# out so that negation is exact).
WEIGHT_LEVELS = 127.0


def quantized_weights(weights: np.ndarray, channel_axis: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-channel int8 weights and the per-channel bound (``max|W|``, the
    ``max_filter`` input; ``min_filter`` is its negation)."""
    moved = np.moveaxis(weights, channel_axis, -1)
    bound = np.abs(moved).reshape(-1, moved.shape[-1]).max(axis=0).astype(np.float32)
    bound = np.where(bound > 0, bound, np.float32(1.0))
    q = np.clip(np.rint(moved / bound * WEIGHT_LEVELS), -WEIGHT_LEVELS, WEIGHT_LEVELS)
    return np.moveaxis(q.astype(np.int8), -1, channel_axis), bound


def quantize(name: str, x: str, low: str, high: str, dtype: dtypes.DType,
             device: str = "") -> node_def_pb2.NodeDef:
    """``x`` (float) to ``dtype`` over the range held by Consts ``low``/``high`` (SCALED:
    unsigned from 0, signed symmetric), rounding half to even."""
    return make_node(name, "QuantizeV2", [x, low, high], device=device, T=dtype, mode="SCALED",
                     round_mode="HALF_TO_EVEN")


def dequantize(name: str, src: str, dtype: dtypes.DType, device: str = ""
               ) -> node_def_pb2.NodeDef:
    """Outputs 0-2 of ``src`` (values, min, max) back to float32."""
    return make_node(name, "Dequantize", [f"{src}:0", f"{src}:1", f"{src}:2"], device=device,
                     T=dtype, mode="SCALED", dtype=dtypes.float32)


def quantized_conv(name: str, op: str, inputs: list[str], in_type: dtypes.DType,
                   out_type: dtypes.DType, relu: bool, strides, padding: str, dilations,
                   explicit_paddings=None, device: str = "",
                   summand: tuple[str, str, str] | None = None) -> node_def_pb2.NodeDef:
    """The int8 form of ``op`` (Conv2D / DepthwiseConv2dNative, NHWC) with BiasAdd [+ Sum]
    [+ Relu] and requantization to ``out_type``; ``inputs``: the nine listed in the module
    doc; ``summand``: a residual operand in quint8 (tensor, min, max), which the kernel takes
    as ``x, w, bias, summand, min_x, max_x, min_w, max_w, min_summand, max_summand, min_out,
    max_out``."""
    host = [in_type, dtypes.qint8] + [dtypes.float32] * 7
    if summand is not None:
        inputs = [*inputs[:3], summand[0], *inputs[3:7], summand[1], summand[2], *inputs[7:]]
        host = [in_type, dtypes.qint8, dtypes.float32, dtypes.quint8] + [dtypes.float32] * 8
    node = make_node(
        name, CONV_OPS[op], inputs, device=device, Tinput=in_type, Tfilter=dtypes.qint8,
        Tbias=dtypes.float32, Tsummand=dtypes.quint8 if summand is not None else out_type,
        out_type=out_type, strides=strides, padding=padding, data_format="NHWC",
        dilations=dilations, fused_ops=list(fused_ops_of(op, relu, summand is not None)),
        Thost_inputs=host,
        Thost_outputs=[out_type, dtypes.float32, dtypes.float32], Tdevice_inputs=[],
        Tdevice_outputs=[])
    if padding == "EXPLICIT" and explicit_paddings is not None:
        node.attr["explicit_paddings"].CopyFrom(explicit_paddings)
    return node


def quantized_matmul(name: str, inputs: list[str], in_type: dtypes.DType, relu: bool,
                     device: str = "") -> node_def_pb2.NodeDef:
    """``x @ W`` in int8 with BiasAdd [+ Relu], dequantized inside the kernel (float out);
    ``inputs``: the first seven listed in the module doc (``W`` as ``[in, out]``)."""
    return make_node(
        name, "_QuantizedMatMul", inputs, device=device, T1=in_type, T2=dtypes.qint8,
        Tbias=dtypes.float32, Tout=dtypes.float32, U=dtypes.float32, transpose_a=False,
        transpose_b=False, is_weight_const=True, is_bias_const=True,
        fused_ops=list(fused_ops_of("MatMul", relu)),
        input_quant_mode="SCALED", output_quant_mode="SCALED",
        Thost_inputs=[in_type, dtypes.qint8] + [dtypes.float32] * 5,
        Thost_outputs=[dtypes.float32], Tdevice_inputs=[], Tdevice_outputs=[])


def fused_ops_of(op: str, relu: bool, summand: bool = False) -> tuple[str, ...]:
    """The ``fused_ops`` the builders above give the int8 form of ``op`` (one of the kernel
    probe's forms, :data:`INT8_FORMS`)."""
    head = ("BiasAdd",) + (("Sum",) if summand else ()) + (("Relu",) if relu else ())
    return next(f for f in INT8_FORMS[QUANTIZED_OPS[op]] if f[:-1] == head)
