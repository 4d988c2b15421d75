"""Resolve TF1 ``Switch``/``Merge`` conditionals whose predicate is a constant.

TF1 exports drive dropout and batch-norm mode with a training flag; once that flag is folded to
its default the untaken branch is dead weight. Readers of the taken ``Switch`` output read the
data directly, every node fed only by the untaken output is removed, and each ``Merge`` left
with one live input is replaced by that input (its ``value_index`` output by a constant).
"""

from __future__ import annotations

import numpy as np

from tfopt.graph.names import InputRef
from tfopt.graph.view import GraphView
from tfopt.passes.base import GraphPass, PassContext, count_note

SWITCHES = {"Switch", "RefSwitch"}
MERGES = {"Merge", "RefMerge"}


class ResolveConstantSwitch(GraphPass):

    def apply(self, view: GraphView, ctx: PassContext) -> list[str]:
        resolved = 0
        for switch in view:
            if switch.name not in view or switch.op not in SWITCHES:
                continue
            pred = view.const_input(switch, 1)
            if pred is None or pred.size != 1 or view.keeps(switch.name):
                continue
            taken = 1 if bool(pred.reshape(())) else 0
            if self._resolve(view, switch, taken, ctx):
                resolved += 1
        return count_note(resolved, "constant-predicate Switch nodes resolved")

    def _resolve(self, view: GraphView, switch, taken: int, ctx: PassContext) -> bool:
        data = view.data_inputs(switch)[0]
        # Deadness spreads from the untaken output through every reader except Merge.
        dead: set[str] = set()
        merges: set[str] = set()
        frontier = [(switch.name, 1 - taken)]
        while frontier:
            name, port = frontier.pop()
            for user, ref in view.consumers(name):
                if port is not None and not ref.control and ref.port != port:
                    continue
                if port is not None and ref.control:
                    continue  # control edges on the Switch itself are not dead-carrying here
                if user.op in MERGES:
                    merges.add(user.name)
                    continue
                if user.name in dead:
                    continue
                if view.keeps(user.name):
                    return False
                dead.add(user.name)
                frontier.append((user.name, None))
        for merge_name in merges:
            merge = view.nodes[merge_name]
            live = [(i, r) for i, r in enumerate(view.data_inputs(merge))
                    if r.node not in dead and not (r.node == switch.name and r.port != taken)]
            if len(live) != 1 or view.keeps(merge_name):
                return False
        view.replace_uses(InputRef(switch.name, taken), data, keep_controls=False)
        view.remove(dead)
        for merge_name in merges:
            merge = view.nodes[merge_name]
            refs = view.data_inputs(merge)
            live = [(i, r) for i, r in enumerate(refs)
                    if r.node in view and not (r.node == switch.name and r.port != taken)]
            index, source = live[0]
            if view.data_consumers(merge_name, 1):
                const = view.add_const(merge_name + "/value_index", np.array(index, np.int32))
                view.replace_uses(InputRef(merge_name, 1), InputRef(const),
                                  keep_controls=False)
            view.set_inputs(merge, [str(source)] + [str(r) for r in view.control_inputs(merge)])
            view.bypass(merge, [source])
        if not view.consumers(switch.name):
            view.remove([switch.name])
        return True
