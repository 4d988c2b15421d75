"""Fuse Conv2D/DepthwiseConv2dNative/MatMul + BiasAdd [+ activation] into one kernel call.

Emits ``_FusedConv2D``, ``_FusedDepthwiseConv2dNative`` and ``_FusedMatMul`` — the kernels
Grappler's remapper targets — only for the forms in :data:`tfopt.graph.fusions.FUSION_TABLE` that the
target admits: by default those both CPU runtimes (oneDNN on and off) run, so the model runs
everywhere; with ``--target native`` whatever this runtime runs; none with ``--target generic``.
The fused node takes the name of the last node of the chain, so readers keep their inputs.
"""

from __future__ import annotations

from tfopt.graph.fusions import ACTIVATIONS
from tfopt.graph.fusions import DTYPES as FUSABLE
from tfopt.graph.nodes import copied_attrs, get_attr, set_attr, set_attrs
from tfopt.graph.shapes import StaticInfo
from tfopt.graph.view import GraphView, Step
from tfopt.passes.base import GraphPass, PassContext, count_note

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

    def apply(self, view: GraphView, ctx: PassContext) -> list[str]:
        info = StaticInfo(view.to_graph_def())
        notes = count_note(_unbias_grouped(view, info),
                           "grouped convolutions' BiasAdd written as AddV2")
        if ctx.kernels is None or not ctx.kernels.allowed:
            return notes
        fused = 0
        for node in view:
            if node.name not in view or node.op not in FUSED_OP:
                continue
            fused += self._fuse(view, node, ctx, info)
        return notes + count_note(fused, "op chains fused into _Fused* kernels")

    @staticmethod
    def _pattern(view: GraphView, conv, info: StaticInfo) -> list[Step]:
        """::

            conv ─► BiasAdd ─► [Add(·, same-shape shortcut)] ─► [Relu|Relu6|Elu|...]

        The residual Add only after a Conv2D, only when the other operand has the conv
        output's full static shape (a broadcasting add is not what the kernel computes)."""
        dtype = get_attr(conv, "T")

        def is_float(node, _prev) -> bool:
            return get_attr(node, "T") == dtype

        def bias_of_conv(node, prev) -> bool:
            return (get_attr(node, "data_format", "NHWC") == "NHWC"
                    and view.data_inputs(node)[0].node == prev.name)

        def shortcut(node, prev) -> bool:
            refs = view.data_inputs(node)
            others = [r for r in refs if r.node != prev.name]
            if not is_float(node, prev) or len(refs) != 2 or len(others) != 1:
                return False
            a, b = info.shape(f"{prev.name}:0"), info.shape(others[0].tensor)
            return (a is not None and b is not None and a.rank == 4
                    and a.as_list() == b.as_list() and None not in a.as_list()[1:])

        steps = [Step("bias", ("BiasAdd",), where=bias_of_conv)]
        if conv.op == "Conv2D":
            steps.append(Step("Add", ("Add", "AddV2"), optional=True, where=shortcut))
        steps.append(Step("act", ACTIVATIONS, optional=True, where=is_float))
        return steps

    def _fuse(self, view: GraphView, conv, ctx: PassContext, info: StaticInfo) -> int:
        dtype = get_attr(conv, "T")
        if dtype is None or dtype.name not in FUSABLE or view.keeps(conv.name):
            return 0
        if conv.op != "MatMul" and get_attr(conv, "data_format", "NHWC") != "NHWC":
            return 0
        if conv.op == "DepthwiseConv2dNative" and get_attr(conv, "padding") == "EXPLICIT":
            return 0  # _FusedDepthwiseConv2dNative has no explicit_paddings
        if conv.op == "Conv2D" and not _ungrouped(conv, view, info):
            return 0  # the Eigen runtime's _FusedConv2D rejects grouped convolutions
        matched = view.match_chain(conv, self._pattern(view, conv, info))
        op = FUSED_OP[conv.op]
        if [label for label, _ in matched][:2] == ["bias", "Add"] and not ctx.kernels.supports(
                op, ("BiasAdd", "Add"), dtype.name):
            # A residual block's last conv: the oneDNN runtime fuses conv + bias + Add + Relu
            # at load time, which a pre-fused [BiasAdd] would block (ResNet50 measured 0.91x
            # against leaving it to the runtime); the Eigen runtime fuses conv + bias itself.
            return 0
        if (conv.op == "MatMul" and len(matched) == 1
                and len(view.data_consumers(matched[0][1].name)) > 1):
            # MatMul + BiasAdd read several times is how a GELU or Swish starts: the oneDNN
            # runtime fuses the whole activation into its matmul at load time, which a
            # pre-fused [BiasAdd] would block; both runtimes fuse MatMul + BiasAdd themselves.
            return 0
        # The longest matched prefix whose fused_ops the target's runtimes run.
        while matched and not ctx.kernels.supports(
                op, ["BiasAdd" if label == "bias" else label if label == "Add" else node.op
                     for label, node in matched], dtype.name):
            matched.pop()
        if not matched:
            return 0
        chain = [node for _, node in matched]
        bias = chain[0]
        fused_ops = ["BiasAdd" if label == "bias" else label if label == "Add" else node.op
                     for label, node in matched]
        extra_args = [str(r) for label, node in matched if label == "Add"
                      for r in view.data_inputs(node) if r.node != bias.name]
        last = chain[-1]
        alpha = get_attr(last, "alpha", 0.2) if last.op == "LeakyRelu" else None
        inputs = ([str(r) for r in view.data_inputs(conv)] + [str(view.data_inputs(bias)[1])]
                  + extra_args)
        controls = {str(r) for n in (conv, *chain) for r in view.control_inputs(n)}
        kept = copied_attrs(conv, KEPT_ATTRS[op])
        view.remove([n.name for n in (conv, *chain[:-1])])
        view.retype(last, op)
        set_attrs(last, kept)
        set_attr(last, "num_args", 1 + len(extra_args))
        set_attr(last, "fused_ops", fused_ops)
        set_attr(last, "epsilon", 0.0001)
        if op == "_FusedConv2D":
            set_attr(last, "TArgs", [dtype] * (1 + len(extra_args)))
        if alpha is not None:
            set_attr(last, "leakyrelu_alpha", float(alpha))
        view.set_inputs(last, inputs + sorted(controls - {f"^{conv.name}"}))
        return 1


