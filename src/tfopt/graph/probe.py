"""Which kernel forms each CPU runtime of the installed TensorFlow runs, found by asking it.

Each runtime is probed in a child process with ``TF_ENABLE_ONEDNN_OPTS`` pinned: one tiny graph
per form, run with Grappler off (reduced-precision and int8 forms also against float32 for
accuracy). Results are cached on disk per TensorFlow version, runtime, table and CPU ISA level,
so the probe costs a few seconds once per machine.

"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable

from tfopt.errors import TfoptError
from tfopt.graph.fusions import FUSION_TABLE, Fusion
from tfopt.graph.quantized import INT8_DTYPES
from tfopt.runtime import RUNTIMES, cpu_isa, current_runtime, runtime_label

# int8 against float32 on the same values: 8-bit input and per-channel weights, and (for a
# convolution) 8-bit output: measured 0.4-0.7e-2 relative RMS with unsigned inputs, 0.9-1.3e-2
# with signed ones (one bit less) on these shapes, under both runtimes.
INT8_PROBE_RMS = 3e-2


_INT8_SHAPES = {"Conv2D": ((1, 6, 6, 32), (3, 3, 32, 8)),
                "DepthwiseConv2dNative": ((1, 8, 8, 8), (3, 3, 8, 1)),
                "MatMul": ((4, 256), (256, 16))}


# The input data for each fused op probe: (x shape, filter shape).
_PROBE_SHAPES = {
    "_FusedConv2D": ((1, 4, 4, 2), (1, 1, 2, 2)),
    "_FusedDepthwiseConv2dNative": ((1, 4, 4, 2), (1, 1, 2, 1)),
    "_FusedMatMul": ((2, 2), (2, 2)),
}


# Reduced-precision fused kernels must also be as accurate as the unfused ops: Eigen's bf16
# _FusedMatMul[BiasAdd] is 2.0e-2 relative RMS off over a 1024-long dot product where a plain
# bf16 MatMul + BiasAdd is 3.0e-3 (oneDNN's fused kernel 1.6e-3), which made GPT-2 and ViT miss
# the bf16 budget under oneDNN off. Probed on long reductions with random data against the
# float32 kernel on the same (bf16-rounded) values.
_ACCURACY_SHAPES = {
    "_FusedConv2D": ((1, 6, 6, 128), (3, 3, 128, 8)),
    "_FusedDepthwiseConv2dNative": ((1, 12, 12, 8), (7, 7, 8, 1)),
    "_FusedMatMul": ((16, 1024), (1024, 16)),
    "Conv2D": ((1, 6, 6, 128), (3, 3, 128, 8)),
    "DepthwiseConv2dNative": ((1, 12, 12, 8), (7, 7, 8, 1)),
    "Conv2DBackpropInput": ((1, 6, 6, 128), (3, 3, 8, 128)),
    "MatMul": ((16, 1024), (1024, 16)),
    "BatchMatMulV2": ((2, 16, 512), (2, 512, 16)),
    "Einsum": ((2, 16, 512), (2, 512, 16)),
}


# bf16 keeps 8 bits of mantissa: one rounding of the output is ~2-3e-3 relative RMS.
REDUCED_PRECISION_RMS = 8e-3


# Changes what the probe accepts, so it is part of the cache key.
PROBE_VERSION = 3


def _bf16_values(rng, shape):
    """Random float32 values that bf16 holds exactly (so both dtypes start from the same)."""
    import numpy as np
    import tensorflow as tf

    value = rng.standard_normal(shape).astype(np.float32)
    return value.astype(tf.bfloat16.as_numpy_dtype).astype(np.float32)


def _probe_graph(fusion: Fusion, shapes=None, rng=None):
    """A graph with one node ``fused``; ``rng``: random data (rounded to bf16) on ``shapes``."""
    import numpy as np
    import tensorflow as tf
    from tensorflow.core.framework import graph_pb2

    from tfopt.graph.nodes import make_const, set_attr

    op, fused_ops = fusion.op, fusion.fused_ops
    dtype = tf.as_dtype(fusion.dtype)
    x_shape, w_shape = shapes or _PROBE_SHAPES[op]
    graph_def = graph_pb2.GraphDef()

    def const(name: str, value: np.ndarray):
        return make_const(name, np.asarray(value).astype(dtype.as_numpy_dtype))

    def data(shape, fallback) -> np.ndarray:
        if rng is None:
            return fallback
        return _bf16_values(rng, shape)

    x = const("x", data(x_shape, np.linspace(-1, 1, int(np.prod(x_shape))).reshape(x_shape)))
    w = const("w", data(w_shape, np.ones(w_shape)))
    channels = w_shape[-1] * (w_shape[-2] if op == "_FusedDepthwiseConv2dNative" else 1)
    out_shape = (*x_shape[:-1], channels)
    args = [const("arg0", data(channels, np.ones(channels)))]
    if "Add" in fused_ops:  # a residual operand with the output's shape
        args.append(const("arg1", data(out_shape, np.ones(out_shape))))
    graph_def.node.extend([x, w, *args])
    node = graph_def.node.add(name="fused", op=op)
    node.input.extend(["x", "w"] + [a.name for a in args])
    set_attr(node, "T", dtype)
    set_attr(node, "num_args", len(args))
    if op == "_FusedConv2D":
        set_attr(node, "TArgs", [dtype] * len(args))
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


def has_cpu_kernel(op: str, dtype: str = "float32") -> bool:
    """Whether the kernel registry has a CPU kernel for ``op`` in ``dtype``."""
    import tensorflow as tf
    from tensorflow.python.framework import kernels as tf_kernels

    try:
        registered = tf_kernels.get_registered_kernels_for_op(op)
    except Exception:
        return False
    for kernel in registered.kernel:
        if kernel.device_type != "CPU":
            continue
        types = [c for c in kernel.constraint if c.name == "T"]
        if not types or tf.as_dtype(dtype).as_datatype_enum in types[0].allowed_values.list.type:
            return True
    return False


def _plain_graph(op: str, dtype: str, rng):
    """One plain ``op`` named ``fused`` on random data (rounded to bf16), in ``dtype``."""
    import tensorflow as tf

    x_shape, w_shape = _ACCURACY_SHAPES[op]
    graph = tf.Graph()
    with graph.as_default():
        x, w = (tf.constant(_bf16_values(rng, s).astype(tf.as_dtype(dtype).as_numpy_dtype))
                for s in (x_shape, w_shape))
        conv = dict(strides=[1, 1, 1, 1], padding="SAME", name="fused")
        if op == "Conv2D":
            tf.raw_ops.Conv2D(input=x, filter=w, **conv)
        elif op == "DepthwiseConv2dNative":
            tf.raw_ops.DepthwiseConv2dNative(input=x, filter=w, **conv)
        elif op == "Conv2DBackpropInput":
            tf.raw_ops.Conv2DBackpropInput(input_sizes=[*x_shape[:-1], w_shape[2]], filter=w,
                                           out_backprop=x, **conv)
        elif op == "MatMul":
            tf.raw_ops.MatMul(a=x, b=w, name="fused")
        elif op == "BatchMatMulV2":
            tf.raw_ops.BatchMatMulV2(x=x, y=w, name="fused")
        else:
            tf.raw_ops.Einsum(inputs=[x, w], equation="bqd,bdk->bqk", name="fused")
    return graph.as_graph_def()


def _run_probe(graph_def):
    """The probe's ``fused:0`` as float32, Grappler off (it must not rewrite the probe)."""
    import numpy as np
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    config = tf.compat.v1.ConfigProto()
    config.graph_options.rewrite_options.disable_meta_optimizer = True
    with tf.compat.v1.Session(graph=graph, config=config) as sess:
        return np.asarray(sess.run("fused:0"), np.float32)


