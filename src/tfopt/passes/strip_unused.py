"""Remove every node (and library function) that the requested outputs never reach."""

from __future__ import annotations

from tfopt.graph.library import referenced_functions
from tfopt.graph.view import GraphView
from tfopt.passes.base import GraphPass, PassContext, count_note, unreachable


class StripUnused(GraphPass):

    def apply(self, view: GraphView, ctx: PassContext) -> list[str]:
        doomed = unreachable(view, ctx)
        view.remove(doomed)
        notes = count_note(len(doomed), "unreachable nodes removed")
        used = referenced_functions(view.nodes.values(), view.graph_def.library)
        library = view.graph_def.library
        unused = [f for f in library.function if f.signature.name not in used]
        if unused:
            kept = [f for f in library.function if f.signature.name in used]
            del library.function[:]
            library.function.extend(kept)
            grads = [g for g in library.gradient if g.function_name in used]
            del library.gradient[:]
            library.gradient.extend(grads)
            notes += count_note(len(unused), "unused library functions removed")
        return notes
