"""Fold a zero ``Pad`` into the following convolution's padding.

``Pad -> Conv(VALID)`` (Keras' ``ZeroPadding2D`` before strided convs) becomes one conv: one
less pass over the activation and one less buffer. When the pad is exactly what ``SAME`` would
add for the input's static size (MobileNet's ``correct_pad``), the conv becomes ``SAME`` —
for Conv2D and depthwise alike; otherwise a Conv2D takes it as ``EXPLICIT`` padding.
"""

from __future__ import annotations

import numpy as np

from tfopt.graph.nodes import get_attr, set_attr
from tfopt.graph.shapes import StaticInfo
from tfopt.graph.view import GraphView
from tfopt.passes.base import GraphPass, PassContext, count_note

# DepthwiseConv2dNative accepts EXPLICIT padding in its op definition, but Grappler's layout
# code aborts the process on it (TF 2.21, "Invalid index from the dimension"): SAME only.
EXPLICIT_OK = {"Conv2D"}
CONVS = {"Conv2D", "DepthwiseConv2dNative"}


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """(before, after) padding TensorFlow's SAME adds along one spatial dimension."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _as_same(conv, pads: np.ndarray, in_shape, spatial: tuple[int, int], weights) -> bool:
    if in_shape is None or in_shape.rank != 4 or weights is None:
        return False
    dims = in_shape.as_list()
    strides = get_attr(conv, "strides", [1, 1, 1, 1])
    dilations = get_attr(conv, "dilations", [1, 1, 1, 1])
    for axis, k in zip(spatial, weights.shape[:2], strict=True):
        if dims[axis] is None:
            return False
        if tuple(pads[axis]) != same_padding(dims[axis], k, strides[axis], dilations[axis]):
            return False
    return True


class FusePad(GraphPass):

    def apply(self, view: GraphView, ctx: PassContext) -> list[str]:
        fused = 0
        info: StaticInfo | None = None
        for pad in view:
            if pad.name not in view or pad.op not in ("Pad", "PadV2") or view.keeps(pad.name):
                continue
            paddings = view.const_input(pad, 1)
            if paddings is None or paddings.shape != (4, 2):
                continue
            if pad.op == "PadV2":
                value = view.const_input(pad, 2)
                if value is None or np.any(value != 0):
                    continue
            users = view.consumers(pad.name)
            if not users or any(ref.control or u.op not in CONVS for u, ref in users):
                continue
            convs = [u for u, _ in users]
            if any(get_attr(c, "padding") != "VALID" or view.data_inputs(c)[0].node != pad.name
                   for c in convs):
                continue
            fmt = get_attr(convs[0], "data_format", "NHWC")
            if any(get_attr(c, "data_format", "NHWC") != fmt for c in convs):
                continue
            spatial = (1, 2) if fmt == "NHWC" else (2, 3)
            if any(paddings[i].any() for i in range(4) if i not in spatial):
                continue
            info = info or StaticInfo(view.to_graph_def())
            source = view.data_inputs(pad)[0]
            modes = []
            for conv in convs:
                if _as_same(conv, paddings, info.shape(source.tensor), spatial,
                            view.const_input(conv, 1)):
                    modes.append("SAME")
                elif conv.op in EXPLICIT_OK:
                    modes.append("EXPLICIT")
                else:
                    break
            if len(modes) != len(convs):
                continue
            for conv, mode in zip(convs, modes, strict=True):
                set_attr(conv, "padding", mode)
                if mode == "EXPLICIT":
                    set_attr(conv, "explicit_paddings", [int(v) for v in paddings.reshape(-1)])
                view.set_input(conv, 0, str(source))
                for ref in view.control_inputs(pad):
                    view.add_input(conv, str(ref))
            view.remove([pad.name])
            fused += 1
        return count_note(fused, "Pad ops folded into conv padding")