def reduced_precision_error(fusion: Fusion) -> float:
    """Relative RMS difference of ``fusion`` (a reduced dtype) from the float32 kernel on the
    same bf16-exact random data over a long reduction (:data:`_ACCURACY_SHAPES`)."""
    import numpy as np

    if fusion.fused_ops:
        shapes = _ACCURACY_SHAPES[fusion.op]
        got, want = (_run_probe(_probe_graph(f, shapes, np.random.default_rng(0)))
                     for f in (fusion, Fusion(fusion.op, fusion.fused_ops)))
    else:
        got, want = (_run_probe(_plain_graph(fusion.op, dtype, np.random.default_rng(0)))
                     for dtype in (fusion.dtype, "float32"))
    return float(np.sqrt(np.mean((got - want) ** 2) / np.mean(want ** 2)))


def int8_error(fusion: Fusion) -> float:
    """Relative RMS difference of an int8 kernel (:data:`tfopt.graph.quantized.INT8_FORMS`) from float32 on random
    data, quantized the way quantize_int8 quantizes (graph.quantized builds both)."""
    import numpy as np
    import tensorflow as tf
    from tensorflow.core.framework import graph_pb2

    from tfopt.graph import quantized as q
    from tfopt.graph.nodes import make_const

    rng = np.random.default_rng(0)
    op = next(k for k, v in q.QUANTIZED_OPS.items() if v == fusion.op)
    relu, dtype = "Relu" in fusion.fused_ops, tf.as_dtype(fusion.dtype)
    x_shape, w_shape = _INT8_SHAPES[op]
    low = 0.0 if dtype == tf.quint8 else -1.0
    x = rng.uniform(low, 1.0, x_shape).astype(np.float32)
    w = rng.uniform(-1, 1, w_shape).astype(np.float32)
    bias = rng.uniform(-1, 1, w_shape[-1] * (w_shape[-2] if op.startswith("Depth") else 1))
    bias = bias.astype(np.float32)
    if op == "MatMul":
        want = x @ w + bias
    else:
        conv = tf.nn.conv2d if op == "Conv2D" else tf.nn.depthwise_conv2d
        want = conv(x, w, [1, 1, 1, 1], "SAME").numpy() + bias
    summand = "Sum" in fusion.fused_ops
    s = rng.uniform(0.0, 2.0, want.shape).astype(np.float32)
    want = want + s if summand else want
    want = np.maximum(want, 0) if relu else want
    qw, bound = q.quantized_weights(w.reshape(*w_shape[:2], -1, 1) if op.startswith("Depth")
                                    else w, 2 if op.startswith("Depth") else w.ndim - 1)
    graph = graph_pb2.GraphDef()
    consts = {"x": x, "lo": np.float32(low), "hi": np.float32(1.0), "b": bias,
              "wmin": -bound, "wmax": bound, "omin": np.float32(0.0 if relu else -np.abs(want).max()),
              "omax": np.float32(np.abs(want).max()), "s": s, "smax": np.float32(2.0)}
    graph.node.extend(make_const(k, v) for k, v in consts.items())
    graph.node.append(make_const("w", qw.reshape(w_shape), dtype=tf.qint8))
    graph.node.append(q.quantize("qx", "x", "lo", "hi", dtype))
    graph.node.append(q.quantize("qs", "s", "lo" if low == 0.0 else "zero", "smax", tf.quint8))
    graph.node.append(make_const("zero", np.float32(0.0)))
    inputs = ["qx:0", "w", "b", "qx:1", "qx:2", "wmin", "wmax"]
    if op == "MatMul":
        graph.node.append(q.quantized_matmul("fused", inputs, dtype, relu))
    else:
        out_type = tf.quint8 if relu else tf.qint8
        graph.node.append(q.quantized_conv("qop", op, inputs + ["omin", "omax"], dtype,
                                           out_type, relu, [1, 1, 1, 1], "SAME",
                                           [1, 1, 1, 1],
                                           summand=("qs:0", "qs:1", "qs:2") if summand else None))
        graph.node.append(q.dequantize("fused", "qop", out_type))
    got = _run_probe(graph)
    return float(np.sqrt(np.mean((got - want) ** 2) / np.mean(want ** 2)))