def _ungrouped(conv, view: GraphView, info: StaticInfo) -> bool:
    """Whether a Conv2D provably reads all its input channels in one group (the filter's
    input depth equals the input's); unknown depths count as grouped."""
    x, w = (info.shape(r.tensor) for r in view.data_inputs(conv)[:2])
    if x is None or w is None or x.rank != 4 or w.rank != 4:
        return False
    return x[3] is not None and x[3] == w[2]


def _unbias_grouped(view: GraphView, info: StaticInfo) -> int:
    """Turn ``BiasAdd`` after a grouped ``Conv2D`` into the same ``AddV2``.

    Grappler's remapper fuses Conv2D + BiasAdd [+ Relu] without checking for groups, and the
    Eigen runtime's ``_FusedConv2D`` then fails ("does not support grouped convolutions"):
    Keras keeps such convs inside an XLA function, where the remapper does not reach, but
    inlining them and folding their batch norm into a bias exposes the pattern."""
    changed = 0
    for conv in list(view):
        if conv.op != "Conv2D" or get_attr(conv, "data_format", "NHWC") != "NHWC":
            continue
        if _ungrouped(conv, view, info):
            continue
        for bias in view.data_consumers(conv.name):
            if (bias.op == "BiasAdd" and not view.keeps(bias.name)
                    and get_attr(bias, "data_format", "NHWC") == "NHWC"
                    and view.data_inputs(bias)[0].node == conv.name):
                view.retype(bias, "AddV2", keep=("T",))
                changed += 1
    return changed
