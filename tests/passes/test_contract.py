"""The contract every registered pass keeps, checked on a shared set of small graphs:
the graph stays valid, the outputs stay equal, and running it twice changes nothing more."""

import numpy as np
import pytest
import tensorflow as tf

from tests.passes.helpers import context, graph_of, rand, run
from tfopt.passes.base import check_graph
from tfopt.passes.pipeline import instances
from tfopt.passes.registry import NAMES
from tfopt.zoo.builders import v1_control_flow


def _cnn():
    x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name="x")
    y = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    y = tf.nn.conv2d(y, tf.constant(rand(3, 3, 3, 4)), 1, "VALID")
    y, _, _ = tf.compat.v1.nn.fused_batch_norm(
        y, np.linspace(0.5, 1.5, 4, dtype=np.float32), np.full(4, 0.1, np.float32),
        np.full(4, 0.2, np.float32), np.linspace(0.7, 1.3, 4, dtype=np.float32),
        is_training=False)
    y = tf.identity(tf.debugging.check_numerics(tf.nn.relu6(y), "bad"))
    z = tf.nn.depthwise_conv2d(y, tf.constant(rand(3, 3, 4, 1, seed=1)), [1, 1, 1, 1], "SAME")
    z = tf.nn.relu(tf.nn.bias_add(z, tf.constant(rand(4, seed=2))) + y)
    s = tf.constant(np.linspace(0.5, 1.5, 4, dtype=np.float32))  # pre-activation BN (v2)
    z = z + tf.nn.conv2d(tf.nn.relu(z * s + tf.constant(rand(4, seed=20))),
                         tf.constant(rand(1, 1, 4, 4, seed=21)), 1, "SAME")
    z = tf.nn.conv2d(z, tf.constant(rand(3, 3, 1, 4, seed=9)), 1, "SAME")  # groups = 4
    z = tf.nn.atrous_conv2d(z, tf.constant(rand(3, 3, 4, 4, seed=16)), 2, "SAME")  # TF1 form
    t = tf.nn.bias_add(tf.transpose(z, [0, 3, 1, 2]), tf.constant(rand(4, seed=19)),
                       data_format="NCHW")  # a GPU-era NCHW op (BiasAdd runs on every CPU)
    z = tf.transpose(tf.nn.relu(t), [0, 2, 3, 1])
    r = tf.nn.conv1d(tf.squeeze(z[:, :1], [1]), tf.constant(rand(3, 4, 4, seed=17)), 1, "SAME")
    z = tf.expand_dims(tf.nn.relu(r * tf.constant(rand(4, seed=18))), 1)  # Conv1D + scale
    h = tf.reshape(tf.reduce_mean(z, [1, 2]), [-1, 4]) * tf.constant(1.0)
    h = tf.nn.bias_add(tf.matmul(h, tf.constant(rand(4, 5, seed=3))), tf.constant(rand(5)))
    tf.nn.tanh(h + tf.constant(0.0), name="out")


def _dense_with_duplicates():
    x = tf.compat.v1.placeholder(tf.float32, [None, 6], name="x")
    w = tf.constant(rand(6, 6, seed=4))
    a = tf.matmul(x, w) + tf.constant(rand(6, seed=5))
    b = tf.matmul(x, w) + tf.constant(rand(6, seed=5))
    scale = tf.math.rsqrt(tf.constant(np.full(6, 4.0, np.float32)) + 1e-3)
    keep = tf.compat.v1.placeholder_with_default(1.0, [], name="keep_prob")  # a TF1 flag
    same = tf.raw_ops.Cast(x=a * scale * keep, DstT=tf.float32)  # a Cast to its own type
    y = same + b
    gates = tf.sigmoid(y[:, :2]) * y[:, 2:4] + y[:, 4:]  # a GRU's three slices of one product
    with tf.control_dependencies([tf.debugging.Assert(tf.reduce_all(x > -100), [x])]):
        tf.nn.relu(tf.identity(gates), name="out")


def _transformer_ffn():
    x = tf.compat.v1.placeholder(tf.float32, [None, None, 4], name="x")
    h = tf.tensordot(x, tf.constant(rand(4, 6, seed=10)), axes=[[2], [0]])
    h = tf.nn.gelu(tf.nn.bias_add(h, tf.constant(rand(6, seed=11))), approximate=True)
    y = tf.tensordot(h, tf.constant(rand(6, 4, seed=12)), axes=[[2], [0]]) + x
    q = tf.einsum("abc,cde->abde", y, tf.constant(rand(4, 2, 2, seed=15)))  # 2 heads of 2
    s = tf.linalg.matmul(tf.transpose(q, [0, 2, 1, 3]), tf.transpose(q, [0, 2, 3, 1]))
    s = tf.reduce_sum(tf.transpose(s, [0, 1, 3, 2]), [1, 3])[..., None]
    z = y * tf.constant(rand(4, seed=13)) + s
    with tf.control_dependencies([h]):  # implied: h already reaches z (as freezing leaves)
        tf.identity(z, name="out")


