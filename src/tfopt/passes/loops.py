"""What the passes that rewrite ``While`` loops share: which loops a pass may edit, and
putting the loop's functions back.

A loop may be edited when its body and condition are functions no other node calls (an edit
would change them for that node too) and the signature does not name the loop. A subclass
writes only :meth:`LoopPass.rewrite`: given one loop, it edits the main graph through the
view and returns the new body and condition (None: unchanged) and how many rewrites it made;
the base stores the functions and writes the note.
"""

from __future__ import annotations

from dataclasses import dataclass

from tensorflow.core.framework import node_def_pb2

from tfopt.graph.library import function_uses
from tfopt.graph.ops import WHILE_OPS
from tfopt.graph.view import GraphView
from tfopt.passes.base import GraphPass, PassContext


@dataclass
class Loop:
    """One While node and its two functions (FunctionDefs, read-only)."""

    node: node_def_pb2.NodeDef
    body: object
    cond: object


class LoopPass(GraphPass):
    """A pass over the editable While loops of the main graph."""

    def rewrite(self, view: GraphView, loop: Loop, library: dict) -> tuple[object, object, int]:
        """(new body or None, new condition or None, rewrites made) for one loop."""
        raise NotImplementedError

    def note(self, count: int, loops: int) -> list[str]:
        """What ``count`` rewrites over ``loops`` loops are called in the report."""
        raise NotImplementedError

    def start(self, view: GraphView) -> None:
        """Read what the rewrites need from the graph before any edit."""

    def apply(self, view: GraphView, ctx: PassContext) -> list[str]:
        lib = view.graph_def.library
        position = {f.signature.name: i for i, f in enumerate(lib.function)}
        library = {f.signature.name: f for f in lib.function}
        uses = function_uses(view.graph_def)
        self.start(view)
        count = loops = 0
        for node in [n for n in view if n.op in WHILE_OPS]:
            names = node.attr["body"].func.name, node.attr["cond"].func.name
            if any(name not in library or uses[name] != 1 for name in names) or \
                    view.keeps(node.name):
                continue
            body, cond, made = self.rewrite(view, Loop(node, *(library[n] for n in names)),
                                            library)
            for name, fdef in zip(names, (body, cond), strict=True):
                if fdef is not None:
                    lib.function[position[name]].CopyFrom(fdef)
                    library[name] = fdef
            count += made
            loops += bool(made)
        return self.note(count, loops) if count else []
