"""Run the compute-heavy part of the graph in bfloat16, weights stored as bfloat16.

::

    x(f32) ─► Cast(bf16) ─► Conv2D ─► BiasAdd ─► Relu ─► Conv2D ─► ... ─► Cast(f32) ─► Softmax
                            (bf16 weights)  (bf16 bias)          (bf16 weights)

Painting (as TensorFlow's auto_mixed_precision does, with its lists as the starting point and
measured rather than copied): every float32 compute-heavy op (:data:`COMPUTE`: convolutions,
matmuls, einsums) runs in bf16; an element-wise, pooling or layout op (:data:`FOLLOW`) runs in
bf16 when each of its float inputs is already bf16 or a constant, so regions grow forward from
the compute ops and end where a numerically sensitive op (Softmax, Exp, Log, Mean, Sum, Rsqrt,
SquaredDifference, RealDiv: everything not listed) reads them; GELU's Erf and small constant
powers follow, so a GELU stays whole in bf16. Lookups into constant
tables (embeddings, :data:`TABLES`) are painted too: the table is stored in bf16 and the
gather is exact. Casts stand only at region
borders, one per tensor; constants read only by bf16 nodes are converted in place (the model on
disk shrinks), others get a bf16 copy. Signature inputs and outputs and load-time initializers
are never painted, so the signature keeps its dtypes. The logits layer is painted like the
rest: keeping it float32 was measured on the locally trained digits models and changed nothing
(mean probability difference 1.8e-4 vs 1.7e-4 for the CNN, 2.4e-4 vs 2.7e-4 for the
transformer). Only ops the kernel registry runs in bf16 on CPU are painted, and compute ops
only where the kernel probe found their bf16 kernel accurate on every runtime of the target
(oneDNN off's bf16 Einsum and Conv2DBackpropInput are 1e-2..3e-2 relative RMS off a float32
run where one bf16 rounding is 2e-3: they stay float32 in portable graphs). The pass does
nothing unless the context asks for bf16.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow.python.framework import op_def_registry

from tfopt.graph.fusions import REDUCED_OPS
from tfopt.graph.kernels import KernelSupport
from tfopt.graph.names import InputRef
from tfopt.graph.nodes import get_attr, make_node, set_attr, set_const_value
from tfopt.graph.probe import has_cpu_kernel
from tfopt.graph.view import GraphView
from tfopt.graph.walk import topological_order
from tfopt.passes.base import GraphPass, PassContext, count_note

# Run in bf16 wherever they compute in float32 (and the probe found them accurate): where the
# time of a CNN or transformer goes.
COMPUTE = frozenset(REDUCED_OPS)
# Run in bf16 when every float input already is (or is a constant): TF's clear list and the
# benign part of its infer list. Not here, so kept in float32: Softmax, Exp, Log, Mean, Sum,
# Rsqrt, SquaredDifference, RealDiv (reductions and range-sensitive maths).
FOLLOW = frozenset({"BiasAdd", "Add", "AddV2", "Sub", "Mul", "Relu", "Relu6", "Elu",
                    "LeakyRelu", "Selu", "Tanh", "Sigmoid", "MaxPool", "AvgPool", "Reshape",
                    "Transpose", "ConcatV2", "Pad", "Squeeze", "ExpandDims", "Identity",
                    "StridedSlice", "Slice", "Maximum", "Minimum", "Neg", "Tile",
                    "BroadcastTo", "ClipByValue", "Erf", "Erfc", "Pow"})
# GELU is spelled with Erf or Erfc (exact) or Pow(x, 3) (tanh approximation): kept float32,
# they cut a bf16 matmul's GELU into bf16 / Cast / float32 / Cast pieces that the oneDNN runtime cannot
# fuse into the matmul as it does in float32 (BERT bf16: GELU's Mul and Tanh ran on Eigen's
# slow bf16 path, 1.3 ms of 10). Erf and Erfc are bounded; a power is painted only with a constant
# exponent of at most this magnitude (its relative error is the exponent times bf16's).
MAX_BF16_POWER = 3.0
# Lookups into a constant table (embeddings): the table is stored in bf16, halving the model
# on disk (BERT's 31 MB of its 45), and what is gathered joins the bf16 region or is cast at
# its border; the gather itself is exact.
TABLES = frozenset({"GatherV2"})
BF16 = tf.bfloat16


def _type_attr(node) -> str | None:
    """The attribute typing the op's single output ("T"; "Tparams" for a gather), or None
    when the op has several outputs or a list of them."""
    op_def = op_def_registry.get(node.op)
    if (op_def is None or len(op_def.output_arg) != 1 or op_def.output_arg[0].number_attr
            or not op_def.output_arg[0].type_attr):
        return None
    return op_def.output_arg[0].type_attr


def _t_inputs(node) -> list[int] | None:
    """Indices of the node's data inputs typed like its output (None: unknown op)."""
    op_def = op_def_registry.get(node.op)
    attr = _type_attr(node)
    if op_def is None or attr is None:
        return None
    indices, index = [], 0
    for arg in op_def.input_arg:
        count = 1
        if arg.number_attr:
            count = node.attr[arg.number_attr].i
        elif arg.type_list_attr:
            return None
        if arg.type_attr == attr:
            indices.extend(range(index, index + count))
        index += count
    return indices


