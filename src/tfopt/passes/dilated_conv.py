"""Rewrite TF1's space-to-batch atrous convolution as one dilated ``Conv2D``.

``tf.nn.atrous_conv2d`` and ``tf.nn.convolution(dilation_rate=r)`` (DeepLab's ASPP and
atrous backbones) emit the dilation as a batch rearrangement around a plain convolution::

    x ─► SpaceToBatchND(block [rh, rw], paddings P) ─► Conv2D(VALID) ─► BatchToSpaceND(crops C)

which is the dilated convolution of ``x`` padded by ``P`` and cropped by ``C``; for a stride-1
convolution cropping an output row is dropping the padding row it came from, so it is::

    x ─► Conv2D(dilations [1, rh, rw, 1], padding P - C)

emitted when ``P - C`` is no padding (VALID) or the dilated kernel's SAME padding — what
TensorFlow computes for both. Both CPU runtimes run the dilated form ~1.35x faster (six
3x3 rate-4 layers on 65x65x64: 7.8 -> 5.8 ms with oneDNN, 11.6 -> 8.5 ms without), and the
batch norm behind it then folds into the filter. ``DepthwiseConv2dNative`` is left as it is:
the runtime without oneDNN has no dilated depthwise kernel.
"""

from __future__ import annotations

import numpy as np

from tfopt.graph import GraphView, copied_attrs, get_attr, set_attr, set_attrs
from tfopt.passes.base import GraphPass, PassContext, count_note
from tfopt.shapes import StaticInfo

# Conv2D attributes the dilated convolution takes over (padding and dilations are set anew).
_CONV_ATTRS = ("T", "strides", "data_format", "use_cudnn_on_gpu", "_class")


class DilatedConv(GraphPass):
    name = "dilated_conv"

    def apply(self, view: GraphView, ctx: PassContext) -> list[str]:
        info: StaticInfo | None = None
        rewritten = 0
        for b2s in list(view):
            if b2s.op != "BatchToSpaceND" or b2s.name not in view:
                continue
            conv = view.input_node(b2s, 0)
            if conv is None or conv.op != "Conv2D" or view.sole_reader(conv.name,
                                                                      ctx.protected) is not b2s:
                continue
            s2b = view.input_node(conv, 0)
            if s2b is None or s2b.op != "SpaceToBatchND" or view.sole_reader(
                    s2b.name, ctx.protected) is not conv:
                continue
            info = info or StaticInfo(view.to_graph_def())
            padding = _dilated_padding(view, s2b, conv, b2s, info)
            if padding is None:
                continue
            self._rewrite(view, s2b, conv, b2s, padding)
            rewritten += 1
        return count_note(rewritten, "space-to-batch convolutions written as dilated Conv2D")

    @staticmethod
    def _rewrite(view: GraphView, s2b, conv, b2s, padding: tuple[str, list[int]]) -> None:
        """``b2s`` becomes the dilated conv (its readers keep their inputs)."""
        kept = copied_attrs(conv, _CONV_ATTRS)
        inputs = [str(view.data_inputs(s2b)[0]), str(view.data_inputs(conv)[1])]
        internal = {f"^{s2b.name}", f"^{conv.name}"}
        controls = {str(r) for n in (s2b, conv, b2s) for r in view.control_inputs(n)} - internal
        view.remove([conv.name, s2b.name])
        view.retype(b2s, "Conv2D")
        set_attrs(b2s, kept)
        set_attr(b2s, "padding", padding[0])
        set_attr(b2s, "dilations", padding[1])
        view.set_inputs(b2s, inputs + sorted(controls))


def _dilated_padding(view: GraphView, s2b, conv, b2s,
                     info: StaticInfo) -> tuple[str, list[int]] | None:
    """(padding, dilations) of the equivalent dilated Conv2D, or None when there is none."""
    if (get_attr(conv, "data_format", "NHWC") != "NHWC" or get_attr(conv, "padding") != "VALID"
            or any(s != 1 for s in get_attr(conv, "strides", [1, 1, 1, 1]))
            or any(d != 1 for d in get_attr(conv, "dilations", [1, 1, 1, 1]))):
        return None
    block, pads = view.const_input(s2b, 1), view.const_input(s2b, 2)
    block_out, crops = view.const_input(b2s, 1), view.const_input(b2s, 2)
    if any(v is None for v in (block, pads, block_out, crops)):
        return None
    if (block.shape != (2,) or not np.array_equal(block, block_out)
            or pads.shape != (2, 2) or crops.shape != (2, 2) or (block < 1).any()):
        return None
    kernel = info.shape(str(view.data_inputs(conv)[1]))
    if kernel is None or kernel.rank != 4 or None in kernel.as_list()[:2]:
        return None
    effective = pads - crops
    total = (np.array(kernel.as_list()[:2]) - 1) * block
    same = np.stack([total // 2, total - total // 2], axis=1)
    dilations = [1, int(block[0]), int(block[1]), 1]
    if not effective.any():
        return "VALID", dilations
    if np.array_equal(effective, same):
        return "SAME", dilations
    return None
