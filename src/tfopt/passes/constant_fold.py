"""Evaluate, once, every subgraph whose inputs are all constants, and store the results.

After freezing, weights preprocessing (``Rsqrt(var + eps) * gamma``, casts, reshapes of
weights, shape arithmetic on static shapes) runs on every call otherwise. Stateful and random
ops are never folded, nor is a result bigger than ``max_const_bytes`` (unless it is no bigger
than the constants it replaces).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfopt.graph.names import InputRef
from tfopt.graph.nodes import get_attr, tensor_bytes
from tfopt.graph.shapes import StaticInfo, is_stateful
from tfopt.graph.view import GraphView
from tfopt.graph.walk import topological_order
from tfopt.passes.base import GraphPass, PassContext, count_note

# Never folded even when their inputs are constant.
NOT_FOLDABLE = {"Const", "Placeholder", "PlaceholderWithDefault", "Switch", "RefSwitch", "Merge",
                "RefMerge", "Enter", "RefEnter", "Exit", "RefExit", "NextIteration", "LoopCond",
                "If", "StatelessIf", "While", "StatelessWhile", "PartitionedCall",
                "StatefulPartitionedCall", "Identity", "IdentityN", "NoOp", "Assert",
                "ControlTrigger", "_Retval", "_Arg"}
# Ops whose value depends only on the static shape of their input.
SHAPE_OPS = {"Shape", "Size", "Rank"}
UNREPRESENTABLE = {tf.resource, tf.variant}


class ConstantFold(GraphPass):

    def apply(self, view: GraphView, ctx: PassContext) -> list[str]:
        graph_def = view.to_graph_def()
        info = StaticInfo(graph_def)
        foldable, shape_values = _foldable(view, ctx, graph_def, info)
        # Only what a non-folded node reads needs a value: the frontier.
        frontier: dict[str, set[int]] = {}
        for name in foldable:
            for consumer, ref in view.consumers(name):
                if consumer.name not in foldable and not ref.control:
                    frontier.setdefault(name, set()).add(ref.port)
        if not frontier:
            return []
        fetch = [(n, p) for n in sorted(frontier) for p in sorted(frontier[n])
                 if n not in shape_values]
        # Shape-derived values are fed, so evaluation never needs the model's real inputs;
        # so are weights a large graph was imported without (see StaticInfo).
        weights = {ref.node for name in foldable for ref in view.data_inputs(view.nodes[name])}
        overrides = {**info.weight_feeds(graph_def, weights, view.weights),
                     **{f"{n}:0": v for n, v in shape_values.items()}}
        values = (dict(zip(fetch, _evaluate(info.graph, fetch, overrides), strict=True))
                  if fetch else {})
        for name, value in shape_values.items():
            values[(name, 0)] = value

        folded = 0
        for (name, port), value in values.items():
            if name not in frontier or value.dtype == object and value.size == 0:
                continue
            if value.nbytes > ctx.max_const_bytes and value.nbytes > _input_bytes(view, name):
                continue
            const = view.add_const(f"{name}/folded", value, view.nodes[name].device)
            view.replace_uses(InputRef(name, port), InputRef(const), keep_controls=False)
            folded += 1
        # Folded nodes that only control consumers still read are dropped: a Const has no
        # side effect to order.
        removed = 0
        while dead := [n for n in foldable if n in view and not view.data_consumers(n)]:
            view.remove(dead)
            removed += len(dead)
        return count_note(folded, "constant tensors folded") + count_note(
            removed, "nodes evaluated away")


def _foldable(view: GraphView, ctx: PassContext, graph_def, info: StaticInfo
              ) -> tuple[set[str], dict[str, np.ndarray]]:
    """Nodes whose value is known before the model runs (all inputs constant, or a shape
    that is static), and the values of the shape-derived ones."""
    foldable: set[str] = set()
    shape_values: dict[str, np.ndarray] = {}
    for node in (view.nodes[n.name] for n in topological_order(graph_def)):
        if view.keeps(node.name) or node.op in NOT_FOLDABLE:
            continue
        if node.op in SHAPE_OPS or node.op == "StridedSlice":
            # tf.shape(x), or tf.shape(x)[1] where dim 1 is static
            value = (_static_shape_value(node, view, info) if node.op in SHAPE_OPS
                     else _static_shape_slice(node, view, info))
            if value is not None:
                shape_values[node.name] = value
                foldable.add(node.name)
            if node.op in SHAPE_OPS or value is not None:
                continue
        if is_stateful(node.op) or not node.input:
            continue
        if not all(_is_const(view, ref.node, foldable) for ref in map(InputRef.parse, node.input)):
            continue
        if any(info.dtype(f"{node.name}:{i}") in UNREPRESENTABLE
               for i in range(_num_outputs(info, node.name))):
            continue
        foldable.add(node.name)
    return foldable, shape_values


def _is_const(view: GraphView, name: str, foldable: set[str]) -> bool:
    """A Const with control inputs lives in a TF1 loop frame or cond branch (its ^pivot):
    a folded result would leave that frame, so such constants do not count."""
    node = view.nodes.get(name)
    if node is None:
        return False
    if node.op == "Const":
        return not any(t.startswith("^") for t in node.input)
    return name in foldable


def _num_outputs(info: StaticInfo, name: str) -> int:
    try:
        return info.num_outputs(name)
    except (KeyError, ValueError):
        return 0


def _static_shape_value(node, view: GraphView, info: StaticInfo) -> np.ndarray | None:
    src = view.data_inputs(node)
    if not src:
        return None
    shape = info.shape(src[0].tensor)
    if shape is None or not shape.is_fully_defined():
        return None
    dtype = get_attr(node, "out_type", tf.int32).as_numpy_dtype
    dims = shape.as_list()
    if node.op == "Shape":
        return np.array(dims, dtype=dtype)
    if node.op == "Size":
        return np.array(int(np.prod(dims)), dtype=dtype)
    return np.array(len(dims), dtype=np.int32)


def _static_shape_slice(node, view: GraphView, info: StaticInfo) -> np.ndarray | None:
    """``Shape(x)[i]`` or ``Shape(x)[a:b]`` when the selected dimensions are static, even if
    others (the batch) are not: 1-D slices with unit stride and no ellipsis/new-axis masks."""
    shape_node = view.input_node(node, 0)
    if shape_node is None or shape_node.op != "Shape":
        return None
    if any(get_attr(node, m, 0) for m in ("ellipsis_mask", "new_axis_mask")):
        return None
    begin, end, strides = (view.const_input(node, i) for i in (1, 2, 3))
    if begin is None or end is None or strides is None or begin.size != 1 or strides[0] != 1:
        return None
    dims = info.shape(view.data_inputs(shape_node)[0].tensor)
    if dims is None or dims.rank is None:
        return None
    dims = dims.as_list()
    dtype = get_attr(shape_node, "out_type", tf.int32).as_numpy_dtype
    if get_attr(node, "shrink_axis_mask", 0) & 1:
        index = int(begin[0])
        if not -len(dims) <= index < len(dims) or dims[index] is None:
            return None
        return np.array(dims[index], dtype=dtype)
    start = None if get_attr(node, "begin_mask", 0) & 1 else int(begin[0])
    stop = None if get_attr(node, "end_mask", 0) & 1 else int(end[0])
    picked = dims[start:stop]
    if any(d is None for d in picked):
        return None
    return np.array(picked, dtype=dtype)


def _evaluate(graph: tf.Graph, fetch: list[tuple[str, int]],
              overrides: dict[str, np.ndarray]) -> list[np.ndarray]:
    config = tf.compat.v1.ConfigProto()
    config.graph_options.rewrite_options.disable_meta_optimizer = True
    with tf.compat.v1.Session(graph=graph, config=config) as sess:
        return sess.run([f"{n}:{p}" for n, p in fetch], overrides)


def _input_bytes(view: GraphView, name: str) -> int:
    total = 0
    for ref in view.data_inputs(view.nodes[name]):
        src = view.nodes.get(ref.node)
        if src is not None and src.op == "Const":
            total += tensor_bytes(src.attr["value"].tensor)
    return total
