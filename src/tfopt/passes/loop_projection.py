"""Take a recurrent layer's input projection out of its loop: one matmul over every time step.

Keras' LSTM, GRU and SimpleRNN cells multiply each step's input by the kernel inside the loop
body. The inputs do not depend on the recurrence, so the product can be taken once for the
whole sequence before the loop, as cuDNN and OpenVINO do::

    X[T,B,K] -> TensorListFromTensor -> While       X -> Reshape[T*B,K] -> MatMul(kernel)
      body: TensorListGetItem(list, t)          =>      [-> BiasAdd(b)] -> Reshape[T,B,N]
              -> MatMul(kernel) [-> BiasAdd(b)]          -> TensorListFromTensor -> While
              -> ...                                   body: TensorListGetItem(list', t) -> ...

One matmul of T*B rows instead of T matmuls of B rows (at batch 1, T vector-matrix products),
and one or two ops fewer per step, where a loop at batch 1 is executor overhead more than
arithmetic: Embedding -> LSTM -> GRU 1.40x [1.30-1.48] at batch 1 against the same passes
without this one (oneDNN off, 2 cores). The price: the per-step products no longer overlap
the recurrence on a spare core, which at batch 8 on 2 cores without oneDNN costs 5-9%
(0.91-0.95x; still ahead of TensorFlow's own chain on those models). ``GetItem(P, t) = GetItem(X, t) W + b`` for every ``t``, so the index does not
matter; what must hold: the list is a loop invariant (the body passes it through) read in the
body only by that GetItem, which only the MatMul reads, and not by the condition; the kernel
(and bias) are loop invariants, the kernel of known shape. The loop's signature stays as it is (the list is still a variant);
readers of the list after the loop read the list that went in, which it passed through.
"""

from __future__ import annotations

import numpy as np
from tensorflow.core.framework import node_def_pb2
from tensorflow.python.framework import dtypes

from tfopt.graph.library import body_to_function, function_body, passes_through
from tfopt.graph.names import InputRef
from tfopt.graph.nodes import const_shape, get_attr, make_node
from tfopt.graph.ops import WHILE_OPS
from tfopt.graph.shapes import is_stateful
from tfopt.graph.view import GraphView
from tfopt.passes.loops import Loop, LoopPass


class _Loop:
    """One While node, its body as a GraphView, and what is known of its arguments."""

    def __init__(self, view: GraphView, loop: node_def_pb2.NodeDef, fdef, cond):
        self.view, self.loop, self.fdef = view, loop, fdef
        body, self.results = function_body(fdef)
        self.body = GraphView(body)
        self.args = [a.name for a in fdef.signature.input_arg]
        self.inputs = view.data_inputs(loop)
        cond_view = GraphView(function_body(cond)[0])
        self.cond_reads = {i for i, a in enumerate(cond.signature.input_arg)
                           if cond_view.consumers(a.name)}

    def invariant(self, ref: InputRef, depth: int = 6) -> bool:
        """The body tensor is the same in every iteration: a constant, a loop input the body
        passes through, or a pure op of such (Keras splits the GRU bias in the body)."""
        node = self.body.nodes.get(ref.node)
        if node is None:
            return False
        if node.name in self.args:
            return passes_through(self.fdef, self.args.index(node.name))
        if node.op == "Const":
            return True
        return (depth > 0 and node.op not in ("Placeholder", *WHILE_OPS)
                and not is_stateful(node.op) and not self.body.control_inputs(node)
                and all(self.invariant(r, depth - 1) for r in self.body.data_inputs(node)))

    def kernel_shape(self, ref: InputRef) -> tuple[int, ...] | None:
        """Shape of an invariant that is a constant in the body or outside the loop."""
        ref, _ = self.body.through_identities(ref)
        node = self.body.nodes.get(ref.node)
        if node is not None and node.op == "Const":
            return const_shape(node)
        if node is not None and node.name in self.args:
            outside = self.view.nodes.get(self.inputs[self.args.index(node.name)].node)
            if outside is not None and outside.op == "Const":
                return const_shape(outside)
        return None

    def outside(self, ref: InputRef, base: str, copied: dict[str, str]) -> str:
        """The main graph's tensor for an invariant body tensor: the loop's input, or a copy
        of the body's nodes computing it (constant_fold folds them next round)."""
        node = self.body.nodes[ref.node]
        if node.name in self.args:
            return str(self.inputs[self.args.index(node.name)])
        if node.name not in copied:
            copy = node_def_pb2.NodeDef()
            copy.CopyFrom(node)
            copy.name = self.view.unique_name(f"{base}/{node.name.rsplit('/', 1)[-1]}")
            copy.device = self.loop.device
            if "_class" in copy.attr:  # colocation with body nodes
                del copy.attr["_class"]
            del copy.input[:]
            copy.input.extend(self.outside(r, base, copied) for r in self.body.data_inputs(node))
            copied[node.name] = self.view.add(copy).name
        return str(InputRef(copied[node.name], ref.port))


