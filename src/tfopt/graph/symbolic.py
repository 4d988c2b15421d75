"""Shapes whose unknown dimensions have names: where TensorFlow's shape inference says
``[?, 64]`` for two tensors, this says ``[B, 64]`` for both when both batch dimensions come
from the same input's, so two tensors can be proven to have the same shape for every batch.

A dimension is an ``int`` or a symbol (a tuple naming the placeholder dimension it comes
from). Shapes propagate through the ops a Keras model's shape arithmetic and recurrent cells
use (element-wise ops with broadcasting, MatMul, slices, Gather, Transpose, Split, Fill of a
packed shape...); anything else is unknown (None), and unknown never proves anything.
"""

from __future__ import annotations

from tfopt.graph.names import InputRef
from tfopt.graph.nodes import const_shape, get_attr
from tfopt.graph.view import GraphView

Dim = int | tuple

UNARY = frozenset({
    "Identity", "Snapshot", "StopGradient", "ZerosLike", "OnesLike", "Cast", "Neg", "Abs",
    "Sigmoid", "Tanh", "Relu", "Relu6", "Elu", "Selu", "Softplus", "Exp", "Log", "Sqrt",
    "Rsqrt", "Square", "Sign", "Floor", "Ceil", "Round", "Erf", "LogicalNot", "Reciprocal"})
BROADCASTING = frozenset({
    "Add", "AddV2", "Sub", "Mul", "RealDiv", "Div", "DivNoNan", "Maximum", "Minimum", "Pow",
    "SquaredDifference", "FloorDiv", "FloorMod", "Less", "LessEqual", "Greater",
    "GreaterEqual", "Equal", "NotEqual", "LogicalAnd", "LogicalOr", "SelectV2"})


def _broadcast(shapes: list[tuple[Dim, ...]]) -> tuple[Dim, ...] | None:
    rank = max(len(s) for s in shapes)
    out: list[Dim] = []
    for i in range(rank):
        dims = {s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0} - {1}
        if len(dims) > 1:
            return None  # two different (or not provably equal) sizes
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def _sliced(dims: tuple, node, view: GraphView) -> tuple | None:
    """``dims`` (a shape or a vector's elements) through a StridedSlice with constant
    bounds; a shrunk axis is dropped (the caller takes a scalar from a 1-element result)."""
    begin, end, strides = (view.const_input(node, i) for i in (1, 2, 3))
    if begin is None or end is None or strides is None or get_attr(node, "ellipsis_mask", 0) \
            or get_attr(node, "new_axis_mask", 0):
        return None
    masks = {k: get_attr(node, k, 0) for k in ("begin_mask", "end_mask", "shrink_axis_mask")}
    out = []
    for i, dim in enumerate(dims):
        if i >= begin.size:
            out.append(dim)
            continue
        b, e, s = int(begin[i]), int(end[i]), int(strides[i])
        whole = masks["begin_mask"] >> i & 1 and masks["end_mask"] >> i & 1 and s == 1
        if masks["shrink_axis_mask"] >> i & 1:
            continue
        if whole:
            out.append(dim)
        elif isinstance(dim, int):
            b = None if masks["begin_mask"] >> i & 1 else b
            e = None if masks["end_mask"] >> i & 1 else e
            out.append(len(range(dim)[slice(b, e, s)]))
        else:
            return None
    return tuple(out)


