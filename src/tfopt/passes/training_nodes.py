"""Remove what only training needs: checkpoint I/O, initializers, optimizer updates, gradients."""

from __future__ import annotations

from tfopt.graph.ops import is_training_op
from tfopt.graph.view import GraphView
from tfopt.passes.base import GraphPass, PassContext, count_note


class RemoveTrainingNodes(GraphPass):

    def apply(self, view: GraphView, ctx: PassContext) -> list[str]:
        notes: list[str] = []
        flags = 0
        for node in view:
            if node.op == "PlaceholderWithDefault" and not view.keeps(node.name):
                view.bypass(node, [view.data_inputs(node)[0]])
                flags += 1
        notes += count_note(flags, "PlaceholderWithDefault folded to its default")

        doomed = {n.name for n in view if is_training_op(n.op) and not view.keeps(n.name)}
        if not doomed:
            return notes
        seeds = len(doomed)
        # Grow backwards: a node all of whose consumers are doomed existed only to feed them
        # (gradients, learning-rate schedules, save/restore name strings, ...).
        grew = True
        while grew:
            grew = False
            for node in view:
                if node.name in doomed or view.keeps(node.name):
                    continue
                users = view.consumers(node.name)
                if users and all(u.name in doomed for u, _ in users):
                    doomed.add(node.name)
                    grew = True
        view.remove(doomed)
        notes.append(f"{seeds} training ops removed ({len(doomed) - seeds} nodes feeding only them)")
        return notes


