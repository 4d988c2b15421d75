"""Run GPU-era NCHW convolution graphs in NHWC, the layout every CPU kernel has.

A TF1 model trained and frozen for GPUs in ``data_format="NCHW"`` runs on CPU only with
oneDNN: the runtime without it has no NCHW pooling, batch norm or convolution ("Default
MaxPoolingOp only supports NHWC on device type CPU"). Each NCHW op is switched to NHWC between
a pair of transposes (its strides, kernel sizes, dilations and explicit paddings permuted)::

    x ─► Conv2D(NCHW) ─►   =>   x ─► Transpose(0,2,3,1) ─► Conv2D(NHWC) ─► Transpose(0,3,1,2) ─►

then transposes move down through element-wise ops whose every data operand arrives through
the same transpose (Relu, a residual Add) or is a constant (transposed alike: an unfused
batch norm's ``[C, 1, 1]`` scale), and a transpose meeting its inverse
cancels. What is left is one transpose at the input and one before the first op that needs
NCHW (a Mean over [2, 3], a Reshape): the convolutions, batch norms (which then fold) and
pooling all run in NHWC.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfopt.graph.names import InputRef
from tfopt.graph.nodes import get_attr, make_node, set_attr
from tfopt.graph.ops import BINARY_ELEMENTWISE, UNARY_ELEMENTWISE
from tfopt.graph.shapes import StaticInfo
from tfopt.graph.view import GraphView
from tfopt.passes.base import GraphPass, PassContext, count_note, is_float32

TO_NHWC, TO_NCHW = (0, 2, 3, 1), (0, 3, 1, 2)
# Ops with a data_format attribute whose output 0 and data input 0 are feature maps.
_LAYOUT_OPS = {"Conv2D", "DepthwiseConv2dNative", "BiasAdd", "FusedBatchNorm",
               "FusedBatchNormV2", "FusedBatchNormV3", "MaxPool", "AvgPool"}
# 4-element NCHW attributes that become NHWC ones.
_PER_DIM_ATTRS = ("strides", "ksize", "dilations")
# Element-wise: a transpose on every data operand may move to the output instead.
_ELEMENTWISE = UNARY_ELEMENTWISE | BINARY_ELEMENTWISE
_SWEEPS = 64


class NchwToNhwc(GraphPass):

    def apply(self, view: GraphView, ctx: PassContext) -> list[str]:
        nchw = [node for node in view if node.op in _LAYOUT_OPS
                and not view.keeps(node.name) and is_float32(node)
                and get_attr(node, "data_format", "NHWC") == "NCHW"]
        if nchw:  # only 4-D feature maps (BiasAdd also takes NCHW for other ranks)
            info = StaticInfo(view.to_graph_def())
            nchw = [n for n in nchw if info.rank(str(view.data_inputs(n)[0])) == 4]
        for node in nchw:
            _switch(view, node)
        moved = cancelled = 0
        for _ in range(_SWEEPS):  # each sweep moves a transpose one op further down
            before = moved + cancelled
            for node in list(view):
                if node.name not in view or not view.consumers(node.name):
                    continue  # dead nodes are strip_unused's
                if node.op == "Transpose" and _cancel(view, node):
                    cancelled += 1
                elif node.op in _ELEMENTWISE and not view.keeps(node.name):
                    moved += _sink(view, node)
            if moved + cancelled == before:
                break
        return (count_note(len(nchw), "NCHW ops switched to NHWC")
                + count_note(moved, "transposes moved below element-wise ops")
                + count_note(cancelled, "transpose pairs cancelled"))


def _perm_of(view: GraphView, node) -> tuple[int, ...] | None:
    if node is None or node.op != "Transpose":
        return None
    perm = view.const_input(node, 1)
    return None if perm is None else tuple(int(p) for p in perm.reshape(-1))


def _transpose(view: GraphView, name: str, source: str, perm: tuple[int, ...], dtype,
               device: str) -> str:
    perm_name = view.add_const(f"{name}/perm", np.array(perm, np.int32), device)
    view.add(make_node(name, "Transpose", [source, perm_name], device, T=dtype,
                       Tperm=tf.int32))
    return name


def _transpose_output(view: GraphView, node, suffix: str, perm: tuple[int, ...]) -> None:
    """Readers of ``node``'s output 0 read it through a transpose by ``perm`` instead."""
    name = view.unique_name(f"{node.name}/{suffix}")
    view.replace_uses(InputRef(node.name), name, keep_controls=False)
    _transpose(view, name, node.name, perm, get_attr(node, "T"), node.device)


def _switch(view: GraphView, node) -> None:
    """``node`` computes in NHWC between a transpose of its input and one of its output 0."""
    _transpose_output(view, node, "to_nchw", TO_NCHW)
    data = view.data_inputs(node)[0]
    view.set_input(node, 0, _transpose(view, view.unique_name(f"{node.name}/to_nhwc"), str(data),
                                       TO_NHWC, get_attr(node, "T"), node.device))
    set_attr(node, "data_format", "NHWC")
    for key in _PER_DIM_ATTRS:
        values = get_attr(node, key)
        if values is not None and len(values) == 4:
            set_attr(node, key, [int(values[i]) for i in TO_NHWC])
    pads = get_attr(node, "explicit_paddings")
    if pads is not None and len(pads) == 8:
        pairs = [pads[2 * i:2 * i + 2] for i in range(4)]
        set_attr(node, "explicit_paddings", [int(p) for i in TO_NHWC for p in pairs[i]])


def _sink(view: GraphView, node) -> int:
    """Element-wise ``node`` whose data operands all come through the same layout transpose
    (or are constants, transposed alike: a ``[C, 1, 1]`` channel scale becomes
    ``[1, 1, 1, C]``) reads the untransposed tensors; the transpose follows it."""
    refs = view.data_inputs(node)
    perm = None
    sources: list[str | np.ndarray] = []
    for idx, ref in enumerate(refs):
        value = view.const_input(node, idx)
        if value is not None and value.ndim <= 4:
            sources.append(value if value.ndim else str(ref))
            continue
        this = _perm_of(view, view.nodes.get(ref.node)) if ref.port == 0 else None
        if this not in (TO_NHWC, TO_NCHW) or (perm is not None and this != perm):
            return 0
        perm = this
        sources.append(str(view.data_inputs(view.nodes[ref.node])[0]))
    if perm is None or view.control_inputs(node):
        return 0
    _transpose_output(view, node, "transposed", perm)
    undo = np.argsort(perm)
    for idx, source in enumerate(sources):
        if isinstance(source, np.ndarray):  # broadcast as 4-D, laid out like the operands now
            value = source.reshape((1,) * (4 - source.ndim) + source.shape).transpose(undo)
            source = view.add_const(f"{node.name}/operand_{idx}", value, node.device)
        view.set_input(node, idx, source)
    return 1


def _cancel(view: GraphView, node) -> bool:
    """``Transpose(Transpose(x, p), q)`` with ``q`` undoing ``p``: readers read ``x``."""
    inner = view.input_node(node, 0)
    p, q = _perm_of(view, inner), _perm_of(view, node)
    if p is None or q is None or len(p) != len(q) or view.keeps(node.name):
        return False
    if [p[i] for i in q] != list(range(len(p))):
        return False
    view.bypass(node, [view.data_inputs(inner)[0]])
    return True
