"""Remove debugging ops: checks and prints cost time on every call and never change a value."""

from __future__ import annotations

from tfopt.graph.ops import DEBUG_PASS_THROUGH, DEBUG_SINKS
from tfopt.graph.view import GraphView
from tfopt.passes.base import GraphPass, PassContext, count_note

PASS_THROUGH, SINKS = DEBUG_PASS_THROUGH, DEBUG_SINKS
# Conditionals whose branches may hold nothing but checks: removed when nobody reads them.
CONDITIONALS = {"If", "StatelessIf"}


class RemoveDebugOps(GraphPass):

    def apply(self, view: GraphView, ctx: PassContext) -> list[str]:
        spliced = removed = guards = 0
        for node in view:
            if view.keeps(node.name):
                continue
            if node.op in PASS_THROUGH:
                view.bypass(node, [view.data_inputs(node)[0]])
                spliced += 1
            elif node.op in SINKS and not view.data_consumers(node.name):
                view.remove([node.name])
                removed += 1
                if "/AssertGuard/" in node.name:
                    _drop_guard_dependencies(view, node.name.split("/AssertGuard/")[0])
            elif (node.op in CONDITIONALS and not view.data_consumers(node.name)
                  and _only_checks(view, node)):
                view.bypass(node, [])  # its own control inputs move to its control readers
                guards += 1
        return (count_note(spliced, "checks/prints spliced out")
                + count_note(removed, "Assert/PrintV2 removed")
                + count_note(guards, "If nodes that only checked or printed removed"))


def _only_checks(view: GraphView, node) -> bool:
    """Whether both branches of a conditional do nothing but checks, prints and pure ops
    (``tf.debugging.assert_*`` in a TF2 function becomes such an ``If``)."""
    from tfopt.graph.shapes import is_stateful

    library = {f.signature.name: f for f in view.graph_def.library.function}
    for key in ("then_branch", "else_branch"):
        fdef = library.get(node.attr[key].func.name)
        if fdef is None:
            return False
        for inner in fdef.node_def:
            if inner.op in library or (is_stateful(inner.op) and inner.op not in SINKS
                                       and inner.op not in PASS_THROUGH):
                return False
    return True


def _drop_guard_dependencies(view: GraphView, scope: str) -> None:
    """``tf.debugging.Assert`` in a TF1 graph wraps the Assert in a cond named
    ``<scope>/AssertGuard``; readers depend on the cond's output by control edge only. With the
    Assert gone the guard does nothing, so those edges go and strip_unused removes the cond."""
    guard = scope + "/AssertGuard"
    members = [n for n in view.nodes if n == guard or n.startswith(guard + "/")]
    for name in members:
        for consumer, ref in view.consumers(name):
            if ref.control and not consumer.name.startswith(guard + "/"):
                view.drop_input(consumer, str(ref))
