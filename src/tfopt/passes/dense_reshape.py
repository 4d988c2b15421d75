"""Give a dense layer on a 3-D input the 2-D form the runtimes fuse: Reshape -> MatMul ->
BiasAdd -> activation -> Reshape.

Keras applies ``Dense`` to ``[batch, seq, C]`` through ``Tensordot``: the input is flattened
with a shape computed at run time (``Shape -> GatherV2 -> Prod -> Pack``), multiplied, and
*reshaped back before* the bias and the activation::

    x ─► Reshape(Pack(Prod(Gather(Shape x)))) ─► MatMul(W) ─► Reshape(B, S, N) ─► BiasAdd ─► GELU

The Reshape between the MatMul and its BiasAdd hides the pair from Grappler's remapper, so
neither runtime fuses the bias, and the oneDNN runtime cannot fuse the GELU (or Swish...) that
follows into its matmul kernel either. Three rewrites, each exact (a Reshape moves no data):

1. *flatten*: a Reshape feeding only MatMuls' ``a`` operand gets the constant shape
   ``[-1, C]`` (C from the weights), so its shape arithmetic becomes dead;
2. *sink*: element-wise ops after a MatMul's output Reshape move ahead of it when their other
   operands are constants that broadcast along the flattened trailing dimensions only; the
   Reshape is re-applied where the region's results leave it;
3. *collapse*: ``Reshape(Reshape(a, s1), s2)`` reads ``a`` directly, and a Reshape of a 2-D
   ``[?, N]`` tensor to ``[-1, N]`` is dropped.

Result::

    x ─► Reshape([-1, C]) ─► MatMul(W) ─► BiasAdd ─► GELU ─► MatMul(W2) ─► BiasAdd ─► Reshape
"""

from __future__ import annotations

import numpy as np

from tfopt.graph.names import InputRef
from tfopt.graph.nodes import get_attr, make_node
from tfopt.graph.shapes import StaticInfo
from tfopt.graph.view import GraphView
from tfopt.passes.base import GraphPass, PassContext

# Element-wise ops whose output has their inputs' broadcast shape and whose value at one
# position depends only on the inputs at that position.
UNARY = frozenset({"Abs", "Elu", "Erf", "Erfc", "Exp", "Gelu", "LeakyRelu", "Log", "Neg",
                   "Relu", "Relu6", "Rsqrt", "Selu", "Sigmoid", "Softplus", "Softsign", "Sqrt",
                   "Square", "Tanh"})
BINARY = frozenset({"Add", "AddV2", "BiasAdd", "Maximum", "Minimum", "Mul", "Pow", "RealDiv",
                    "SquaredDifference", "Sub"})
MATMULS = frozenset({"MatMul", "_FusedMatMul"})


class DenseReshape(GraphPass):

    def apply(self, view: GraphView, ctx: PassContext) -> list[str]:
        flattened = sum(_flatten(view, node) for node in list(view)
                        if node.name in view and node.op == "Reshape")
        info: StaticInfo | None = None
        sunk = 0
        for node in list(view):
            if node.name not in view or node.op != "Reshape" or view.keeps(node.name):
                continue
            producer = view.input_node(node, 0)
            if producer is None or producer.op not in MATMULS:
                continue
            info = info or StaticInfo(view.to_graph_def())
            sunk += _sink(view, node, info)
        collapsed = sum(_collapse(view, node) for node in list(view)
                        if node.name in view and node.op == "Reshape")
        notes = []
        if flattened:
            notes.append(f"{flattened} dense inputs flattened with a constant [-1, C] shape")
        if sunk:
            notes.append(f"{sunk} element-wise ops moved ahead of a dense layer's output "
                         f"Reshape")
        if collapsed:
            notes.append(f"{collapsed} reshapes of reshapes removed")
        return notes


def _weight_dims(view: GraphView, matmul) -> tuple[int, int] | None:
    """(C, N): contraction size and output width of a MatMul whose ``b`` is a 2-D constant
    (else None)."""
    weights = view.const_input(matmul, 1)
    if weights is None or weights.ndim != 2:
        return None
    rows, cols = (int(d) for d in weights.shape)
    return (cols, rows) if get_attr(matmul, "transpose_b", False) else (rows, cols)


