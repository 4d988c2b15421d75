"""Drop control edges that data edges already imply.

A control input ``^X`` only orders X before the node; when X already reaches the node through
its data inputs, the edge orders nothing new (Grappler's dependency optimizer drops such edges
at load time too). In the stored graph it is not harmless: freezing a Keras export leaves one
from a call's control output to the signature's output Identity, and a node with a control
input stays out of the XLA cluster, which then cannot hold anything upstream of it::

    lookup -> ... -> BiasAdd -> Identity(output)         lookup -> ... -> BiasAdd -> Identity
       \\______________________________^ (control)   =>   (the data path already orders them)

Graphs with TF1 control flow are left alone: there control edges place nodes in loop frames.
Function bodies too: there a control edge may order a stateful op the data path does not show.
"""

from __future__ import annotations

from tfopt.graph.names import InputRef
from tfopt.graph.ops import TF1_CONTROL_FLOW_OPS
from tfopt.graph.view import GraphView
from tfopt.graph.walk import topological_order
from tfopt.passes.base import GraphPass, PassContext, count_note

# Ancestor sets are bit sets of the graph's size: past this many nodes (~50 MB of them at
# worst) the pass leaves the graph as it is.
MAX_NODES = 20000


class DropImpliedControls(GraphPass):

    def apply(self, view: GraphView, ctx: PassContext) -> list[str]:
        graph_def = view.to_graph_def()
        if not any(t.startswith("^") for n in graph_def.node for t in n.input):
            return []
        if any(n.op in TF1_CONTROL_FLOW_OPS for n in graph_def.node):
            return []
        order = topological_order(graph_def)
        if len(order) > MAX_NODES:
            return []
        bit = {node.name: 1 << i for i, node in enumerate(order)}
        ancestors: dict[str, int] = {}  # data ancestors of each node, as a bit set
        for node in order:
            mask = 0
            for ref in (InputRef.parse(t) for t in node.input):
                if not ref.control and ref.node in bit:
                    mask |= ancestors.get(ref.node, 0) | bit[ref.node]
            ancestors[node.name] = mask
        dropped = 0
        for node in order:
            implied = [t for t in node.input if t.startswith("^") and t[1:] in bit
                       and ancestors[node.name] & bit[t[1:]]]
            for text in implied:
                view.drop_input(view.nodes[node.name], text)
            dropped += len(implied)
        return count_note(dropped, "control edges implied by data edges dropped")