def _masked_recurrence():
    """A masked RNN as Keras writes it: the time steps unstacked into a TensorList, each
    step's input projected inside the loop, the bias split in the body, a counter and a time
    step that move together, an output and a state updated alike, a condition reading a
    pass-through length."""
    x = tf.compat.v1.placeholder(tf.float32, [None, 5, 3], name="x")
    w, u = tf.constant(rand(3, 4, seed=22)), tf.constant(rand(4, 4, seed=23))
    bias = tf.constant(rand(2, 4, seed=27))
    steps = tf.shape(x)[1]
    h0 = tf.zeros([tf.shape(x)[0], 4])
    inputs = tf.TensorArray(tf.float32, size=5).unstack(tf.transpose(x, [1, 0, 2]))
    masks = tf.TensorArray(tf.bool, size=5).unstack(tf.transpose(x[:, :, :1] > -0.5, [1, 0, 2]))

    def body(i, t, o, h, n):
        b_in, b_rec = tf.unstack(bias)
        step = inputs.read(t)
        new = tf.tanh(tf.nn.bias_add(tf.matmul(step, w), b_in) + tf.matmul(h, u) + b_rec)
        keep = masks.read(t)
        return i + 1, t + 1, tf.where(keep, new, o), tf.where(keep, new, h), n

    _, _, o, h, _ = tf.while_loop(lambda i, t, o, h, n: tf.logical_and(i < n, t < 5), body,
                                  (0, 0, h0, h0, steps))
    tf.identity(o + 2.0 * h, name="out")


def _two_directions_tf1():
    """A bidirectional RNN as a TF1 export stores it: two lowered loops (Enter/Merge/Switch
    frames) side by side, each step's input projected before its loop."""
    x = tf.compat.v1.placeholder(tf.float32, [None, 5, 3], name="x")
    outputs = []
    with v1_control_flow():
        for seed, steps in ((30, x), (31, tf.reverse(x, [1]))):
            projected = tf.einsum("btc,cd->btd", steps, tf.constant(rand(3, 4, seed=seed)))
            inputs = tf.TensorArray(tf.float32, size=5).unstack(
                tf.transpose(projected, [1, 0, 2]))
            u = tf.constant(rand(4, 4, seed=seed + 10) * 0.5)
            _, h = tf.while_loop(
                lambda t, h: t < 5, lambda t, h, u=u, inputs=inputs: (
                    t + 1, tf.tanh(inputs.read(t) + tf.matmul(h, u))),
                (0, tf.zeros([tf.shape(x)[0], 4])))
            outputs.append(h)
    tf.identity(tf.concat(outputs, 1), name="out")


GRAPHS = {"cnn": (_cnn, {"x:0": rand(2, 8, 8, 3, seed=7)}),
          "rnn": (_masked_recurrence, {"x:0": rand(3, 5, 3, seed=24)}),
          "rnn_tf1": (_two_directions_tf1, {"x:0": rand(3, 5, 3, seed=25)}),
          "ffn": (_transformer_ffn, {"x:0": rand(2, 5, 4, seed=14)}),
          "dense": (_dense_with_duplicates, {"x:0": rand(3, 6, seed=8)})}


ALL = instances(frozenset(NAMES))


@pytest.mark.parametrize("graph_name", sorted(GRAPHS))
@pytest.mark.parametrize("spec,pass_", ALL, ids=[spec.name for spec, _ in ALL])
def test_pass_contract(spec, pass_, graph_name):
    build, feeds = GRAPHS[graph_name]
    gd = graph_of(build)
    ctx = context(["out"], ["x:0"])
    first = pass_.run(gd, ctx)
    assert check_graph(first.graph_def, ctx) is None
    assert first.changed == bool(first.notes)
    want = run(gd, ["out"], feeds)[0]
    got = run(first.graph_def, ["out"], feeds)[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    second = pass_.run(first.graph_def, ctx)
    assert not second.changed, f"{spec.name} changed the graph again: {second.notes}"


def test_every_pass_changes_some_shared_graph():
    """The shared graphs exercise every pass (else the contract above proves little)."""
    unused = []
    for spec, pass_ in ALL:
        ctx = context(["out"], ["x:0"])
        if not any(pass_.run(graph_of(build), ctx).changed for build, _ in GRAPHS.values()):
            unused.append(spec.name)
    # TF1 Switch/Merge and function calls: covered in test_cleanup and test_inline_calls;
    # reduced_precision acts only with precision="bf16": test_reduced_precision;
    # quantize_int8 only with precision="int8" and calibrated ranges: test_quantize_int8;
    # unfuse_kernels only on graphs that arrive fused: test_unfuse_kernels
    assert unused == ["inline_calls", "switch_const", "unfuse_kernels", "reduced_precision",
                      "quantize_int8"]
