"""Rewrite a dense layer written as ``Einsum`` or ``BatchMatMulV2`` against constant weights as
``Reshape -> MatMul -> Reshape``.

Keras' ``EinsumDense`` (every projection of ``MultiHeadAttention``: query/key/value
``abc,cde->abde`` and output ``abcd,cde->abe``) exports an ``Einsum`` whose contraction is the
input's trailing dims against the weights' leading dims. The oneDNN runtime runs that ``Einsum``
about 1.3x slower than the same product as one 2-D ``MatMul`` (BERT sizes, batch 1; the Eigen
runtime within 2% either way), and the ``MatMul`` form lets ``dense_reshape`` move the bias
add in front of the output Reshape, where both runtimes fuse it::

    x[F.., K..] ─► Einsum("FK,KG->FG", W) =>
    x ─► Reshape([-1, |K|]) ─► MatMul(W as [|K|, |G|]) ─► Reshape(concat(shape(x)[:len F], G))

Keras 3 also lowers some of them (ViT's attention projections) to a ``BatchMatMulV2`` of the
``[batch, seq, C]`` activation with a 2-D weight, broadcast over the batch dims: the same
dense layer, which oneDNN runs ~15% slower than the 2-D MatMul and XLA lowers to a batched dot
over a broadcast weight. It gets the same rewrite (``x[.., K] @ W[K, N]``, ``adj_y`` folded into
the weights)::

    x[.., K] ─► BatchMatMulV2(W[K, N]) => x ─► Reshape([-1, K]) ─► MatMul(W) ─► Reshape(shape(x)[:-1] + [N])

Guards: two operands, the second a constant, no control inputs, float32. Einsum: no ellipsis
or repeated label, the equation of the form above (x = free dims then contracted dims, W = the
same contracted dims in the same order then free dims, output = x's free dims then W's),
contracted and W's dims static. BatchMatMul: a 2-D weight, ``adj_x`` false.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfopt.graph.nodes import get_attr, make_node, set_attr
from tfopt.graph.ops import BATCH_MATMUL_OPS
from tfopt.graph.view import GraphView
from tfopt.passes.base import GraphPass, PassContext, count_note, is_float32


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

    def apply(self, view: GraphView, ctx: PassContext) -> list[str]:
        einsums = batched = 0
        for node in list(view):
            # (BatchMatMulV3 has no T attribute: left alone by the float32 guard)
            if (node.op not in BATCH_MATMUL_OPS | {"Einsum"} or len(view.data_inputs(node)) != 2
                    or view.control_inputs(node) or not is_float32(node)):
                continue
            weights = view.const_input(node, 1)
            if weights is None:
                continue
            if node.op == "Einsum":
                split = dense_split(get_attr(node, "equation", ""))
                if split is None or weights.ndim != split[1] + split[2]:
                    continue
                n_free, n_k = split[:2]
                kernel = weights.reshape(int(np.prod(weights.shape[:n_k])), -1)
                einsums += _rewrite(view, node, kernel, n_free, list(weights.shape[n_k:]))
            elif weights.ndim == 2 and not get_attr(node, "adj_x", False):
                kernel = weights.T if get_attr(node, "adj_y", False) else weights
                batched += _rewrite(view, node, kernel, -1, [kernel.shape[1]])
        return (count_note(einsums, "dense-layer Einsums rewritten as MatMul")
                + count_note(batched, "BatchMatMuls with a 2-D constant weight rewritten as "
                                      "MatMul"))


def _rewrite(view: GraphView, node, kernel: np.ndarray, lead_end: int,
             out_dims: list[int]) -> int:
    """``node`` (x times constant weights) becomes Reshape(x, [-1, K]) @ ``kernel`` [K, N],
    reshaped to ``shape(x)[:lead_end] + out_dims``."""
    k_size = int(kernel.shape[0])
    g_dims = [int(d) for d in out_dims]
    x = str(view.data_inputs(node)[0])
    base, device = node.name, node.device

    def add(op: str, suffix: str, inputs: list[str], **attrs):
        return view.add(make_node(view.unique_name(f"{base}/{suffix}"), op, inputs, device,
                                  **attrs))

    def const(suffix: str, value: np.ndarray) -> str:
        return view.add_const(f"{base}/{suffix}", value, device)

    flat = add("Reshape", "flatten", [x, const("flat_shape", np.array([-1, k_size], np.int32))],
               T=tf.float32, Tshape=tf.int32)
    matmul = add("MatMul", "MatMul", [flat.name, const("kernel", np.ascontiguousarray(kernel))],
                 T=tf.float32, transpose_a=False, transpose_b=False)
    shape = add("Shape", "input_shape", [x], T=tf.float32, out_type=tf.int32)
    lead = add("StridedSlice", "free_dims", [shape.name, const("begin", np.array([0], np.int32)),
                                              const("end", np.array([lead_end], np.int32)),
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
