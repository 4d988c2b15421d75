"""Cut a tensor into consecutive pieces with one SplitV instead of one StridedSlice per piece.

Keras' GRU slices its recurrent product into the update, reset and candidate parts with three
``StridedSlice`` ops (``m[:, :u]``, ``m[:, u:2u]``, ``m[:, 2u:]``) on every time step; each
slice is a kernel launch with its own index arithmetic, and in a loop at batch 1 the launches
are the cost. One ``SplitV`` gives the same three tensors::

    m[:, :64], m[:, 64:128], m[:, 128:]   =>   SplitV(m, size_splits=[64, 64, -1], axis=1)

What must hold: every slice reads the same tensor with stride 1 along one axis and whole
ranges along the others (no shrink, new or ellipsis axes); the first starts at 0, each next
starts where the one before ended, and the last runs to the end; and the axis is known to be
at least as long as where the last piece starts (else the slices would clamp where SplitV
fails).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from tensorflow.python.framework import dtypes

from tfopt.graph.names import InputRef
from tfopt.graph.nodes import get_attr, make_node
from tfopt.graph.shapes import StaticInfo
from tfopt.graph.view import GraphView
from tfopt.passes.base import GraphPass, PassContext, count_note


def _piece(view: GraphView, node) -> tuple[int, int, int | None] | None:
    """(axis, start, end or None: to the end) of a one-axis, stride-1 slice; else None."""
    begin, end, strides = (view.const_input(node, i) for i in (1, 2, 3))
    if begin is None or end is None or strides is None or begin.ndim != 1 or \
            any(get_attr(node, k, 0) for k in ("ellipsis_mask", "new_axis_mask",
                                               "shrink_axis_mask")) or (strides != 1).any():
        return None
    begin_mask, end_mask = get_attr(node, "begin_mask", 0), get_attr(node, "end_mask", 0)
    cut = []
    for i in range(begin.size):
        start = 0 if begin_mask >> i & 1 else int(begin[i])
        stop = None if end_mask >> i & 1 else int(end[i])
        if start != 0 or stop is not None:
            cut.append((i, start, stop))
    return cut[0] if len(cut) == 1 and cut[0][1] >= 0 and (cut[0][2] is None
                                                             or cut[0][2] > cut[0][1]) else None


class SlicesToSplit(GraphPass):

    def apply(self, view: GraphView, ctx: PassContext) -> list[str]:
        groups: dict[str, list] = defaultdict(list)
        for node in view:
            if node.op == "StridedSlice" and not view.keeps(node.name) and \
                    not view.control_inputs(node):
                piece = _piece(view, node)
                if piece is not None:
                    groups[str(view.data_inputs(node)[0])].append((piece, node))
        info: StaticInfo | None = None
        split = 0
        for source, pieces in groups.items():
            pieces.sort(key=lambda p: p[0][1])
            axes = {p[0][0] for p in pieces}
            bounds = [(start, stop) for (_, start, stop), _ in pieces]
            if len(pieces) < 2 or len(axes) != 1 or bounds[0][0] != 0 or \
                    bounds[-1][1] is not None or any(
                        a[1] != b[0] for a, b in zip(bounds, bounds[1:], strict=False)):
                continue
            axis = axes.pop()
            info = info or StaticInfo(view.to_graph_def())
            shape = info.shape(source)
            if shape is None or shape.rank is None or axis >= shape.rank or \
                    shape[axis] is None or shape[axis] < bounds[-1][0]:
                continue
            first = pieces[0][1]
            sizes = [stop - start for start, stop in bounds[:-1]] + [-1]
            name = view.unique_name(f"{first.name}/split")
            view.add(make_node(name, "SplitV", [
                source, view.add_const(f"{name}/size_splits", np.array(sizes, np.int32),
                                       first.device),
                view.add_const(f"{name}/axis", np.array(axis, np.int32), first.device)],
                first.device, T=get_attr(first, "T"), Tlen=dtypes.int32,
                num_split=len(sizes)))
            for port, (_, node) in enumerate(pieces):
                view.replace_uses(InputRef(node.name, 0), InputRef(name, port))
                view.remove([node.name])
            split += 1
        return count_note(split, "runs of consecutive slices cut by one SplitV")
