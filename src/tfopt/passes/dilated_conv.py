"""Rewrite TF1's space-to-batch atrous convolution as one dilated ``Conv2D``.

``tf.nn.atrous_conv2d`` and ``tf.nn.convolution(dilation_rate=r)`` (DeepLab's ASPP and
atrous backbones) emit the dilation as a batch rearrangement around a plain convolution::

    x ─► SpaceToBatchND(block [rh, rw], paddings P) ─► Conv2D(VALID) ─► BatchToSpaceND(crops C)

(a dilated Conv1D of fixed length: the same with a 1-D block around its ``ExpandDims ->
Conv2D -> Squeeze``). That is the dilated convolution of ``x`` padded by ``P`` and cropped by
``C``; for a stride-1 convolution cropping an output row is dropping the padding row it came
from, so it is::

    x ─► Conv2D(dilations [1, rh, rw, 1], padding P - C)

emitted when ``P - C`` is no padding (VALID) or the dilated kernel's SAME padding — what
TensorFlow computes for both. Both CPU runtimes run the dilated form ~1.35x faster (six
3x3 rate-4 layers on 65x65x64: 7.8 -> 5.8 ms with oneDNN, 11.6 -> 8.5 ms without), and the
batch norm behind it then folds into the filter. ``DepthwiseConv2dNative`` is left as it is:
the runtime without oneDNN has no dilated depthwise kernel.
"""

from __future__ import annotations

import numpy as np

from tfopt.graph.names import InputRef
from tfopt.graph.nodes import copied_attrs, get_attr, set_attr, set_attrs
from tfopt.graph.shapes import StaticInfo
from tfopt.graph.view import GraphView
from tfopt.passes.base import GraphPass, PassContext, count_note

# Conv2D attributes the dilated convolution takes over (padding and dilations are set anew).
_CONV_ATTRS = ("T", "strides", "data_format", "use_cudnn_on_gpu", "_class")


class DilatedConv(GraphPass):

    def apply(self, view: GraphView, ctx: PassContext) -> list[str]:
        info: StaticInfo | None = None
        rewritten = 0
        for b2s in list(view):
            if b2s.op != "BatchToSpaceND" or b2s.name not in view:
                continue
            chain = _chain(view, b2s)
            if chain is None:
                continue
            s2b, conv = chain[0], chain[len(chain) // 2]  # the conv is in the middle
            info = info or StaticInfo(view.to_graph_def())
            padding = _dilated_padding(view, s2b, conv, b2s, info)
            if padding is None:
                continue
            if len(chain) == 3:
                self._rewrite(view, s2b, conv, b2s, padding)
            else:
                self._rewrite_1d(view, chain, padding)
            rewritten += 1
        return count_note(rewritten, "space-to-batch convolutions written as dilated Conv2D")

    @staticmethod
    def _rewrite_1d(view: GraphView, chain: list, padding: tuple[str, list[int]]) -> None:
        """A Conv1D's ``S2B -> ExpandDims -> Conv2D -> Squeeze -> B2S``: the ExpandDims reads
        the S2B's input, the conv dilates, readers of the B2S read the Squeeze."""
        s2b, expand, conv, squeeze, b2s = chain
        view.set_input(expand, 0, str(view.data_inputs(s2b)[0]))
        set_attr(conv, "padding", padding[0])
        set_attr(conv, "dilations", padding[1])
        view.bypass(b2s, [InputRef(squeeze.name)])
        view.remove([s2b.name])

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


def _chain(view: GraphView, b2s) -> list | None:
    """The nodes from SpaceToBatchND to ``b2s``, each the sole reader of the one before:
    ``[s2b, conv, b2s]``, or a Conv1D's ``[s2b, expand, conv, squeeze, b2s]``."""
    chain = [b2s]
    while (node := view.input_node(chain[0], 0)) is not None and len(chain) < 5:
        if view.sole_reader(node.name) is not chain[0]:
            return None
        chain.insert(0, node)
        if node.op == "SpaceToBatchND":
            break
    ops = [n.op for n in chain]
    if ops == ["SpaceToBatchND", "Conv2D", "BatchToSpaceND"]:
        return chain
    if ops != ["SpaceToBatchND", "ExpandDims", "Conv2D", "Squeeze", "BatchToSpaceND"]:
        return None
    axis = view.const_input(chain[1], 1)
    dims = list(get_attr(chain[3], "squeeze_dims", []))
    if axis is None or axis.size != 1 or int(axis.reshape(())) not in (1, -3) or dims not in (
            [1], [-3]) or view.control_inputs(chain[0]) or view.control_inputs(chain[-1]):
        return None
    return chain  # [N, W, C] -> [N, 1, W, C] -> conv -> [N, 1, W', O] -> [N, W', O]


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
    if not np.array_equal(block, block_out) or (block < 1).any():
        return None
    if block.shape == (1,) and pads.shape == crops.shape == (1, 2):  # Conv1D: height 1
        block, pads, crops = np.r_[1, block], np.r_[[[0, 0]], pads], np.r_[[[0, 0]], crops]
    if block.shape != (2,) or pads.shape != (2, 2) or crops.shape != (2, 2):
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
