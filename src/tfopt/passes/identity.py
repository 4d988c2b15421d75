"""Splice out Identity-like nodes, keeping ports, control edges and signature names intact."""

from __future__ import annotations

from tfopt.graph.ops import IDENTITY_OPS, TF1_CONTROL_FLOW_OPS
from tfopt.graph.view import GraphView
from tfopt.passes.base import GraphPass, PassContext, count_note

# TF1 control flow uses Identity after these as a frame/branch pivot: splicing it would hang
# control edges on a Switch (not allowed) or move work across loop frames.
CONTROL_FLOW_OPS = TF1_CONTROL_FLOW_OPS


class RemoveIdentities(GraphPass):

    def apply(self, view: GraphView, ctx: PassContext) -> list[str]:
        count = 0
        for node in view:
            if view.keeps(node.name) or node.name not in view:
                continue
            if node.op in IDENTITY_OPS or node.op == "IdentityN":
                sources = view.data_inputs(node)
                if any(view.node(s.node).op in CONTROL_FLOW_OPS for s in sources
                       if s.node in view):
                    continue
                view.bypass(node, sources)
                count += 1
            elif node.op == "NoOp" and view.consumers(node.name):
                view.bypass(node, [])
                count += 1
        return count_note(count, "identity-like nodes spliced out") + count_note(
            _drop_const_controls(view), "control edges on constants dropped")


def _drop_const_controls(view: GraphView) -> int:
    """``^c`` on a Const with no inputs orders nothing (it is always ready) but keeps ``c``
    alive and makes it look shared; TF2 exports hang every weight on the output this way
    once NoOps are spliced. Consts with inputs (a TF1 frame pivot) keep their edges."""
    dropped = 0
    for node in view:
        for text in [t for t in node.input if t.startswith("^")]:
            src = view.nodes.get(text[1:])
            if src is not None and src.op == "Const" and not src.input:
                view.drop_input(node, text)
                dropped += 1
    return dropped
