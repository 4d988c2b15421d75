"""Multiply-add FLOPs of the nodes that dominate inference (convolutions, matmuls, einsums),
at static shapes: what ``tfopt analyze`` reports, and how the XLA stage judges whether a
cluster is worth timing."""

from __future__ import annotations

import numpy as np

from tfopt.graph.nodes import get_attr
from tfopt.graph.ops import BATCH_MATMUL_OPS

CONV_OPS = {"Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "_FusedDepthwiseConv2dNative",
            "MatMul", "_FusedMatMul", "Conv2DBackpropInput"}
MATMUL_OPS = {"MatMul", "_FusedMatMul"}
FLOP_OPS = CONV_OPS | BATCH_MATMUL_OPS | {"Einsum"}


def einsum_flops(equation: str, shapes: list[list[int]]) -> int | None:
    """2 x the product of every index's size: one multiply-add per point of the iteration
    space of a two-operand contraction ("btd,dh->bth": 2*b*t*d*h)."""
    lhs = equation.replace(" ", "").split("->")[0]
    subs = lhs.split(",")
    if len(subs) != len(shapes):
        return None
    sizes: dict[str, int] = {}
    for sub, shape in zip(subs, shapes, strict=True):
        if "..." in sub:
            head, tail = sub.split("...")
            extra = len(shape) - len(head) - len(tail)
            sub = head + "".join(chr(0x100 + i) for i in range(extra)) + tail
        if len(sub) != len(shape):
            return None
        for letter, dim in zip(sub, shape, strict=True):
            sizes[letter] = max(sizes.get(letter, 1), dim)
    return 2 * int(np.prod(list(sizes.values()), dtype=np.int64))


def node_flops(node, static) -> int | None:
    """Multiply-add FLOPs of one node at the static shapes, or None if a shape is unknown."""
    out = static.shape(node.name + ":0")
    ins = [static.shape(t) for t in node.input if not t.startswith("^")]
    if node.op == "Conv2DBackpropInput":
        ins = ins[1:3]  # (filter, out_backprop); the output is what the transposed conv makes
    shapes = [s.as_list() if s is not None and s.rank is not None else None for s in ins]
    if out is None or out.rank is None or any(s is None or None in s for s in shapes[:2]) \
            or None in out.as_list():
        return None
    size = int(np.prod(out.as_list(), dtype=np.int64))
    if node.op == "Einsum":
        return einsum_flops(get_attr(node, "equation", ""), shapes)
    if node.op in MATMUL_OPS:
        a = shapes[0]
        return 2 * size * (a[0] if get_attr(node, "transpose_a") else a[1])
    if node.op in BATCH_MATMUL_OPS:
        a = shapes[0]
        return 2 * size * (a[-2] if get_attr(node, "adj_x") else a[-1])
    w = shapes[1] if node.op != "Conv2DBackpropInput" else shapes[0]
    if node.op == "Conv2DBackpropInput":  # every input pixel meets kh*kw*cout weights
        return 2 * int(np.prod(shapes[1], dtype=np.int64)) * w[0] * w[1] * w[2]
    if "Depthwise" in node.op:  # each output channel sees kh*kw inputs
        return 2 * size * w[0] * w[1]
    return 2 * size * w[0] * w[1] * w[2]  # Conv2D (grouped too: w[2] is per group)


def graph_flops(graph_def, static, names: set[str] | None = None) -> tuple[int, int]:
    """Total FLOPs of the matmul/conv/einsum nodes (only those in ``names`` if given), and
    how many had unknown shapes."""
    total = unknown = 0
    for node in graph_def.node:
        if node.op not in FLOP_OPS or (names is not None and node.name not in names):
            continue
        flops = node_flops(node, static)
        if flops is None:
            unknown += 1
        else:
            total += flops
    return total, unknown


def concrete_inputs(graph_def, inputs: dict) -> tuple[object, str]:
    """A copy of ``graph_def`` whose input placeholders have concrete shapes (batch 1, the
    verification defaults for other unknown dims), and what was assumed: FLOPs need sizes."""
    from tfopt.graph.names import node_of
    from tfopt.verify.inputs import resolve_shape

    graph_def = type(graph_def).FromString(graph_def.SerializeToString())
    by_name = {n.name: n for n in graph_def.node}
    assumed = []
    for key, info in inputs.items():
        node = by_name.get(node_of(info.tensor))
        if node is None or node.op != "Placeholder":
            continue
        try:
            shape, note = resolve_shape(key, info, 1, {})
        except Exception:
            continue
        if note:
            assumed.append(f"{key} {list(shape)}")
        node.attr["shape"].shape.Clear()
        for d in shape:
            node.attr["shape"].shape.dim.add(size=d)
    return graph_def, ", ".join(assumed)


def dense_dtypes(graph_def) -> list[str]:
    """The dtype name each convolution, matmul and einsum computes in (main graph and
    functions): what a model computes in, whatever its inputs and outputs are (Keras
    ``mixed_bfloat16`` takes and returns float32)."""
    from tfopt.graph.library import all_nodes

    return [get_attr(n, "T").name for n in all_nodes(graph_def)
            if n.op in FLOP_OPS and get_attr(n, "T") is not None]
