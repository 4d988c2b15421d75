"""Fold a zero ``Pad`` into the following convolution's explicit padding.

``Pad -> Conv2D(VALID)`` (Keras' ``ZeroPadding2D`` before strided convs) becomes one
``Conv2D(padding=EXPLICIT)``: one less pass over the activation and one less buffer.
"""

from __future__ import annotations

import numpy as np

from tfopt.graph import GraphView, get_attr, set_attr
from tfopt.passes.base import GraphPass, PassContext, count_note

# DepthwiseConv2dNative accepts EXPLICIT padding in its op definition, but Grappler's layout
# code aborts the process on it (TF 2.21, "Invalid index from the dimension"): Conv2D only.
CONVS = {"Conv2D"}


class FusePad(GraphPass):
    name = "fuse_pad"
    summary = "fold a zero Pad into the next Conv2D as EXPLICIT padding"

    def apply(self, view: GraphView, ctx: PassContext) -> list[str]:
        fused = 0
        for pad in view:
            if pad.name not in view or pad.op not in ("Pad", "PadV2") or pad.name in ctx.protected:
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
            for conv in convs:
                set_attr(conv, "padding", "EXPLICIT")
                set_attr(conv, "explicit_paddings", [int(v) for v in paddings.reshape(-1)])
                view.set_input(conv, 0, str(view.data_inputs(pad)[0]))
                for ref in view.control_inputs(pad):
                    view.add_input(conv, str(ref))
            view.remove([pad.name])
            fused += 1
        return count_note(fused, "Pad ops folded into conv padding")
