"""Read a loop's constant vectors as constants inside its body, so what it computes from them
is folded once instead of every iteration.

Frozen Keras RNN loops receive their weights as loop variables the body passes through; the
body then splits the GRU bias into its input and recurrent halves (``Split`` + two
``Squeeze``) on every step, for the same result each time. A loop input that is a ``Const``
outside and passes through unchanged is the same value inside: its readers in the body and
the condition read a copy of the constant, ``constant_fold`` evaluates what they compute from
it (inside bodies) and the loop variable, now unread, is hoisted and removed by
``lower_control_flow``. Only small constants are copied (biases, lengths, limits): a kernel
gains nothing from being folded and would be stored twice until then.
"""

from __future__ import annotations

import numpy as np

from tfopt.graph.library import body_to_function, function_body, passes_through
from tfopt.graph.names import InputRef
from tfopt.graph.nodes import const_shape, const_value, is_lifted, make_const
from tfopt.graph.view import GraphView
from tfopt.passes.loops import Loop, LoopPass

MAX_ELEMENTS = 4096  # a constant this small is copied into the body (a bias; not a kernel)


def _inlined(fdef, library: dict, values: dict[int, object]):
    """``fdef`` with each argument in ``values`` (index -> Const NodeDef) read as that
    constant; None if nothing reads them or the function cannot be rebuilt."""
    body, results = function_body(fdef)
    view = GraphView(body)
    args = [a.name for a in fdef.signature.input_arg]
    changed = False
    for index, const in values.items():
        if not view.consumers(args[index]):
            continue
        name = view.unique_name(f"{args[index]}/value")
        view.add(make_const(name, const_value(const)))
        view.replace_uses(InputRef(args[index], 0), InputRef(name, 0))
        changed = True
    return body_to_function(fdef, view.to_graph_def(), library, results) if changed else None


class InlineLoopConstants(LoopPass):

    def rewrite(self, view: GraphView, loop: Loop, library: dict) -> tuple[object, object, int]:
        values = {}
        for index, ref in enumerate(view.data_inputs(loop.node)):
            src = view.nodes.get(ref.node)
            if (src is not None and src.op == "Const" and ref.port == 0
                    and not is_lifted(src) and passes_through(loop.body, index)
                    and int(np.prod(const_shape(src))) <= MAX_ELEMENTS):
                values[index] = src
        if not values:
            return None, None, 0
        body, cond = (_inlined(fdef, library, values) for fdef in (loop.body, loop.cond))
        return body, cond, int(body is not None or cond is not None)

    def note(self, count: int, loops: int) -> list[str]:
        return [f"{loops} loops read their constant inputs (biases, limits) as constants in "
                "their bodies"]
