"""Calibration for ``--precision int8``: the value range of every tensor a quantized op reads
or writes, observed on the user's samples.

The passes run once without ``quantize_int8`` and ``fuse_kernels``; that graph is exactly the
one ``quantize_int8`` will see (the passes are deterministic), so its tensor names are the
keys of the ranges. The graph runs on the calibration samples in batches; per tensor the
range is the min and max over all samples (``minmax``), or the mean over batches of the
``PERCENTILE``-th percentile of each side (``percentile``: one outlier activation no longer
stretches the range and costs every other value resolution).
"""

from __future__ import annotations

import numpy as np

from tfopt.graph.quantized import QUANTIZED_OPS, Range
from tfopt.graph.view import GraphView
from tfopt.model.signature import SignatureGraph
from tfopt.passes.quantize_int8 import RELUS
from tfopt.verify.runners import feed_dict, open_session, session_config

METHODS = ("minmax", "percentile")
PERCENTILE = 99.99
BATCH = 16


def observed_tensors(sig: SignatureGraph) -> list[str]:
    """Tensors whose ranges quantize_int8 may ask for: the data input of each quantizable op,
    and the output of it and of each op of its chain (BiasAdd, residual add with its other
    operand, activation)."""
    view = GraphView(sig.graph_def)
    wanted: list[str] = []
    for node in view:
        if node.op not in QUANTIZED_OPS:
            continue
        wanted.append(view.data_inputs(node)[0].tensor)
        follow = node
        wanted.append(f"{follow.name}:0")
        for ops in (("BiasAdd",), ("Add", "AddV2"), RELUS):
            readers = view.data_consumers(follow.name)
            if len(readers) != 1 or readers[0].op not in ops:
                continue
            prev, follow = follow, readers[0]
            wanted.append(f"{follow.name}:0")
            if follow.op in ("Add", "AddV2"):  # the residual operand
                wanted.extend(r.tensor for r in view.data_inputs(follow) if r.node != prev.name)
    return list(dict.fromkeys(wanted))


def calibrate(sig: SignatureGraph, samples: dict[str, np.ndarray], method: str = "minmax",
              say=None) -> dict[str, Range]:
    """Ranges of :func:`observed_tensors` over ``samples`` (input key -> [N, ...] array)."""
    tensors = observed_tensors(sig)
    if not tensors:
        return {}
    count = len(next(iter(samples.values())))
    lows: dict[str, list[float]] = {t: [] for t in tensors}
    highs: dict[str, list[float]] = {t: [] for t in tensors}
    # Grappler off: its remapper fuses a conv with its bias and swish even when the bias
    # output is fetched (EfficientNet: "not found in the Graph"); calibration wants every
    # intermediate tensor as the float graph computes it anyway.
    config = session_config()
    config.graph_options.rewrite_options.disable_meta_optimizer = True
    with open_session(sig, config) as sess:
        for start in range(0, count, BATCH):
            batch = {k: v[start:start + BATCH] for k, v in samples.items()}
            values = sess.run(tensors, feed_dict(sig, batch))
            for name, value in zip(tensors, values, strict=True):
                low, high = _bounds(np.asarray(value, np.float32), method)
                lows[name].append(low)
                highs[name].append(high)
            done = min(start + BATCH, count)
            if say is not None and count >= 4 * BATCH and done * 4 // count > start * 4 // count:
                say(f"  calibrated on {done}/{count} samples")
    if method == "minmax":
        return {t: Range(min(lows[t]), max(highs[t])) for t in tensors}
    return {t: Range(float(np.mean(lows[t])), float(np.mean(highs[t]))) for t in tensors}


def _bounds(value: np.ndarray, method: str) -> tuple[float, float]:
    if value.size == 0:
        return 0.0, 0.0
    if method == "minmax":
        return float(value.min()), float(value.max())
    low = float(np.percentile(value, 100 - PERCENTILE)) if value.min() < 0 else 0.0
    return min(low, 0.0), float(np.percentile(value, PERCENTILE))