def _projection(loop: _Loop, index: int):
    """(GetItem, MatMul, bias-add node or None, kernel shape) when list argument ``index``
    is read only to be projected; None otherwise."""
    arg = loop.args[index]
    source = loop.view.nodes.get(loop.inputs[index].node)
    readers = loop.body.consumers(arg)
    if (source is None or source.op != "TensorListFromTensor" or len(readers) != 1
            or not passes_through(loop.fdef, index) or index in loop.cond_reads):
        return None
    get, ref = readers[0]
    if get.op != "TensorListGetItem" or ref.control or loop.body.data_inputs(get)[0] != \
            InputRef(arg, 0) or loop.body.keeps(get.name):
        return None
    users = loop.body.consumers(get.name)
    if len(users) != 1 or users[0][1].control:
        return None
    matmul = users[0][0]
    refs = loop.body.data_inputs(matmul)
    if matmul.op != "MatMul" or refs[0] != InputRef(get.name, 0) or \
            refs[1].node == get.name or get_attr(matmul, "transpose_a", False):
        return None
    shape = loop.kernel_shape(refs[1])
    if shape is None or len(shape) != 2 or not loop.invariant(refs[1]):
        return None
    width = shape[0] if get_attr(matmul, "transpose_b", False) else shape[1]
    bias = None
    after = loop.body.consumers(matmul.name)
    if len(after) == 1 and not after[0][1].control:
        node = after[0][0]
        node_refs = loop.body.data_inputs(node)
        # BiasAdd takes only a vector of the last dimension; an Add, only a constant one
        fits = (node.op == "BiasAdd" and get_attr(node, "data_format", "NHWC") == "NHWC"
                or node.op in ("Add", "AddV2") and loop.kernel_shape(node_refs[-1]) == (width,))
        if fits and node_refs[0] == InputRef(matmul.name, 0) and loop.invariant(node_refs[1]):
            bias = node
    return get, matmul, bias, shape


def _element_shape(view: GraphView, node, index: int, width: int) -> np.ndarray:
    """The element shape of the projected list: the original's with its last dimension set
    to ``width``, or -1 (unknown) when the original is not a constant vector."""
    shape = view.const_input(node, index)
    if shape is None or shape.ndim != 1 or shape.size == 0:
        return np.array(-1, np.int32)
    return np.concatenate([shape[:-1], [width]]).astype(shape.dtype)


def _project_outside(view: GraphView, loop: _Loop, index: int, found: tuple) -> str:
    """Nodes computing the projected list before the loop; returns its tensor."""
    get, matmul, bias, shape = found
    source = view.nodes[loop.inputs[index].node]
    device, dtype = loop.loop.device, get_attr(matmul, "T")
    transpose_b = bool(get_attr(matmul, "transpose_b", False))
    depth, width = (shape[1], shape[0]) if transpose_b else shape
    base = f"{loop.loop.name}/input_projection"

    def add(name: str, op: str, inputs: list[str], **attrs) -> str:
        return view.add(make_node(view.unique_name(f"{base}/{name}"), op, inputs, device,
                                  **attrs)).name

    def const(name: str, value) -> str:
        return view.add_const(f"{base}/{name}", np.array(value, np.int32), device)

    int32 = dtypes.int32
    sequence = str(view.data_inputs(source)[0])
    flat = add("flat", "Reshape", [sequence, const("flat_shape", [-1, depth])], T=dtype,
               Tshape=int32)
    copied: dict[str, str] = {}
    kernel = loop.outside(loop.body.data_inputs(matmul)[1], base, copied)
    out = add("MatMul", "MatMul", [flat, kernel], T=dtype, transpose_a=False,
              transpose_b=transpose_b)
    if bias is not None:
        out = add("BiasAdd", "BiasAdd", [out, loop.outside(loop.body.data_inputs(bias)[1],
                                                           base, copied)], T=dtype)
    full = add("shape", "Shape", [sequence], T=dtype, out_type=int32)
    lead = add("steps_and_batch", "StridedSlice", [full, const("begin", [0]),
                                                   const("end", [-1]), const("stride", [1])],
               T=int32, Index=int32)
    target = add("projected_shape", "ConcatV2", [lead, const("width", [width]),
                                                  const("axis", 0)], N=2, T=int32, Tidx=int32)
    projected = add("projected", "Reshape", [out, target], T=dtype, Tshape=int32)
    elements = view.add_const(f"{base}/element_shape",
                              _element_shape(view, source, 1, width), device)
    return add("TensorListFromTensor", "TensorListFromTensor", [projected, elements],
               element_dtype=get_attr(source, "element_dtype"),
               shape_type=get_attr(source, "shape_type"))


def _project_inside(loop: _Loop, found: tuple) -> None:
    """The body reads the projected element where it read the projection."""
    get, matmul, bias_node, shape = found
    width = shape[0] if get_attr(matmul, "transpose_b", False) else shape[1]
    last = bias_node or matmul
    element = _element_shape(loop.body, get, 2, width)
    loop.body.set_input(get, 2, loop.body.add_const(f"{get.name}/projected_shape", element))
    loop.body.replace_uses(InputRef(last.name, 0), InputRef(get.name, 0))
    loop.results = [str(InputRef(get.name, 0)) if InputRef.parse(t) == InputRef(last.name, 0)
                    else t for t in loop.results]
    loop.body.remove([n.name for n in (matmul, bias_node) if n is not None])


class ProjectLoopInputs(LoopPass):

    def start(self, view: GraphView) -> None:
        self.biased = 0

    def rewrite(self, view: GraphView, loop: Loop, library: dict) -> tuple[object, object, int]:
        state = _Loop(view, loop.node, loop.body, loop.cond)
        found = [(index, f) for index in range(len(state.args))
                 if (f := _projection(state, index)) is not None]
        if not found:
            return None, None, 0
        for _, f in found:
            _project_inside(state, f)
        body = body_to_function(loop.body, state.body.to_graph_def(), library, state.results)
        if body is None:
            return None, None, 0  # the body cannot be rebuilt: the loop stays as it is
        for index, f in found:
            view.replace_uses(InputRef(loop.node.name, index), state.inputs[index],
                              keep_controls=False)
            view.set_input(loop.node, index, _project_outside(view, state, index, f))
        self.biased += sum(1 for _, f in found if f[2] is not None)
        return body, None, len(found)

    def note(self, count: int, loops: int) -> list[str]:
        return [f"{count} recurrent input projections taken out of their loops ({self.biased} "
                "with their bias): one matmul over every step"]
