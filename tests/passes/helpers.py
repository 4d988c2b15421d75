"""Build small GraphDefs by hand and run them, for pass tests."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2

from tfopt.graph import op_counts
from tfopt.kernels import KernelSupport
from tfopt.passes import PassContext


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
