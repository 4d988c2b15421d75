"""Split ``_Fused*`` kernels the target does not run back into their plain ops.

A frozen ``.pb`` can arrive with fused kernels already in it (written by tfopt, by Grappler's
graph dumps, by a oneDNN machine): ``_FusedConv2D[BiasAdd, Add, Relu]`` fails at its first call
where oneDNN is off, and no converter reads any ``_Fused*`` op, so ``--target generic`` (what
``--format litert|openvino`` convert) would keep them. Each form the target's runtimes do not
run becomes the chain it stands for, the last op keeping the fused node's name (its readers
are unchanged)::

    _FusedConv2D(x, w, b, s)[BiasAdd, Add, Relu]  =>  Conv2D(x, w) -> BiasAdd(b) -> AddV2(s) -> Relu

fuse_kernels then fuses what the target does run. Forms with a batch norm or an activation
outside :data:`tfopt.graph.fusions.ACTIVATIONS` stay as they are.
"""

from __future__ import annotations

from tensorflow.core.framework import node_def_pb2

from tfopt.graph.fusions import ACTIVATIONS
from tfopt.graph.nodes import copied_attrs, get_attr, set_attr, set_attrs
from tfopt.graph.view import GraphView
from tfopt.passes.base import GraphPass, PassContext, count_note
from tfopt.passes.fuse_kernels import FUSED_OP, KEPT_ATTRS

PLAIN_OP = {fused: plain for plain, fused in FUSED_OP.items()}


class UnfuseKernels(GraphPass):

    def apply(self, view: GraphView, ctx: PassContext) -> list[str]:
        split = 0
        for node in view:
            if node.name in view and node.op in PLAIN_OP and not _runs(node, ctx):
                split += _split(view, node)
        return count_note(split, "_Fused* kernels the target does not run split into their "
                                 "plain ops")


def _runs(node, ctx: PassContext) -> bool:
    dtype = get_attr(node, "T")
    return (ctx.kernels is not None and dtype is not None
            and ctx.kernels.supports(node.op, get_attr(node, "fused_ops", []), dtype.name))


def _split(view: GraphView, fused) -> int:
    ops = list(get_attr(fused, "fused_ops", []))
    if not ops or ops[0] != "BiasAdd":
        return 0
    rest = ops[1:]
    add = bool(rest) and rest[0] == "Add"
    act = rest[1:] if add else rest
    if len(act) > 1 or any(a not in ACTIVATIONS for a in act):
        return 0
    refs = [str(r) for r in view.data_inputs(fused)]
    if len(refs) != 3 + add:
        return 0
    dtype = get_attr(fused, "T")
    controls = [str(r) for r in view.control_inputs(fused)]
    plain = node_def_pb2.NodeDef(name=view.unique_name(f"{fused.name}/unfused"),
                                 op=PLAIN_OP[fused.op], input=refs[:2] + controls,
                                 device=fused.device)
    set_attrs(plain, copied_attrs(fused, KEPT_ATTRS[fused.op]))
    chain = [("BiasAdd", [refs[2]])] + ([("AddV2", [refs[3]])] if add else []) + [
        (a, []) for a in act]
    alpha = get_attr(fused, "leakyrelu_alpha", 0.2)
    previous = view.add(plain).name
    for i, (op, extra) in enumerate(chain):
        last = i == len(chain) - 1
        node = fused if last else view.add(node_def_pb2.NodeDef(
            name=view.unique_name(f"{fused.name}/{op.lower()}"), op=op, device=fused.device))
        if last:
            view.retype(node, op)
        set_attr(node, "T", dtype)
        if op == "BiasAdd":
            set_attr(node, "data_format", "NHWC")
        if op == "LeakyRelu":
            set_attr(node, "alpha", float(alpha))
        view.set_inputs(node, [previous, *extra])
        previous = node.name
    return 1
