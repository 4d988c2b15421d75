"""Move a ``Squeeze`` below per-channel element-wise ops; cancel it against an ``ExpandDims``.

Keras (and ``tf.nn.conv1d``) run a 1-D convolution as a 2-D one::

    x ─► ExpandDims(-3) ─► Conv2D ─► Squeeze([-3]) ─► BiasAdd ─► Mul(γ') ─► AddV2(β') ─► Relu ─►
         ExpandDims(-3) ─► Conv2D ─► ...

The Squeeze between the conv and its bias, batch norm and activation hides them from
fold_batch_norm and from the runtimes' fusions. An element-wise op whose other operand is a
constant scalar or channel vector gives the same values before or after a Squeeze that keeps
the channel (last) axis, so the two swap (names stay: readers of the element-wise op still
read the squeezed result); a Squeeze directly followed by the ExpandDims that undoes it goes::

    x ─► ExpandDims ─► Conv2D ─► BiasAdd ─► Mul ─► AddV2 ─► Relu ─► Conv2D ─► ...
"""

from __future__ import annotations

from tfopt.graph.names import InputRef
from tfopt.graph.nodes import copied_attrs, get_attr, set_attrs
from tfopt.graph.ops import BINARY_ELEMENTWISE, UNARY_ELEMENTWISE
from tfopt.graph.shapes import StaticInfo
from tfopt.graph.view import GraphView
from tfopt.passes.base import GraphPass, PassContext, count_note

# Element-wise with a constant operand (input 1), the data in input 0.
_WITH_CONSTANT = BINARY_ELEMENTWISE | {"BiasAdd"}
_SWEEPS = 8


class SqueezeSink(GraphPass):

    def apply(self, view: GraphView, ctx: PassContext) -> list[str]:
        moved = cancelled = 0
        if not any(node.op == "Squeeze" for node in view):
            return []  # spare the shape inference
        for _ in range(_SWEEPS):  # one step down per sweep: shapes are re-read between sweeps
            info, touched = StaticInfo(view.to_graph_def()), set()
            before = moved + cancelled
            for node in list(view):
                squeeze = view.input_node(node, 0) if node.name in view else None
                if (squeeze is None or squeeze.op != "Squeeze" or squeeze.name in touched
                        or view.sole_reader(squeeze.name) is not node):
                    continue
                rank = info.rank(str(view.data_inputs(squeeze)[0]))
                if not _keeps_channels(squeeze, rank):
                    continue
                if node.op == "ExpandDims" and _undoes(node, squeeze, view, rank):
                    view.bypass(node, [view.data_inputs(squeeze)[0]])
                    view.remove([squeeze.name])
                    cancelled += 1
                elif _commutes(node, view):
                    _swap(view, squeeze, node)
                    moved += 1
                else:
                    continue
                touched.update((node.name, squeeze.name))
            if moved + cancelled == before:
                break
        return (count_note(moved, "Squeezes moved below element-wise ops")
                + count_note(cancelled, "Squeeze -> ExpandDims pairs removed"))


def _keeps_channels(squeeze, rank: int | None) -> bool:
    """Explicit squeeze dims of an input of known rank, none of them the last axis."""
    dims = list(get_attr(squeeze, "squeeze_dims", []))
    if not dims or rank is None:
        return False
    return all(d % rank != rank - 1 for d in dims)


def _undoes(expand, squeeze, view: GraphView, rank: int) -> bool:
    dims = list(get_attr(squeeze, "squeeze_dims", []))
    axis = view.const_input(expand, 1)
    if len(dims) != 1 or axis is None or axis.size != 1:
        return False
    return dims[0] % rank == int(axis.reshape(())) % rank


def _commutes(node, view: GraphView) -> bool:
    """``node(Squeeze(y)) == Squeeze(node(y))``: unary, or a constant scalar/vector operand."""
    if view.control_inputs(node):
        return False
    if node.op in UNARY_ELEMENTWISE:
        return True
    if node.op not in _WITH_CONSTANT or len(view.data_inputs(node)) != 2:
        return False
    if node.op == "BiasAdd" and get_attr(node, "data_format", "NHWC") != "NHWC":
        return False
    value = view.const_input(node, 1)
    return value is not None and value.ndim <= 1


def _swap(view: GraphView, squeeze, node) -> None:
    """``y ─► squeeze ─► node`` becomes ``y ─► squeeze' ─► node'``: the squeeze's node now
    computes the element-wise op on ``y`` and ``node`` squeezes it, so readers of ``node``
    keep reading the same (squeezed) values."""
    source = view.data_inputs(squeeze)[0]
    squeeze_controls = [str(r) for r in view.control_inputs(squeeze)]
    op, attrs = node.op, copied_attrs(node)
    rest = [str(r) for r in view.data_inputs(node)[1:]]
    squeeze_attrs = copied_attrs(squeeze)
    view.retype(squeeze, op)
    set_attrs(squeeze, attrs)
    view.set_inputs(squeeze, [str(source), *rest, *squeeze_controls])
    view.retype(node, "Squeeze")
    set_attrs(node, squeeze_attrs)
    view.set_inputs(node, [str(InputRef(squeeze.name))])

