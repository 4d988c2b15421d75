"""inline_calls: function calls freezing left (Keras' _conv_xla) become ordinary graph."""

import numpy as np
import tensorflow as tf

from tests.passes.helpers import context, counts, rand, run
from tfopt.passes.inline_calls import InlineCalls
from tfopt.passes.strip_unused import StripUnused


def _graph_with_calls():
    w = tf.constant(rand(4, 3, seed=1))

    @tf.function(experimental_attributes={"_noinline": True})
    def inner(x, w):
        return tf.nn.relu(tf.matmul(x, w)), tf.reduce_sum(x)

    @tf.function
    def outer(x):
        y, s = inner(x, w)
        return tf.identity(y * s, name="out")

    return outer.get_concrete_function(tf.TensorSpec([None, 4], tf.float32)).graph.as_graph_def()


def test_calls_are_inlined_and_answer_alike():
    gd = _graph_with_calls()
    assert counts(gd).get("PartitionedCall", 0) + counts(gd).get("StatefulPartitionedCall", 0) == 1
    x_name = next(n.name for n in gd.node if n.op == "Placeholder")
    out = next(n.name for n in gd.node if n.op == "Identity" and n.name.startswith("out"))
    ctx = context([out], [x_name + ":0"])
    result = InlineCalls().run(gd, ctx)
    assert result.notes == ["1 function calls inlined"]
    ops = counts(result.graph_def)
    assert "PartitionedCall" not in ops and "StatefulPartitionedCall" not in ops
    assert ops["MatMul"] == 1 and ops["Relu"] == 1 and ops["Sum"] == 1
    stripped = StripUnused().run(result.graph_def, ctx).graph_def
    assert len(stripped.library.function) == 0  # the body's library copy is gone
    feeds = {x_name + ":0": rand(3, 4, seed=2)}
    np.testing.assert_allclose(run(stripped, [out], feeds)[0], run(gd, [out], feeds)[0],
                               rtol=1e-6)
    assert not InlineCalls().run(stripped, ctx).changed