def _runs(fusion: Fusion) -> bool:
    """The runtime runs ``fusion`` to finite values (and, below float32, accurately)."""
    import numpy as np

    if not has_cpu_kernel(fusion.op, fusion.dtype):
        return False
    if fusion.dtype in INT8_DTYPES:
        try:
            return int8_error(fusion) <= INT8_PROBE_RMS
        except Exception:
            return False
    try:
        if fusion.fused_ops and not np.all(np.isfinite(_run_probe(_probe_graph(fusion)))):
            return False
        return (fusion.dtype == "float32"
                or reduced_precision_error(fusion) <= REDUCED_PRECISION_RMS)
    except Exception:
        return False


def probe_here(fusions: Iterable[Fusion] = FUSION_TABLE) -> frozenset[Fusion]:
    """The fusions this process's runtime runs (imports TensorFlow)."""
    return frozenset(f for f in fusions if _runs(f))


def _cache_path(runtime: str) -> str:
    import tensorflow as tf

    root = os.environ.get("TFOPT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tfopt")
    key = "\n".join([f"probe v{PROBE_VERSION}", *map(str, FUSION_TABLE)])
    table = hashlib.sha1(key.encode()).hexdigest()[:10]
    return os.path.join(root, f"kernels-tf{tf.__version__}-{runtime}-{cpu_isa()}-{table}.json")


def _read_cache(runtime: str) -> frozenset[Fusion] | None:
    try:
        with open(_cache_path(runtime)) as f:
            return frozenset(Fusion.parse(s) for s in json.load(f)["supported"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_cache(runtime: str, supported: frozenset[Fusion]) -> None:
    path = _cache_path(runtime)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump({"runtime": runtime, "supported": sorted(map(str, supported))}, f)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home only costs a re-probe next time


def probe_runtimes(runtimes: Iterable[str] = RUNTIMES) -> dict[str, frozenset[Fusion]]:
    """Supported fusions per runtime: from the cache, this process, or a worker per runtime
    (:class:`tfopt.process.Worker`, ``TF_ENABLE_ONEDNN_OPTS`` pinned; they run in parallel)."""
    from tfopt.process import ChildFailed, Worker

    found: dict[str, frozenset[Fusion]] = {}
    workers = {}
    here = current_runtime()
    for runtime in runtimes:
        cached = _read_cache(runtime)
        if cached is not None:
            found[runtime] = cached
        elif runtime == here:
            found[runtime] = probe_here()
            _write_cache(runtime, found[runtime])
        else:
            workers[runtime] = Worker(runtime)
            workers[runtime].request("probe", None)
    for runtime, worker in workers.items():
        try:
            report = worker.answer(timeout=600)
            if report["runtime"] != runtime:
                raise ChildFailed(f"it ran {runtime_label(report['runtime'])}")
        except ChildFailed as err:
            raise TfoptError(f"cannot probe the {runtime_label(runtime)} runtime's kernels: "
                             f"{err}") from None
        finally:
            worker.close()
        found[runtime] = frozenset(Fusion.parse(s) for s in report["supported"])
        _write_cache(runtime, found[runtime])
    return found


def probe_request(_conn, _payload) -> dict:
    """The worker's side (:data:`tfopt.process.HANDLERS` "probe"): this runtime's support."""
    return {"runtime": current_runtime(), "supported": sorted(map(str, probe_here()))}