def _matmul_width(view: GraphView, matmul) -> int | None:
    """C, the contraction size of a MatMul reading ``a`` untransposed (else None)."""
    dims = _weight_dims(view, matmul)
    return None if dims is None or get_attr(matmul, "transpose_a", False) else dims[0]


def _flatten(view: GraphView, reshape) -> int:
    """Rewrite 1: give a MatMul input's Reshape the constant shape [-1, C]."""
    readers = view.consumers(reshape.name)
    if not readers or any(ref.control or r.op not in MATMULS or ref.port != 0
                          or view.data_inputs(r)[0] != InputRef(reshape.name, 0)
                          for r, ref in readers):
        return 0
    widths = {_matmul_width(view, r) for r, _ in readers}
    if len(widths) != 1 or None in widths:
        return 0
    width = widths.pop()
    current = view.const_input(reshape, 1)
    if current is not None and current.tolist() == [-1, width]:
        return 0
    dtype = np.int64 if get_attr(reshape, "Tshape") == "int64" else np.int32
    view.set_input(reshape, 1, view.add_const(reshape.name + "/flat_shape",
                                              np.array([-1, width], dtype), reshape.device))
    return 1


def _trailing(out_dims: list[int | None], width: int) -> int | None:
    """How many trailing dims of the reshaped output together hold the flat width N."""
    product = 1
    for k in range(1, len(out_dims)):
        dim = out_dims[-k]
        if dim is None:
            return None
        product *= dim
        if product == width:
            return k
        if product > width:
            return None
    return None


def _flat_const(value: np.ndarray, rank: int, out_dims: list[int | None], k: int,
                width: int) -> np.ndarray | None:
    """The constant operand re-expressed against the flat [M, N] tensor, or None if it also
    varies along the leading (flattened-away) dimensions or would raise the rank."""
    if value.ndim > rank:
        return None
    if value.ndim == 0:
        return value
    full = value.reshape((1,) * (rank - value.ndim) + value.shape)
    if any(d != 1 for d in full.shape[:rank - k]):
        return None
    trailing = full.reshape(full.shape[rank - k:])
    if all(d == 1 for d in trailing.shape):
        return trailing.reshape(())
    return np.ascontiguousarray(np.broadcast_to(trailing, out_dims[rank - k:])).reshape(width)


def _sink(view: GraphView, reshape, info: StaticInfo) -> int:
    """Rewrite 2: move the element-wise region after ``reshape`` ahead of it."""
    source = view.data_inputs(reshape)[0]
    in_shape, out_shape = info.shape(source.tensor), info.shape(f"{reshape.name}:0")
    if (in_shape is None or out_shape is None or in_shape.rank != 2 or out_shape.rank is None
            or out_shape.rank < 3 or in_shape.as_list()[1] is None):
        return 0
    width = in_shape.as_list()[1]
    out_dims = out_shape.as_list()
    k = _trailing(out_dims, width)
    if k is None:
        return 0
    region = _Region(view, reshape, info, out_dims, k, width)
    region.grow()
    if not region.nodes:
        return 0
    region.rewire(source)
    return len(region.nodes)


