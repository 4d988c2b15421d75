"""A graph that aborts TensorFlow natively becomes an ordinary error, not a dead process."""

import numpy as np
import pytest
import tensorflow as tf

from tfopt import isolate
from tfopt.graph import set_attr
from tfopt.model import SignatureGraph, TensorInfo
from tfopt.saver import write_saved_model


def _crashing_signature() -> SignatureGraph:
    """DepthwiseConv2dNative with EXPLICIT padding feeding BiasAdd + Relu6: valid per the op
    definition, yet TF 2.21's Grappler aborts on it (why fuse_pad never emits it)."""
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name="x")
        y = tf.nn.depthwise_conv2d(x, tf.ones([3, 3, 3, 1]), [1, 2, 2, 1], "VALID", name="dw")
        tf.nn.relu6(tf.nn.bias_add(y, tf.ones([3])), name="y")
    gd = g.as_graph_def()
    for node in gd.node:
        if node.name == "dw":
            set_attr(node, "padding", "EXPLICIT")
            set_attr(node, "explicit_paddings", [0, 0, 1, 1, 1, 1, 0, 0])
    return SignatureGraph("serving_default", gd,
                          {"x": TensorInfo("x:0", tf.float32, (None, 8, 8, 3))},
                          {"y": TensorInfo("y:0", tf.float32, (None, 4, 4, 3))})


def test_native_abort_is_reported(tmp_path):
    sig = _crashing_signature()
    feeds = {"x": np.ones((1, 8, 8, 3), np.float32)}
    with pytest.raises(isolate.ChildFailed, match="crashed"):
        isolate.run_graph_def(sig, feeds)
    path = str(tmp_path / "m")
    write_saved_model({"serving_default": sig}, path)
    with pytest.raises(isolate.ChildFailed, match="SIGABRT"):
        isolate.run_saved_model(path, "serving_default", feeds)


def test_strings_round_trip(two_signatures):
    got = isolate.run_saved_model(two_signatures, "lengths",
                                  {"words": np.array([b"ab", b"abcd"], dtype=object)})
    np.testing.assert_array_equal(got["n"], [4, 8])


def test_benchmark_survives_a_crashing_model(tmp_path):
    from tfopt.benchmark import Settings, benchmark
    from tfopt.errors import TfoptError

    path = str(tmp_path / "crash")
    write_saved_model({"serving_default": _crashing_signature()}, path)
    with pytest.raises(TfoptError, match="process died"):
        benchmark([path], Settings(num_iter=2, num_warmup=1))
