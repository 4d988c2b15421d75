"""Remove ops that do nothing: same-type Cast, same-shape Reshape, identity Transpose, zero Pad,
single-input Concat, multiply by one and add zero (where broadcasting cannot change the shape).
"""

from __future__ import annotations

import numpy as np

from tfopt.graph.nodes import get_attr
from tfopt.graph.shapes import StaticInfo
from tfopt.graph.view import GraphView
from tfopt.passes.base import GraphPass, PassContext, count_note


class RemoveTrivialOps(GraphPass):

    def apply(self, view: GraphView, ctx: PassContext) -> list[str]:
        info: StaticInfo | None = None
        removed = 0
        for node in view:
            if node.name not in view or view.keeps(node.name):
                continue
            if node.op in ("Reshape", "Mul", "Add", "AddV2", "Sub", "BroadcastTo") and info is None:
                info = StaticInfo(view.to_graph_def())
            keep = _passthrough_input(view, node, info)
            if keep is None:
                continue
            view.bypass(node, [view.data_inputs(node)[keep]])
            removed += 1
        return count_note(removed, "no-op nodes removed")


def _same_shape(info: StaticInfo | None, a: str, b: str) -> bool:
    if info is None:
        return False
    sa, sb = info.shape(a), info.shape(b)
    return (sa is not None and sb is not None and sa.is_fully_defined()
            and sb.is_fully_defined() and sa.as_list() == sb.as_list())


def _passthrough_input(view: GraphView, node, info: StaticInfo | None) -> int | None:
    """Index of the data input the node's output equals, if it is a no-op."""
    refs = view.data_inputs(node)
    op = node.op
    if op == "Cast" and get_attr(node, "SrcT") == get_attr(node, "DstT"):
        return 0
    if op == "Transpose":
        perm = view.const_input(node, 1)
        if perm is not None and np.array_equal(perm, np.arange(perm.size)):
            return 0
    if op in ("Pad", "PadV2", "MirrorPad"):
        pads = view.const_input(node, 1)
        if pads is not None and not pads.any():
            return 0
    if op == "ConcatV2" and len(refs) == 2:
        return 0
    if op in ("Reshape", "BroadcastTo") and _same_shape(info, refs[0].tensor, f"{node.name}:0"):
        return 0
    if op in ("Mul", "Add", "AddV2", "Sub") and len(refs) == 2:
        neutral = 1 if op == "Mul" else 0
        candidates = (0, 1) if op != "Sub" else (0,)
        for keep in candidates:
            value = view.const_input(node, 1 - keep)
            if (value is not None and value.size and np.all(value == neutral)
                    and _same_shape(info, refs[keep].tensor, f"{node.name}:0")):
                return keep
    return None