class SymbolicShapes:
    """Symbolic shapes of a graph's tensors (memoised; the graph must not change)."""

    def __init__(self, view: GraphView):
        self.view = view
        self._shapes: dict[str, tuple[Dim, ...] | None] = {}

    def shape(self, ref: InputRef, depth: int = 64) -> tuple[Dim, ...] | None:
        key = str(ref)
        if key not in self._shapes:
            self._shapes[key] = self._shape(ref, depth) if depth > 0 else None
        return self._shapes[key]

    def value(self, ref: InputRef, depth: int = 64) -> tuple[Dim, ...] | Dim | None:
        """An integer tensor's elements as dimensions (a vector: a tuple; a scalar: one)."""
        node = self.view.nodes.get(ref.node)
        if node is None or depth <= 0:
            return None
        op, refs = node.op, self.view.data_inputs(node)
        if op == "Const":
            value = self.view.value(node)
            if value.dtype.kind not in "iu" or value.ndim > 1:
                return None
            return tuple(int(v) for v in value) if value.ndim else int(value)
        if op == "Shape":
            return self.shape(refs[0], depth - 1)
        if op in ("Identity", "Cast"):
            return self.value(refs[0], depth - 1)
        if op == "Pack":
            items = [self.value(r, depth - 1) for r in refs]
            return None if any(i is None or isinstance(i, tuple) and not _is_symbol(i)
                               for i in items) else tuple(items)
        if op == "ConcatV2":
            parts = [self.value(r, depth - 1) for r in refs[:-1]]
            if any(not isinstance(p, tuple) or _is_symbol(p) for p in parts):
                return None
            return tuple(d for p in parts for d in p)
        if op == "StridedSlice":
            vector = self.value(refs[0], depth - 1)
            if not isinstance(vector, tuple) or _is_symbol(vector):
                return None
            out = _sliced(vector, node, self.view)
            if out is None:
                return None
            shrink = get_attr(node, "shrink_axis_mask", 0) & 1
            return (out if not shrink else vector[int(self.view.const_input(node, 1)[0])])
        return None

    def _shape(self, ref: InputRef, depth: int) -> tuple[Dim, ...] | None:
        node = self.view.nodes.get(ref.node)
        if node is None:
            return None
        op, refs = node.op, self.view.data_inputs(node)
        if op == "Placeholder":
            declared = node.attr["shape"].shape
            if declared.unknown_rank:
                return None
            return tuple(d.size if d.size >= 0 else ("dim", node.name, i)
                         for i, d in enumerate(declared.dim))
        if op == "Const":
            return const_shape(node)
        if ref.port != 0 and op not in ("Split", "SplitV"):
            return None
        sub = [lambda r=r: self.shape(r, depth - 1) for r in refs]
        if op in UNARY or op == "BiasAdd":
            return sub[0]()
        if op in BROADCASTING:
            shapes = [s() for s in sub]
            return None if any(s is None for s in shapes) else _broadcast(shapes)
        if op == "MatMul":
            a, b = sub[0](), sub[1]()
            if a is None or b is None or len(a) != 2 or len(b) != 2:
                return None
            return (a[1] if get_attr(node, "transpose_a", False) else a[0],
                    b[0] if get_attr(node, "transpose_b", False) else b[1])
        if op == "Transpose":
            x, perm = sub[0](), self.view.const_input(node, 1)
            return None if x is None or perm is None else tuple(x[int(p)] for p in perm)
        if op == "GatherV2":
            params, indices = sub[0](), sub[1]()
            axis = self.view.const_input(node, 2)
            if params is None or indices is None or axis is None or \
                    get_attr(node, "batch_dims", 0):
                return None
            axis = int(axis) % len(params)
            return params[:axis] + indices + params[axis + 1:]
        if op == "StridedSlice":
            x = sub[0]()
            return None if x is None else _sliced(x, node, self.view)
        if op == "Fill":
            dims = self.value(refs[0], depth - 1)
            return dims if isinstance(dims, tuple) and not _is_symbol(dims) else None
        if op in ("ExpandDims", "Squeeze"):
            return self._expand_or_squeeze(node, sub[0]())
        if op == "Split":
            axis, x = self.view.const_input(node, 0), sub[1]()
            parts = get_attr(node, "num_split", 1)
            if x is None or axis is None or not isinstance(x[int(axis) % len(x)], int):
                return None
            axis = int(axis) % len(x)
            return x[:axis] + (x[axis] // parts,) + x[axis + 1:]
        if op == "SplitV":
            return self._split_v(node, ref.port, sub[0]())
        return None

    def _split_v(self, node, port: int, x: tuple | None) -> tuple | None:
        sizes, axis = self.view.const_input(node, 1), self.view.const_input(node, 2)
        if x is None or sizes is None or axis is None:
            return None
        axis = int(axis) % len(x)
        size = int(sizes[port])
        if size < 0:  # the rest of the axis
            if not isinstance(x[axis], int):
                return None
            size = x[axis] - int(sizes.sum()) - 1
        return x[:axis] + (size,) + x[axis + 1:]

    def _expand_or_squeeze(self, node, x: tuple | None) -> tuple | None:
        if x is None:
            return None
        if node.op == "ExpandDims":
            axis = self.view.const_input(node, 1)
            if axis is None:
                return None
            axis = int(axis) % (len(x) + 1)
            return x[:axis] + (1,) + x[axis:]
        dims = get_attr(node, "squeeze_dims", [])
        if not dims and any(not isinstance(d, int) for d in x):
            return None  # an unknown dimension of 1 would be squeezed too
        dims = dims or [i for i, d in enumerate(x) if d == 1]
        dims = {int(d) % len(x) for d in dims}
        return tuple(d for i, d in enumerate(x) if i not in dims)


def _is_symbol(value) -> bool:
    return isinstance(value, tuple) and len(value) == 3 and value[0] == "dim"


def same_shape(shapes: SymbolicShapes, a: InputRef, b: InputRef) -> bool:
    """``a`` and ``b`` have the same shape for every input the graph can be fed."""
    sa, sb = shapes.shape(a), shapes.shape(b)
    return sa is not None and sa == sb

