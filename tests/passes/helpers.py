"""Build small GraphDefs by hand and run them, for pass tests."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2

from tfopt.graph.kernels import KernelSupport
from tfopt.graph.walk import op_counts
from tfopt.passes.base import PassContext


def graph_of(build) -> graph_pb2.GraphDef:
    """GraphDef of what ``build()`` creates in a fresh graph."""
    g = tf.Graph()
    with g.as_default():
        build()
    return g.as_graph_def()


def context(outputs: list[str], inputs: list[str] = (), target: str = "portable") -> PassContext:
    """A pass context for a hand-built graph; ``target`` chooses the fused kernels allowed."""
    protected = {t.split(":")[0] for t in [*outputs, *inputs]}
    return PassContext(protected=protected, outputs=[t if ":" in t else t + ":0" for t in outputs],
                       inputs=list(inputs), kernels=KernelSupport(target))


def run(graph_def: graph_pb2.GraphDef, fetches: list[str], feeds: dict | None = None):
    g = tf.Graph()
    with g.as_default():
        tf.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=g) as sess:
        return sess.run([f if ":" in f else f + ":0" for f in fetches], feeds or {})


def counts(graph_def) -> dict[str, int]:
    return op_counts(graph_def)


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


X = {"x:0": rand(2, 8, 8, 3, seed=1)}


def bn_params(c, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.uniform(0.5, 1.5, c).astype(np.float32), rng.normal(0, 0.3, c).astype(np.float32),
            rng.normal(0, 0.3, c).astype(np.float32), rng.uniform(0.5, 1.5, c).astype(np.float32))


def check_same(before, after, fetch="out", feeds=X, rtol=1e-5):
    a = run(before, [fetch], feeds)[0]
    b = run(after, [fetch], feeds)[0]
    np.testing.assert_allclose(b, a, rtol=rtol, atol=rtol * np.abs(a).max())
