"""The writer stores a large model's weights in variables/ straight from where they are."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfopt.model.endpoints import graph_function
from tfopt.model.freeze import freeze_concrete_function
from tfopt.model.saver import write_saved_model
from tfopt.model.signature import SignatureGraph, TensorInfo


class Dense(tf.Module):
    def __init__(self):
        rng = np.random.default_rng(2)
        self.w = tf.Variable(rng.normal(size=(64, 32)).astype(np.float32))
        self.conv = tf.Variable(rng.normal(size=(3, 3, 2, 8)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 2], tf.float32)])
    def __call__(self, x):
        y = tf.nn.conv2d(x, self.conv, 1, "SAME")
        return tf.matmul(tf.reshape(y, [-1, 64, 8])[:, :, 0], self.w)


def _signature(frozen) -> SignatureGraph:
    return SignatureGraph(
        "serving_default", frozen.graph_def,
        {"x": TensorInfo(frozen.io.inputs[0].name, tf.float32, (None, 8, 8, 2))},
        {"y": TensorInfo(frozen.io.outputs[0].name, tf.float32, (None, 32))},
        weights=frozen.weights)


def test_weights_frozen_in_place_are_written_from_their_variables(tmp_path, monkeypatch):
    """Past the threshold the matmul weight is stored in variables/ as the loaded variable
    itself (no copy of it is made to write it), the convolution filter goes back into the
    graph as a constant (oneDNN caches a constant filter's layout), and plain
    ``tf.saved_model.load`` answers as the original."""
    # 50 KiB: weights past 2 KiB (1/24) live in variables; the graph itself fits.
    monkeypatch.setenv("TFOPT_MAX_GRAPH_MB", "0.05")
    module = Dense()
    sig = _signature(freeze_concrete_function(module.__call__.get_concrete_function()))
    _, variables = graph_function(sig)
    assert [id(v) for v in variables] == [id(module.w)]
    stored = write_saved_model({sig.key: sig}, str(tmp_path / "out"))
    assert list(stored[sig.key]) == [n.name for n in sig.graph_def.node
                                     if n.op == "Const" and n.attr["dtype"].type == 1
                                     and n.attr["value"].tensor.tensor_shape.dim
                                     and n.attr["value"].tensor.tensor_shape.dim[0].size == 64]
    x = np.random.default_rng(3).normal(size=(2, 8, 8, 2)).astype(np.float32)
    loaded = tf.saved_model.load(str(tmp_path / "out"))
    got = loaded.signatures["serving_default"](x=tf.constant(x))["y"].numpy()
    np.testing.assert_allclose(got, module(x).numpy(), rtol=1e-5, atol=1e-5)
    saved_graph = loaded.signatures["serving_default"].graph.as_graph_def()
    filters = [n for f in saved_graph.library.function for n in f.node_def
               if n.op == "Const" and len(n.attr["value"].tensor.tensor_content) == 3 * 3 * 2 * 8 * 4]
    assert filters, "the convolution filter should be a constant in the written graph"
