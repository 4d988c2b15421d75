"""One way to run a signature: a frozen graph in a Session, or a SavedModel as a user calls it.

Verification (in this process and in :mod:`tfopt.verify.isolate`'s children), the benchmark
and the profiler all run models through these functions.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfopt.graph.weights import initialize_weights, split_weights
from tfopt.model.signature import SignatureGraph


def feed_dict(sig: SignatureGraph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A Session feed: each signature input's graph tensor -> its value."""
    return {sig.inputs[k].tensor: v for k, v in feeds.items()}


def session_config(intra: int = 0, inter: int = 0) -> tf.compat.v1.ConfigProto:
    return tf.compat.v1.ConfigProto(intra_op_parallelism_threads=intra,
                                    inter_op_parallelism_threads=inter)


def open_session(sig: SignatureGraph, config: tf.compat.v1.ConfigProto | None = None
                 ) -> tf.compat.v1.Session:
    """A session on the signature's graph with its lookup tables initialised (caller closes);
    a graph too large for one protobuf reads its largest weights from variables fed once
    (:mod:`tfopt.graph.weights`)."""
    graph = tf.Graph()
    graph_def, values = split_weights(sig.graph_def, weights=sig.weights)
    input_map, init, feed = initialize_weights(graph, values)
    with graph.as_default():
        tf.import_graph_def(graph_def, input_map=input_map or None, name="")
    sess = tf.compat.v1.Session(graph=graph, config=config or session_config())
    if init is not None:
        sess.run(init, feed)
    if sig.init_ops:
        sess.run(sig.init_ops)
    return sess


def run_graph_def(sig: SignatureGraph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run a signature's graph once in a fresh session."""
    keys = list(sig.outputs)
    with open_session(sig) as sess:
        values = sess.run([sig.outputs[k].tensor for k in keys], feed_dict(sig, feeds))
    return dict(zip(keys, values, strict=True))


def call_signature(obj, key: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Call signature ``key`` of a loaded SavedModel as a user would."""
    result = obj.signatures[key](**{k: tf.constant(v) for k, v in feeds.items()})
    return {k: np.asarray(v) for k, v in result.items()}


def run_saved_model(path: str, key: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return call_signature(tf.saved_model.load(path), key, feeds)