def _computes_float32(node) -> bool:
    attr = _type_attr(node)
    dtype = get_attr(node, attr) if attr else None
    return dtype is not None and dtype == tf.float32


class ReducedPrecision(GraphPass):

    def apply(self, view: GraphView, ctx: PassContext) -> list[str]:
        if ctx.precision != "bf16":
            return []
        painted = self._paint(view, ctx)
        if not painted:
            return []
        consts, casts = self._rewire(view, painted)
        for name in painted:
            node = view.node(name)
            set_attr(node, _type_attr(node), BF16)
        return (count_note(len(painted), "ops run in bfloat16")
                + count_note(consts, "weights stored as bfloat16")
                + count_note(casts, "casts at region borders"))

    @staticmethod
    def _paint(view: GraphView, ctx: PassContext) -> set[str]:
        painted: set[str] = set()
        # Asked once per op type, not once per node: compute ops whose bf16 kernel is accurate
        # on every runtime the target runs (probed: Eigen's bf16 Einsum is not), element-wise
        # ops with a bf16 kernel.
        support = ctx.kernels or KernelSupport("portable")
        paintable = ({op for op in COMPUTE if support.accurate(op, "bfloat16")}
                     | {op for op in FOLLOW | TABLES if has_cpu_kernel(op, "bfloat16")})
        for node in topological_order(view.graph_def):
            if (view.keeps(node.name) or node.op not in paintable
                    or not _computes_float32(node)):
                continue
            typed = _t_inputs(node)
            if typed is None:
                continue
            refs = view.data_inputs(node)
            sources = [view.node(refs[i].node) for i in typed]
            if node.op in COMPUTE or (node.op in TABLES and sources[0].op == "Const"):
                painted.add(node.name)
                continue
            if node.op == "Pow" and not (
                    sources[1].op == "Const"
                    and np.all(np.abs(view.value(sources[1])) <= MAX_BF16_POWER)):
                continue
            if (any(s.name in painted for s in sources)
                    and all(s.name in painted or s.op == "Const" for s in sources)):
                painted.add(node.name)
        return painted

    @staticmethod
    def _rewire(view: GraphView, painted: set[str]) -> tuple[int, int]:
        """Casts at the borders, bf16 constants; returns (constants converted, casts)."""
        to_bf16: dict[str, str] = {}   # float32 tensor -> its bf16 cast
        to_f32: dict[str, str] = {}    # painted tensor -> its float32 cast
        converted: dict[str, str] = {}  # float32 Const -> its bf16 twin (or itself)
        consts = 0

        def bf16_of(ref: InputRef) -> str:
            nonlocal consts
            source = view.node(ref.node)
            if source.op == "Const":
                if ref.node not in converted:
                    readers = {n.name for n, _ in view.consumers(ref.node)}
                    value = view.value(source).astype(BF16.as_numpy_dtype)
                    if readers <= painted:
                        set_const_value(source, value)
                        converted[ref.node] = ref.node
                    else:
                        converted[ref.node] = view.add_const(f"{ref.node}/bf16", value,
                                                             source.device)
                    consts += 1
                return converted[ref.node]
            if ref.tensor not in to_bf16:
                cast = view.add(make_node(view.unique_name(f"{ref.node}/to_bf16"), "Cast",
                                          [str(ref)], source.device, SrcT=tf.float32,
                                          DstT=BF16, Truncate=False))
                to_bf16[ref.tensor] = cast.name
            return to_bf16[ref.tensor]

        def f32_of(ref: InputRef) -> str:
            if ref.tensor not in to_f32:
                source = view.node(ref.node)
                cast = view.add(make_node(view.unique_name(f"{ref.node}/to_f32"), "Cast",
                                          [str(ref)], source.device, SrcT=BF16,
                                          DstT=tf.float32, Truncate=False))
                to_f32[ref.tensor] = cast.name
            return to_f32[ref.tensor]

        for node in list(view):
            refs = view.data_inputs(node)
            if node.name in painted:
                for i in _t_inputs(node) or []:
                    if refs[i].node not in painted:
                        view.set_input(node, i, bf16_of(refs[i]))
            else:
                for i, ref in enumerate(refs):
                    if ref.node in painted:
                        view.set_input(node, i, f32_of(ref))
        return consts, len(to_bf16) + len(to_f32)
