"""nchw_layout: a GPU-era NCHW graph runs in NHWC, checked against the same net built NHWC."""

import numpy as np
import tensorflow as tf

from tests.passes.helpers import bn_params, context, counts, graph_of, rand, run
from tfopt.passes.fold_batch_norm import FoldBatchNorm
from tfopt.passes.nchw_layout import NchwToNhwc
from tfopt.passes.strip_unused import StripUnused


def _net(fmt: str) -> None:
    """conv + BN + ReLU, a strided depthwise conv + bias, a residual add with a scalar scale,
    a channel scale, max and average pooling, mean over space: in ``fmt`` (the input is NCHW
    either way)."""
    x = tf.compat.v1.placeholder(tf.float32, [None, 3, 9, 9], name="x")
    h = x if fmt == "NCHW" else tf.transpose(x, [0, 2, 3, 1])

    def per_dim(h_, w_):
        return [1, 1, h_, w_] if fmt == "NCHW" else [1, h_, w_, 1]

    h = tf.nn.conv2d(h, tf.constant(rand(3, 3, 3, 4)), per_dim(1, 1), "SAME", data_format=fmt)
    h = tf.compat.v1.nn.fused_batch_norm(h, *bn_params(4), is_training=False,
                                         data_format=fmt)[0]
    h = tf.nn.relu(h)
    d = tf.nn.depthwise_conv2d(h, tf.constant(rand(3, 3, 4, 1, seed=1)), per_dim(1, 1), "SAME",
                               data_format=fmt)
    d = tf.nn.bias_add(d, tf.constant(rand(4, seed=2)), data_format=fmt)
    h = tf.nn.relu6(d * 0.5 + h)
    scale = rand(4, seed=4)  # an unfused batch norm's scale, broadcast along the channels
    h = h * tf.constant(scale.reshape(4, 1, 1) if fmt == "NCHW" else scale)
    h = tf.nn.max_pool2d(h, 3, per_dim(2, 2), "SAME", data_format=fmt)
    h = tf.nn.avg_pool2d(h, 2, per_dim(1, 1), "VALID", data_format=fmt)
    tf.reduce_mean(h, [2, 3] if fmt == "NCHW" else [1, 2], name="out")


def test_nchw_graph_runs_in_nhwc():
    gd = graph_of(lambda: _net("NCHW"))
    ctx = context(["out"], ["x:0"])
    result = gd
    while True:  # the pipeline's fixed point, for this pass and strip_unused
        step = NchwToNhwc().run(result, ctx)
        result = StripUnused().run(step.graph_def, ctx).graph_def
        if not step.changed:
            break
    assert all(n.attr["data_format"].s != b"NCHW" for n in result.node)
    assert counts(result)["Transpose"] == 2  # the input's, and the one before the Mean
    feeds = {"x:0": rand(2, 3, 9, 9, seed=3)}
    want = run(graph_of(lambda: _net("NHWC")), ["out"], feeds)[0]  # runs on every CPU runtime
    np.testing.assert_allclose(run(result, ["out"], feeds)[0], want, rtol=1e-5, atol=1e-6)
    folded = FoldBatchNorm().run(result, ctx).graph_def  # the batch norm now reads the conv
    assert not any(op.startswith("FusedBatchNorm") for op in counts(folded))
    np.testing.assert_allclose(run(folded, ["out"], feeds)[0], want, rtol=1e-5, atol=1e-6)


def test_nhwc_graphs_and_other_transposes_stay():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4, 5, 6], name="x")
        h = tf.nn.relu(tf.nn.conv2d(x, tf.constant(rand(1, 1, 6, 6)), 1, "SAME"))
        t = tf.nn.relu(tf.transpose(h, [0, 2, 1, 3]))  # a head split, not a layout change
        tf.identity(t, name="out")

    assert not NchwToNhwc().run(graph_of(build), context(["out"], ["x:0"])).changed


def test_nchw_bias_add_on_a_sequence_stays():
    """BiasAdd takes NCHW for rank 3 too ([batch, channels, steps]): not a 4-D feature map."""
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4, 7], name="x")
        y = tf.nn.bias_add(x, tf.constant(rand(4)), data_format="NCHW")
        tf.nn.relu(y, name="out")

    assert not NchwToNhwc().run(graph_of(build), context(["out"], ["x:0"])).changed
