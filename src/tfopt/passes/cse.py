"""Merge duplicate subexpressions: same op, same inputs, same attributes (and same bytes).

Hash-based, in topological order, so it is linear in the graph size and whole duplicate
chains merge in one run. Never merges stateful ops, control-flow ops or signature nodes.
"""

from __future__ import annotations

import hashlib

from tfopt.graph.names import InputRef
from tfopt.graph.nodes import LIFTED, const_value
from tfopt.graph.ops import TF1_CONTROL_FLOW_OPS as CONTROL_FLOW_OPS
from tfopt.graph.shapes import is_stateful
from tfopt.graph.view import GraphView
from tfopt.graph.walk import topological_order
from tfopt.passes.base import GraphPass, PassContext, count_note


def node_key(node) -> tuple:
    """What makes two nodes compute the same thing."""
    if node.op == "Const" and LIFTED in node.attr:  # one key: one value (never compared)
        return ("Const", LIFTED, node.attr[LIFTED].s, node.device, tuple(sorted(node.input)))
    if node.op == "Const":
        value = const_value(node)
        digest = hashlib.sha1(value.tobytes() if value.dtype != object
                              else repr(value.tolist()).encode()).hexdigest()
        return ("Const", str(value.dtype), value.shape, digest, node.device,
                tuple(sorted(node.input)))
    attrs = tuple(sorted((k, v.SerializeToString(deterministic=True))
                         for k, v in node.attr.items() if k != "_class"))
    data = tuple(str(InputRef.parse(t)) for t in node.input if not t.startswith("^"))  # x = x:0
    controls = tuple(sorted(t for t in node.input if t.startswith("^")))
    return (node.op, data, controls, attrs, node.device)


class MergeDuplicates(GraphPass):

    def apply(self, view: GraphView, ctx: PassContext) -> list[str]:
        seen: dict[tuple, str] = {}
        merged = 0
        for node in topological_order(view.to_graph_def()):
            node = view.nodes.get(node.name)
            if node is None or view.keeps(node.name) or node.op in CONTROL_FLOW_OPS:
                continue
            if node.op in ("Placeholder", "NoOp") or is_stateful(node.op):
                continue
            key = node_key(node)
            keeper = seen.get(key)
            if keeper is None:
                seen[key] = node.name
                continue
            ports = {ref.port for _, ref in view.consumers(node.name) if not ref.control}
            for port in ports:
                view.replace_uses(InputRef(node.name, port), InputRef(keeper, port),
                                  keep_controls=False)
            view.replace_uses(InputRef(node.name, 0), InputRef(keeper, 0), keep_controls=True)
            view.remove([node.name])
            merged += 1
        return count_note(merged, "duplicate nodes merged")
