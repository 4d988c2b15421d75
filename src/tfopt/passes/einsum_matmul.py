"""Rewrite a dense-layer ``Einsum`` against constant weights as ``Reshape -> MatMul -> Reshape``.

Keras' ``EinsumDense`` (every projection of ``MultiHeadAttention``: query/key/value
``abc,cde->abde`` and output ``abcd,cde->abe``) exports an ``Einsum`` whose contraction is the
input's trailing dims against the weights' leading dims. The oneDNN runtime runs that ``Einsum``
about 1.3x slower than the same product as one 2-D ``MatMul`` (BERT sizes, batch 1; the Eigen
runtime within 2% either way), and the ``MatMul`` form lets ``dense_reshape`` move the bias
add in front of the output Reshape, where both runtimes fuse it::

    x[F.., K..] ─► Einsum("FK,KG->FG", W) =>
    x ─► Reshape([-1, |K|]) ─► MatMul(W as [|K|, |G|]) ─► Reshape(concat(shape(x)[:len F], G))

Guards: two operands, the second a constant, no ellipsis or repeated label, the equation of
the form above (x = free dims then contracted dims, W = the same contracted dims in the same
order then free dims, output = x's free dims then W's), contracted and W's dims static.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfopt.graph import GraphView, get_attr, make_const, make_node, set_attr
from tfopt.passes.base import GraphPass, PassContext, count_note


def dense_split(equation: str) -> tuple[int, int, int] | None:
    """(len F, len K, len G) when ``equation`` is ``FK,KG->FG`` with distinct labels."""
    if "..." in equation or "->" not in equation:
        return None
    lhs, out = equation.replace(" ", "").split("->")
    if lhs.count(",") != 1:
        return None
    x, w = lhs.split(",")
    if len(set(x)) != len(x) or len(set(w)) != len(w) or len(set(out)) != len(out):
        return None
    contracted = [c for c in x if c in w and c not in out]
    k = len(contracted)
    if k == 0 or x[len(x) - k:] != "".join(contracted) or w[:k] != "".join(contracted):
        return None
    free_x, free_w = x[:len(x) - k], w[k:]
    if out != free_x + free_w or not free_x or set(free_x) & set(free_w):
        return None
    return len(free_x), k, len(free_w)


class EinsumToMatMul(GraphPass):
    name = "einsum_matmul"

    def apply(self, view: GraphView, ctx: PassContext) -> list[str]:
        rewritten = 0
        for node in view:
            if (node.op != "Einsum" or len(view.data_inputs(node)) != 2
                    or view.control_inputs(node) or get_attr(node, "T") != tf.float32):
                continue
            weights = view.const_input(node, 1)
            split = dense_split(get_attr(node, "equation", ""))
            if weights is None or split is None or weights.ndim != split[1] + split[2]:
                continue
            rewritten += _rewrite(view, node, weights, *split[:2])
        return count_note(rewritten, "dense-layer Einsums rewritten as MatMul")


def _rewrite(view: GraphView, node, weights: np.ndarray, n_free: int, n_k: int) -> int:
    k_size = int(np.prod(weights.shape[:n_k]))
    g_dims = [int(d) for d in weights.shape[n_k:]]
    x = str(view.data_inputs(node)[0])
    base, device = node.name, node.device

    def add(op: str, suffix: str, inputs: list[str], **attrs):
        return view.add(make_node(view.unique_name(f"{base}/{suffix}"), op, inputs, device,
                                  **attrs))

    def const(suffix: str, value: np.ndarray):
        return view.add(make_const(view.unique_name(f"{base}/{suffix}"), value, device)).name

    flat = add("Reshape", "flatten", [x, const("flat_shape", np.array([-1, k_size], np.int32))],
               T=tf.float32, Tshape=tf.int32)
    matmul = add("MatMul", "MatMul", [flat.name, const("kernel", np.ascontiguousarray(
        weights.reshape(k_size, int(np.prod(g_dims)))))], T=tf.float32, transpose_a=False,
        transpose_b=False)
    shape = add("Shape", "input_shape", [x], T=tf.float32, out_type=tf.int32)
    lead = add("StridedSlice", "free_dims", [shape.name, const("begin", np.array([0], np.int32)),
                                              const("end", np.array([n_free], np.int32)),
                                              const("stride", np.array([1], np.int32))],
               T=tf.int32, Index=tf.int32, begin_mask=0, end_mask=0, ellipsis_mask=0,
               new_axis_mask=0, shrink_axis_mask=0)
    target = add("ConcatV2", "output_shape", [lead.name, const("out_dims", np.array(
        g_dims, np.int32)), const("axis", np.array(0, np.int32))], N=2, T=tf.int32,
        Tidx=tf.int32)
    view.retype(node, "Reshape", keep=("T",))
    set_attr(node, "Tshape", tf.int32)
    view.set_inputs(node, [matmul.name, target.name])
    return 1
