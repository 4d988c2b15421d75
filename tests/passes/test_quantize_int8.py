"""quantize_int8: convolutions and matmuls in int8 at calibrated ranges, int8 flowing between
consecutive convolutions, and the result close to float32 on real TensorFlow kernels."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tests.passes.helpers import context, counts, graph_of, rand, run
from tfopt.graph.quantized import quantized_weights
from tfopt.model.signature import SignatureGraph, TensorInfo
from tfopt.optimizer.calibrate import calibrate, observed_tensors
from tfopt.passes.quantize_int8 import QuantizeInt8, Range

X = {"x:0": np.abs(rand(4, 8, 8, 3, seed=1))}


def _cnn():
    """conv -> bias -> relu -> conv -> bias -> relu6 -> depthwise -> mean -> dense -> softmax
    (the depthwise and the first conv do few multiply-adds, but they have int8 neighbours)"""
    x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name="x")
    h = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, tf.constant(rand(3, 3, 3, 16, seed=2) * .3),
                                               1, "SAME"), tf.constant(rand(16, seed=3))))
    h = tf.nn.relu6(tf.nn.bias_add(tf.nn.conv2d(h, tf.constant(rand(3, 3, 16, 16, seed=4) * .2),
                                                1, "SAME"), tf.constant(rand(16, seed=5))))
    h = tf.nn.depthwise_conv2d(h, tf.constant(rand(3, 3, 16, 1, seed=6) * .3), [1, 1, 1, 1],
                               "SAME")
    pooled = tf.tile(tf.reduce_mean(h, [1, 2]), [1, 16])  # 256 in, 128 out: worth int8
    logits = (tf.matmul(pooled, tf.constant(rand(256, 128, seed=7) * .1))
              + tf.constant(rand(128, seed=8)))
    tf.nn.softmax(logits, name="out")


def _ranges(graph_def) -> dict[str, Range]:
    sig = SignatureGraph("serving_default", graph_def,
                         {"x": TensorInfo("x:0", tf.float32, (None, 8, 8, 3))},
                         {"out": TensorInfo("out:0", tf.float32, (None, 5))})
    return calibrate(sig, {"x": np.abs(rand(32, 8, 8, 3, seed=9))})


def _int8_ctx():
    return dataclasses.replace(context(["out"], ["x:0"]), precision="int8")


@pytest.mark.int8_cpu
def test_convolutions_and_matmul_run_in_int8_close_to_float32():
    gd = graph_of(_cnn)
    result = QuantizeInt8(ranges=_ranges(gd)).run(gd, _int8_ctx())
    assert result.changed
    ops = counts(result.graph_def)
    assert ops.get("Conv2D", 0) == 0 and ops.get("MatMul", 0) == 0
    assert ops["_FusedQuantizedConv2D"] == 2 and ops["_QuantizedMatMul"] == 1
    assert ops["_FusedQuantizedDepthwiseConv2D"] == 1
    # the second conv and the depthwise read the int8 output of the op before: one
    # QuantizeV2 for the input x, one for the matmul after the float32 Mean
    assert ops["QuantizeV2"] == 2
    assert any("pairs cancelled" in n for n in result.notes)
    weights = [n for n in result.graph_def.node if n.op == "Const"
               and n.attr["dtype"].type == tf.qint8.as_datatype_enum]
    assert len(weights) == 4
    assert not [n.name for n in result.graph_def.node if n.op == "Const"  # no float32 copy
                and n.attr["dtype"].type == tf.float32.as_datatype_enum
                and n.attr["value"].tensor.ByteSize() > 1000]  # (biases are smaller)
    want, got = run(gd, ["out"], X)[0], run(result.graph_def, ["out"], X)[0]
    rms = np.sqrt(np.mean((got - want) ** 2) / np.mean(want ** 2))
    assert rms < 2e-2
    assert (got.argmax(1) == want.argmax(1)).all()


def test_uncalibrated_ops_stay_float32_and_say_why():
    gd = graph_of(_cnn)
    ranges = _ranges(gd)
    matmul = next(n.name for n in gd.node if n.op == "MatMul")
    ranges = {k: v for k, v in ranges.items() if not k.startswith(matmul)}
    result = QuantizeInt8(ranges=ranges).run(gd, _int8_ctx())
    assert counts(result.graph_def)["MatMul"] == 1
    assert "1 MatMul (no calibrated range) kept in float32" in result.notes


def test_nothing_changes_without_int8():
    gd = graph_of(_cnn)
    # ranges given, but the run computes in float32: nothing to do
    assert not QuantizeInt8(ranges=_ranges(gd)).run(gd, context(["out"], ["x:0"])).changed
    assert not QuantizeInt8(ranges={}).run(gd, _int8_ctx()).changed


def test_calibration_observes_each_quantized_ops_input_and_output():
    gd = graph_of(_cnn)
    ranges = _ranges(gd)
    assert set(ranges) == set(observed_tensors(SignatureGraph(
        "s", gd, {"x": TensorInfo("x:0", tf.float32, None)}, {})))
    relu6 = next(n.name for n in gd.node if n.op == "Relu6")
    assert ranges[f"{relu6}:0"].low >= 0 and ranges[f"{relu6}:0"].high <= 6
    assert ranges["x:0"].unsigned


@pytest.mark.parametrize("low, high, kind, lo, hi", [
    (0.0, 3.0, tf.quint8, 0.0, 3.0), (-1.0, 3.0, tf.qint8, -3.0, 3.0),
    (-4.0, 1.0, tf.qint8, -4.0, 4.0), (0.0, 0.0, tf.quint8, 0.0, 1e-6)])
def test_activation_form(low, high, kind, lo, hi):
    assert Range(low, high).quantized() == (kind, lo, pytest.approx(hi))


def test_weights_per_channel_symmetric():
    w = rand(3, 3, 4, 6, seed=3) * np.arange(1, 7)  # channels of very different scales
    w[..., 5] = 0.0
    q, bound = quantized_weights(w, 3)
    assert q.dtype == np.int8 and np.abs(q).max() <= 127
    np.testing.assert_allclose(bound[:5], np.abs(w[..., :5]).reshape(-1, 5).max(0), rtol=1e-6)
    assert bound[5] == 1.0 and not q[..., 5].any()  # an all-zero channel stays zero
    back = q.astype(np.float32) * bound / 127
    assert np.abs(back - w).max() <= bound.max() / 254 + 1e-7


def _residual(shortcut_read_later: bool = False, shortcut_is_input: bool = False):
    """relu(conv(relu(conv(h))) + h), h = relu(conv(x)): a ResNet v1 block's identity
    shortcut; optionally h also read after the add, or read by the summing conv itself."""
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name="x")
        h = tf.nn.relu(tf.nn.bias_add(
            tf.nn.conv2d(x, tf.constant(rand(3, 3, 3, 16, seed=2) * .3), 1, "SAME"),
            tf.constant(rand(16, seed=3))))
        g = h if shortcut_is_input else tf.nn.relu(tf.nn.bias_add(
            tf.nn.conv2d(h, tf.constant(rand(1, 1, 16, 16, seed=6) * .3), 1, "SAME"),
            tf.constant(rand(16, seed=7))))
        r = tf.nn.bias_add(tf.nn.conv2d(g, tf.constant(rand(3, 3, 16, 16, seed=4) * .2), 1,
                                        "SAME"), tf.constant(rand(16, seed=5)))
        out = tf.nn.relu(r + h)
        tf.identity(out + h if shortcut_read_later else out, name="out")
    return build


def _quantized_residual(build):
    gd = graph_of(build)
    sig = SignatureGraph("serving_default", gd,
                         {"x": TensorInfo("x:0", tf.float32, (None, 8, 8, 3))},
                         {"out": TensorInfo("out:0", tf.float32, (None, 8, 8, 16))})
    ranges = calibrate(sig, {"x": np.abs(rand(32, 8, 8, 3, seed=9))})
    result = QuantizeInt8(ranges=ranges).run(gd, _int8_ctx())
    fused = [list(n.attr["fused_ops"].list.s) for n in result.graph_def.node
             if n.op == "_FusedQuantizedConv2D"]
    for _ in range(3):  # the kernel sums into the summand's buffer: run it more than once
        want, got = run(gd, ["out"], X)[0], run(result.graph_def, ["out"], X)[0]
        assert np.sqrt(np.mean((got - want) ** 2) / np.mean(want ** 2)) < 2e-2
    return result, fused


@pytest.mark.int8_cpu
def test_residual_add_and_relu_fuse_into_the_quantized_conv():
    result, fused = _quantized_residual(_residual())
    assert [b"BiasAdd", b"Sum", b"Relu", b"Requantize"] in fused
    ops = counts(result.graph_def)
    assert "AddV2" not in ops and "Relu" not in ops
    assert ops["QuantizeV2"] == 1  # the summand is the first conv's int8 output, as it is


@pytest.mark.int8_cpu
def test_residual_add_stays_apart_when_its_summand_is_read_again():
    """The kernel accumulates into the summand's buffer: a summand read after the add, or by
    the summing conv itself as its input, would be overwritten (it crashed TensorFlow)."""
    for build in (_residual(shortcut_read_later=True), _residual(shortcut_is_input=True)):
        result, fused = _quantized_residual(build)
        assert not any(b"Sum" in f for f in fused)
        assert counts(result.graph_def)["AddV2"] >= 1


def test_calibration_observes_a_bias_that_grappler_would_fuse_into_a_swish():
    """conv -> bias -> x * sigmoid(x): Grappler's remapper fuses the three even when the bias
    output is fetched; calibration runs the float graph with Grappler off and sees it."""
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name="x")
        b = tf.nn.bias_add(tf.nn.conv2d(x, tf.constant(rand(1, 1, 3, 8, seed=2)), 1, "SAME"),
                           tf.constant(rand(8, seed=3)))
        tf.identity(b * tf.sigmoid(b), name="out")

    gd = graph_of(build)
    sig = SignatureGraph("s", gd, {"x": TensorInfo("x:0", tf.float32, (None, 8, 8, 3))},
                         {"out": TensorInfo("out:0", tf.float32, None)})
    bias = next(n.name for n in gd.node if n.op == "BiasAdd")
    ranges = calibrate(sig, {"x": rand(4, 8, 8, 3, seed=9)})
    assert f"{bias}:0" in ranges and not ranges[f"{bias}:0"].unsigned


def test_isolated_light_ops_stay_float32():
    """A depthwise 3x3 between float ops would need a QuantizeV2 and a Dequantize for 9
    multiply-adds per output: it stays float32 and the notes say why."""
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 4], name="x")
        h = tf.nn.depthwise_conv2d(tf.sigmoid(x), tf.constant(rand(3, 3, 4, 1, seed=6)),
                                   [1, 1, 1, 1], "SAME")
        tf.identity(tf.sigmoid(h), name="out")

    gd = graph_of(build)
    sig = SignatureGraph("s", gd, {"x": TensorInfo("x:0", tf.float32, (None, 8, 8, 4))},
                         {"out": TensorInfo("out:0", tf.float32, None)})
    ranges = calibrate(sig, {"x": rand(8, 8, 8, 4, seed=9)})
    result = QuantizeInt8(ranges=ranges).run(gd, _int8_ctx())
    assert not result.changed and counts(result.graph_def)["DepthwiseConv2dNative"] == 1
