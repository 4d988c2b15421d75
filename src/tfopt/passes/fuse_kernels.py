"""Fuse Conv2D/DepthwiseConv2dNative/MatMul + BiasAdd [+ activation] into one kernel call.

Emits ``_FusedConv2D``, ``_FusedDepthwiseConv2dNative`` and ``_FusedMatMul`` — the kernels
Grappler's remapper targets — only for the forms in :data:`tfopt.kernels.FUSION_TABLE` that the
target admits: by default those both CPU runtimes (oneDNN on and off) run, so the model runs
everywhere; with ``--target native`` whatever this runtime runs; none with ``--target generic``.
The fused node takes the name of the last node of the chain, so readers keep their inputs.
"""

from __future__ import annotations

import tensorflow as tf

from tfopt.graph import GraphView, get_attr, set_attr
from tfopt.kernels import ACTIVATIONS
from tfopt.passes.base import GraphPass, PassContext, count_note
from tfopt.shapes import StaticInfo

FUSED_OP = {"Conv2D": "_FusedConv2D", "DepthwiseConv2dNative": "_FusedDepthwiseConv2dNative",
            "MatMul": "_FusedMatMul"}
# Attributes each fused op takes over from the op it replaces.
KEPT_ATTRS = {
    "_FusedConv2D": ("T", "strides", "padding", "explicit_paddings", "data_format", "dilations",
                     "use_cudnn_on_gpu"),
    "_FusedDepthwiseConv2dNative": ("T", "strides", "padding", "data_format", "dilations"),
    "_FusedMatMul": ("T", "transpose_a", "transpose_b"),
}


class FuseKernels(GraphPass):
    name = "fuse_kernels"

    def apply(self, view: GraphView, ctx: PassContext) -> list[str]:
        if ctx.kernels is None or not ctx.kernels.allowed:
            return []
        fused = 0
        info = StaticInfo(view.to_graph_def())
        for node in view:
            if node.name not in view or node.op not in FUSED_OP:
                continue
            fused += self._fuse(view, node, ctx, info)
        return count_note(fused, "op chains fused into _Fused* kernels")

    def _residual(self, view: GraphView, bias, ctx: PassContext, info: StaticInfo):
        """The Add reading ``bias`` and a same-shape tensor (a ResNet shortcut), if any."""
        add = view.sole_reader(bias.name, ctx.protected)
        if add is None or add.op not in ("Add", "AddV2") or get_attr(add, "T") != tf.float32:
            return None, None
        refs = view.data_inputs(add)
        others = [r for r in refs if r.node != bias.name]
        if len(refs) != 2 or len(others) != 1:
            return None, None
        a, b = info.shape(f"{bias.name}:0"), info.shape(others[0].tensor)
        if a is None or b is None or a.rank != 4 or a.as_list() != b.as_list() or any(
                d is None for d in a.as_list()[1:]):
            return None, None  # broadcasting adds are not what the kernel computes
        return add, others[0]

    def _fuse(self, view: GraphView, conv, ctx: PassContext, info: StaticInfo) -> int:
        if get_attr(conv, "T") != tf.float32 or conv.name in ctx.protected:
            return 0
        if conv.op != "MatMul" and get_attr(conv, "data_format", "NHWC") != "NHWC":
            return 0
        if conv.op == "DepthwiseConv2dNative" and get_attr(conv, "padding") == "EXPLICIT":
            return 0  # _FusedDepthwiseConv2dNative has no explicit_paddings
        bias = view.sole_reader(conv.name, ctx.protected)
        if bias is None or bias.op != "BiasAdd":
            return 0
        if get_attr(bias, "data_format", "NHWC") != "NHWC" or view.data_inputs(bias)[0].node != conv.name:
            return 0
        chain = [bias]
        fused_ops = ["BiasAdd"]
        extra_args: list[str] = []
        op = FUSED_OP[conv.op]
        if op == "_FusedConv2D":
            add, addend = self._residual(view, bias, ctx, info)
            if add is not None and ctx.kernels.supports(op, ("BiasAdd", "Add")):
                chain.append(add)
                fused_ops.append("Add")
                extra_args.append(str(addend))
        act = view.sole_reader(chain[-1].name, ctx.protected)
        if (act is not None and act.op in ACTIVATIONS and get_attr(act, "T") == tf.float32
                and ctx.kernels.supports(op, (*fused_ops, act.op))):
            chain.append(act)
            fused_ops.append(act.op)
        if not ctx.kernels.supports(op, tuple(fused_ops)):
            return 0
        last = chain[-1]
        alpha = get_attr(last, "alpha", 0.2) if last.op == "LeakyRelu" else None
        inputs = ([str(r) for r in view.data_inputs(conv)] + [str(view.data_inputs(bias)[1])]
                  + extra_args)
        controls = {str(r) for n in (conv, *chain) for r in view.control_inputs(n)}
        kept = {k: conv.attr[k] for k in KEPT_ATTRS[op] if k in conv.attr}
        view.remove([n.name for n in (conv, *chain[:-1])])
        view.retype(last, op)
        for key, value in kept.items():
            set_attr(last, key, value)
        set_attr(last, "num_args", 1 + len(extra_args))
        set_attr(last, "fused_ops", fused_ops)
        set_attr(last, "epsilon", 0.0001)
        if op == "_FusedConv2D":
            set_attr(last, "TArgs", [tf.float32] * (1 + len(extra_args)))
        if alpha is not None:
            set_attr(last, "leakyrelu_alpha", float(alpha))
        view.set_inputs(last, inputs + sorted(controls - {f"^{conv.name}"}))
        return 1
