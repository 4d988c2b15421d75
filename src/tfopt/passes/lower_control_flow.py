"""Lower functional control flow (``While``, ``If``, ``Case``) into the stored graph.

TF2 models keep loops as functional ``While`` ops whose cond and body are library functions.
The runtime lowers them to ``Enter/Merge/Switch/NextIteration/Exit`` frames when the graph
loads, *after* Grappler has optimized the graph, so the loop body is never optimized together
with the graph around it. TensorFlow's own freezing (``convert_variables_to_constants_v2``
with ``lower_control_flow=True``) lowers them before storing; a Keras LSTM -> GRU classifier
lowered this way, with its weights entering once (below), ran 1.3x its original (the
functional form 1.0x)::

    x ─► While(cond=c, body=b) ─► y        x ─► Enter ─► Merge ─► Switch ─► Exit ─► y
                                      =>                  ▲         │
                                                          └ NextIteration ◄─ [b's nodes]

Lowering a frozen model's loop alone is not enough: its weights, once variables read inside
the body, are now ordinary loop variables, each carried through Merge -> Switch ->
NextIteration every iteration. TensorFlow's freezing lowers before it freezes, so the weights
enter as constants. :func:`hoist_invariants` gives the same form: a loop variable the body
passes through unchanged enters once, ``Enter(is_constant=True)``, its per-iteration
Merge/Switch/NextIteration/Exit go, and readers after the loop read the value it entered with::

    w ─► Enter ─► Merge ─► Switch ─:1─► MatMul          w ─► Enter(is_constant) ─► MatMul
                    ▲         └─:0─► Exit ─► y    =>    w ─► y
                    └── NextIteration ◄─ (Switch:1)

Only nodes the model marks ``_lower_using_switch_merge=True`` are lowered (those it would
lower at load anyway); loops inside XLA clusters stay as they are. Grappler's function
optimizer does the rewrite (the one TensorFlow's freezing runs), with every signature input,
output, protected node and load-time initializer as a fetch so nothing is pruned or renamed.
It runs last: every other pass reads loop bodies as functions.
"""

from __future__ import annotations

from collections import Counter

from tensorflow.core.framework import graph_pb2
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2

from tfopt.graph.names import InputRef, node_of
from tfopt.graph.nodes import get_attr, set_attr
from tfopt.graph.ops import CONTROL_FLOW_OPS, LOWERING_ATTR
from tfopt.graph.view import GraphView
from tfopt.passes.base import GraphPass, PassContext, PassResult, unreachable
from tfopt.passes.identity import RemoveIdentities


def lowerable(graph_def: graph_pb2.GraphDef) -> list[str]:
    """Main-graph control-flow nodes the model marks to be lowered."""
    return [node.name for node in graph_def.node
            if node.op in CONTROL_FLOW_OPS and get_attr(node, LOWERING_ATTR, False)]


def lower(graph_def: graph_pb2.GraphDef, fetches: list[str]) -> graph_pb2.GraphDef:
    """Grappler's function optimizer alone: lowers marked control flow, inlines calls."""
    from tensorflow.python.grappler import tf_optimizer

    meta = meta_graph_pb2.MetaGraphDef()
    meta.graph_def.CopyFrom(graph_def)
    meta.collection_def["train_op"].node_list.value.extend(fetches)
    config = config_pb2.ConfigProto()
    rewrite = config.graph_options.rewrite_options
    rewrite.min_graph_nodes = -1
    rewrite.optimizers.append("function")
    return tf_optimizer.OptimizeGraph(config, meta)


class LowerControlFlow(GraphPass):

    def run(self, graph_def: graph_pb2.GraphDef, ctx: PassContext) -> PassResult:
        names = lowerable(graph_def)
        if not names:
            return PassResult(graph_def, False)
        fetches = list(dict.fromkeys([node_of(t) for t in ctx.outputs + ctx.inputs]
                                     + sorted(ctx.protected) + list(ctx.init_ops)))
        lowered = lower(graph_def, fetches)
        if lowerable(lowered) == names:  # Grappler declined (nothing it could lower)
            return PassResult(graph_def, False)
        view = GraphView(lowered, kept=ctx.protected)
        hoisted = hoist_invariants(view)
        # Inlined loop conditions leave an Identity per loop variable they do not read: run
        # every iteration for nothing, and a .pb's outputs (the nodes nobody reads) ambiguous
        dead = unreachable(view, ctx)
        view.remove(dead)
        # Inlining a body leaves an Identity per argument and result and NoOps that gather
        # control edges, each run every iteration; spliced as the identity pass does (it keeps
        # the Identity after a Switch, the frame's pivot)
        spliced = RemoveIdentities().apply(view, ctx)
        lowered = view.to_graph_def()
        ops = Counter(node.op for node in graph_def.node if node.name in names)
        kinds = ", ".join(f"{n} {op}" for op, n in sorted(ops.items()))
        notes = [f"{kinds} lowered to Switch/Merge frames"]
        if hoisted:
            notes.append(f"{hoisted} loop-invariant inputs (weights, limits, merged duplicates) "
                         "enter once as constants")
        if dead:
            notes.append(f"{len(dead)} nodes the lowered loops left unread removed")
        notes.extend(f"inlined bodies: {note}" for note in spliced)
        return PassResult(lowered, True, notes)


def hoist_invariants(view: GraphView) -> int:
    """Turn each pass-through loop variable into a constant Enter (see the module docstring);
    returns how many."""
    hoisted = 0
    for merge in [n for n in view if n.op == "Merge"]:
        refs = view.data_inputs(merge)
        if len(refs) != 2 or view.control_inputs(merge):
            continue
        enter, nxt = view.nodes.get(refs[0].node), view.nodes.get(refs[1].node)
        if (enter is None or nxt is None or enter.op != "Enter" or nxt.op != "NextIteration"
                or get_attr(enter, "is_constant", False)):
            continue
        users = view.consumers(merge.name)
        switches = [n for n, ref in users if n.op == "Switch" and not ref.control]
        if len(switches) != 1 or any(ref.control or ref.port != 0 for _, ref in users):
            continue
        # Besides its Switch, a Merge feeds the inlined condition's argument: an Identity
        # nobody reads when the condition does not use this variable; when it does (Keras'
        # counter < maximum_iterations), it reads the constant the variable always holds.
        unread = [n.name for n, ref in users if n.op == "Identity" and not ref.control
                  and not view.consumers(n.name)]
        switch = switches[0]
        source, chain = view.through_identities(view.data_inputs(nxt)[0])
        if source != InputRef(switch.name, 1) or any(
                ref.control for _, ref in view.consumers(switch.name)):
            continue
        exits = view.data_consumers(switch.name, 0)
        if any(e.op != "Exit" for e in exits) or any(
                view.keeps(n) for n in (merge.name, nxt.name, switch.name,
                                        *(e.name for e in exits))):
            continue
        outside = view.data_inputs(enter)[0]
        set_attr(enter, "is_constant", True)
        view.replace_uses(InputRef(switch.name, 1), InputRef(enter.name, 0))
        view.replace_uses(InputRef(merge.name, 0), InputRef(enter.name, 0))
        for exit_node in exits:
            view.replace_uses(InputRef(exit_node.name, 0), outside)
        view.remove([merge.name, nxt.name, switch.name, *(e.name for e in exits), *unread])
        view.remove([name for name in chain if not view.consumers(name)
                     and not view.keeps(name)])
        hoisted += 1
    return hoisted
