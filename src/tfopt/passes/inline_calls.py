"""Inline ``PartitionedCall``/``StatefulPartitionedCall`` bodies into the main graph.

Freezing inlines most calls, but not those marked ``_noinline`` or ``_XlaMustCompile``: Keras 3
wraps every grouped convolution (ConvNeXt's 7x7 depthwise layers) in such a ``_conv_xla``
function. Left as calls, they are opaque to every other pass (nothing folds or fuses across
them) and each runs through XLA's CPU compiler. Inlined, the body is ordinary graph: the
grouped conv can become a ``DepthwiseConv2dNative`` (``grouped_conv``), and its neighbours fuse.

::

    x ──► StatefulPartitionedCall(f=_conv_xla) ──► y       x ──► Conv2D(groups) ──► y
    w ──►                                            =>    w ──►

Inputs feed the body where its arguments were read; readers of output ``i`` read the body's
``i``-th result; control edges into the call hold every body node with no inputs, control
edges out of it wait for every result and ``control_ret`` node. Calls with resource inputs
(state not frozen) are left alone. The library copy goes with ``strip_unused``.
"""

from __future__ import annotations

from tensorflow.core.framework import node_def_pb2, types_pb2

from tfopt.graph.library import function_body
from tfopt.graph.names import InputRef
from tfopt.graph.nodes import get_attr
from tfopt.graph.view import GraphView
from tfopt.passes.base import GraphPass, PassContext

CALL_OPS = ("PartitionedCall", "StatefulPartitionedCall")


class InlineCalls(GraphPass):

    def apply(self, view: GraphView, ctx: PassContext) -> list[str]:
        library = {f.signature.name: f for f in view.graph_def.library.function}
        inlined = xla = 0
        for call in view:
            if call.op not in CALL_OPS or view.keeps(call.name):
                continue
            fdef = library.get(call.attr["f"].func.name)
            if fdef is None or any(a.type == types_pb2.DT_RESOURCE
                                   for a in fdef.signature.input_arg):
                continue
            try:
                body, results = function_body(fdef)
            except Exception:  # a body TF itself cannot read back: leave the call
                continue
            xla += bool(get_attr(call, "_XlaMustCompile", False) or
                        fdef.attr["_XlaMustCompile"].b)
            self._inline(view, call, fdef, body, results)
            inlined += 1
        if not inlined:
            return []
        return [f"{inlined} function calls inlined" + (f" ({xla} XLA-marked)" if xla else "")]

    @staticmethod
    def _inline(view: GraphView, call, fdef, body, results: list[str]) -> None:
        prefix = view.unique_name(call.name + "/inlined") + "/"
        args = [a.name for a in fdef.signature.input_arg]
        feeds = dict(zip(args, (str(r) for r in view.data_inputs(call)), strict=True))
        controls = [str(r) for r in view.control_inputs(call)]
        gate = None
        if controls:
            gate = view.add(node_def_pb2.NodeDef(name=prefix + "input_control", op="NoOp",
                                                 input=controls, device=call.device))

        def rename(text: str) -> str:
            ref = InputRef.parse(text)
            if ref.node in feeds:
                fed = InputRef.parse(feeds[ref.node])
                return "^" + fed.node if ref.control else str(fed)
            return str(InputRef(prefix + ref.node, ref.port, ref.control))

        for node in body.node:
            if node.name in feeds:
                continue
            copy = node_def_pb2.NodeDef()
            copy.CopyFrom(node)
            copy.name = prefix + node.name
            del copy.input[:]
            copy.input.extend(rename(t) for t in node.input)
            if gate is not None and not node.input:
                copy.input.append("^" + gate.name)
            if not copy.device:
                copy.device = call.device
            view.add(copy)
        outs = [rename(r) for r in results]
        finished = [InputRef.parse(t).node for t in outs] + [
            prefix + name for name in fdef.control_ret.values()]
        done = view.add(node_def_pb2.NodeDef(name=prefix + "output_control", op="NoOp",
                                             input=["^" + n for n in dict.fromkeys(finished)],
                                             device=call.device))
        for port, tensor in enumerate(outs):
            view.replace_uses(InputRef(call.name, port), InputRef.parse(tensor),
                              keep_controls=False)
        view.replace_uses(InputRef(call.name, 0, True), InputRef(done.name, 0, True))
        view.remove([call.name])
