"""Remove debugging ops: checks and prints cost time on every call and never change a value."""

from __future__ import annotations

from tfopt.graph import GraphView
from tfopt.passes.base import GraphPass, PassContext, count_note

# Ops whose output 0 is their input 0 unchanged: splice them out.
PASS_THROUGH = {"CheckNumerics", "CheckNumericsV2", "Print", "DebugIdentity", "DebugIdentityV2"}
# Ops with no data output anyone reads: delete them with the control edges to them.
SINKS = {"Assert", "PrintV2"}


class RemoveDebugOps(GraphPass):
    name = "debug_ops"
    summary = "remove CheckNumerics, Print, PrintV2 and Assert (with the control edges to it)"

    def apply(self, view: GraphView, ctx: PassContext) -> list[str]:
        spliced = removed = 0
        for node in view:
            if node.name in ctx.protected:
                continue
            if node.op in PASS_THROUGH:
                view.bypass(node, [view.data_inputs(node)[0]])
                spliced += 1
            elif node.op in SINKS and not view.data_consumers(node.name):
                view.remove([node.name])
                removed += 1
        return count_note(spliced, "checks/prints spliced out") + count_note(
            removed, "Assert/PrintV2 removed")
