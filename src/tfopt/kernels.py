"""Which fused kernels the installed TensorFlow can run on CPU, found by asking it.

``_FusedConv2D`` and friends are registered for Grappler's use; which ``fused_ops`` lists a
kernel accepts is only checked when the kernel is built. So we look in the kernel registry and
then build and run a tiny graph per (op, fused_ops) combination, once per ``KernelSupport``.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2
from tensorflow.python.framework import kernels as tf_kernels

from tfopt.graph import make_const, set_attr

# The input data for each fused op probe: (x shape, filter shape).
_PROBE_SHAPES = {
    "_FusedConv2D": ((1, 4, 4, 2), (1, 1, 2, 2)),
    "_FusedDepthwiseConv2dNative": ((1, 4, 4, 2), (1, 1, 2, 1)),
    "_FusedMatMul": ((2, 2), (2, 2)),
}


def has_cpu_kernel(op: str, dtype: tf.DType = tf.float32) -> bool:
    try:
        registered = tf_kernels.get_registered_kernels_for_op(op)
    except Exception:
        return False
    for kernel in registered.kernel:
        if kernel.device_type != "CPU":
            continue
        types = [c for c in kernel.constraint if c.name == "T"]
        if not types or dtype.as_datatype_enum in types[0].allowed_values.list.type:
            return True
    return False


def _probe_graph(op: str, fused_ops: tuple[str, ...]) -> graph_pb2.GraphDef:
    x_shape, w_shape = _PROBE_SHAPES[op]
    graph_def = graph_pb2.GraphDef()
    x = make_const("x", np.ones(x_shape, np.float32))
    w = make_const("w", np.ones(w_shape, np.float32))
    nargs = 4 if "FusedBatchNorm" in fused_ops else 1
    channels = w_shape[-1] * (w_shape[-2] if op == "_FusedDepthwiseConv2dNative" else 1)
    args = [make_const(f"arg{i}", np.ones(channels, np.float32)) for i in range(nargs)]
    if "Add" in fused_ops:  # a residual operand with the conv output's shape
        out_shape = (*x_shape[:-1], channels)
        args.append(make_const(f"arg{nargs}", np.ones(out_shape, np.float32)))
        nargs += 1
    graph_def.node.extend([x, w, *args])
    node = graph_def.node.add(name="fused", op=op)
    node.input.extend(["x", "w"] + [a.name for a in args])
    set_attr(node, "T", tf.float32)
    set_attr(node, "num_args", nargs)
    if op == "_FusedConv2D":
        set_attr(node, "TArgs", [tf.float32] * nargs)
    set_attr(node, "fused_ops", list(fused_ops))
    set_attr(node, "epsilon", 0.001)
    set_attr(node, "leakyrelu_alpha", 0.2)
    if op == "_FusedMatMul":
        set_attr(node, "transpose_a", False)
        set_attr(node, "transpose_b", False)
    else:
        set_attr(node, "strides", [1, 1, 1, 1])
        set_attr(node, "padding", "VALID")
        set_attr(node, "data_format", "NHWC")
        set_attr(node, "dilations", [1, 1, 1, 1])
    return graph_def


class KernelSupport:
    """Answers "can this runtime run op X with fused_ops Y on CPU?", caching per instance."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, tuple[str, ...]], bool] = {}

    def supports(self, op: str, fused_ops: tuple[str, ...]) -> bool:
        key = (op, tuple(fused_ops))
        if key not in self._cache:
            self._cache[key] = has_cpu_kernel(op) and self._runs(op, key[1])
        return self._cache[key]

    @staticmethod
    def _runs(op: str, fused_ops: tuple[str, ...]) -> bool:
        graph = tf.Graph()
        try:
            with graph.as_default():
                tf.import_graph_def(_probe_graph(op, fused_ops), name="")
            # Grappler off: it must not rewrite the probe into something else before it runs.
            config = tf.compat.v1.ConfigProto()
            config.graph_options.rewrite_options.disable_meta_optimizer = True
            with tf.compat.v1.Session(graph=graph, config=config) as sess:
                out = sess.run("fused:0")
            return bool(np.all(np.isfinite(out)))
        except Exception:
            return False