class _Region:
    """The element-wise nodes after a Reshape [M, N] -> [..., N] that can run on the flat
    [M, N] tensor instead: each reads the region (or the reshape) and constants that vary
    only along the trailing dims holding N."""

    def __init__(self, view: GraphView, reshape, info: StaticInfo,
                 out_dims: list[int | None], k: int, width: int):
        self.view, self.reshape, self.info = view, reshape, info
        self.out_dims, self.k, self.width = out_dims, k, width
        self.nodes: dict[str, object] = {}  # node name -> node, in discovery order
        self.flat_consts: dict[tuple[str, int], np.ndarray] = {}

    def joins(self, node) -> bool:
        view = self.view
        if (view.keeps(node.name) or node.op not in UNARY | BINARY
                or view.control_inputs(node) or get_attr(node, "T") is None
                or get_attr(node, "data_format", "NHWC") != "NHWC"):
            return False
        refs = view.data_inputs(node)
        if len(refs) != (1 if node.op in UNARY else 2):
            return False
        inside = False
        for i, ref in enumerate(refs):
            if ref.port == 0 and (ref.node == self.reshape.name or ref.node in self.nodes):
                inside = True
                continue
            value = view.const_input(node, i)
            flat = None if value is None else _flat_const(value, len(self.out_dims),
                                                          self.out_dims, self.k, self.width)
            if flat is None or (node.op == "BiasAdd" and i == 0):
                return False
            if node.op == "BiasAdd":  # its bias stays a [N] vector
                flat = np.broadcast_to(flat, (self.width,)).copy()
            self.flat_consts[(node.name, i)] = flat
        shape = self.info.shape(f"{node.name}:0")
        return inside and shape is not None and shape.as_list() == self.out_dims

    def grow(self) -> None:
        """Every reader that joins, to a fixed point (a binary op joins once both its inputs
        are known)."""
        frontier = [self.reshape.name]
        pending: set[str] = set()
        while frontier:
            name = frontier.pop()
            for reader in self.view.data_consumers(name, 0):
                pending.add(reader.name)
            progress = True
            while progress:
                progress = False
                for cand in sorted(pending):
                    node = self.view.nodes.get(cand)
                    if node is not None and cand not in self.nodes and self.joins(node):
                        self.nodes[cand] = node
                        pending.discard(cand)
                        frontier.append(cand)
                        progress = True

    def rewire(self, source: InputRef) -> None:
        """Region nodes read the flat source and flat constants; where results leave the
        region, the reshape is put back."""
        view, reshape = self.view, self.reshape
        for node in self.nodes.values():
            for i, ref in enumerate(view.data_inputs(node)):
                if ref.node == reshape.name and ref.port == 0:
                    view.set_input(node, i, str(source))
                elif (node.name, i) in self.flat_consts:
                    view.set_input(node, i, view.add_const(
                        f"{node.name}/flat_operand{i}", self.flat_consts[(node.name, i)],
                        node.device))
        shape_input = str(view.data_inputs(reshape)[1])
        for node in self.nodes.values():
            outside = [(r, ref) for r, ref in view.consumers(node.name)
                       if r.name not in self.nodes]
            if not outside:
                continue
            back = view.add(make_node(view.unique_name(f"{node.name}/unflatten"), "Reshape",
                                      [node.name, shape_input], reshape.device,
                                      **dict(reshape.attr)))
            for reader, ref in outside:
                if ref.control:
                    continue
                idx = list(reader.input).index(str(ref))
                view.set_input(reader, idx, str(InputRef(back.name, ref.port)))


def _collapse(view: GraphView, reshape) -> int:
    """Rewrite 3: Reshape(Reshape(a)) -> Reshape(a); Reshape([?, N] -> [-1, N]) -> nothing."""
    if view.keeps(reshape.name) or view.control_inputs(reshape):
        return 0
    inner = view.input_node(reshape, 0)
    if inner is not None and inner.op == "Reshape" and not view.control_inputs(inner):
        view.set_input(reshape, 0, str(view.data_inputs(inner)[0]))
        return 1
    target = view.const_input(reshape, 1)
    if target is None or target.ndim != 1 or target.size != 2 or target[0] != -1:
        return 0
    producer = view.input_node(reshape, 0)
    if (producer is not None and producer.op in MATMULS | UNARY | BINARY
            and _is_flat(view, producer, int(target[1]))):
        view.bypass(reshape, [view.data_inputs(reshape)[0]])
        return 1
    return 0


def _is_flat(view: GraphView, node, width: int, depth: int = 0) -> bool:
    """Whether ``node``'s output is statically 2-D ``[?, width]``: a MatMul against constant
    weights, or element-wise ops over one (constants of rank <= 1 keep it 2-D)."""
    if depth > 64:
        return False
    if node.op in MATMULS:
        dims = _weight_dims(view, node)
        return dims is not None and dims[1] == width
    if node.op not in UNARY | BINARY:
        return False
    found = False
    for i, _ref in enumerate(view.data_inputs(node)):
        value = view.const_input(node, i)
        if value is not None:
            if value.ndim > 1 or (value.ndim == 1 and value.shape[0] not in (1, width)):
                return False
            continue
        src = view.input_node(node, i)
        if src is None or not _is_flat(view, src, width, depth + 1):
            return False
        found = True
    return found
