"""identity: tests on hand-built graphs, numbers compared with the original."""

import numpy as np
import tensorflow as tf

from tests.passes.helpers import context, counts, graph_of, run
from tfopt.passes.identity import RemoveIdentities


def test_identity_chain_spliced_output_name_kept():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [3], name="x")
        a = tf.identity(tf.identity(tf.stop_gradient(x)), name="a")
        tf.identity(tf.math.square(a), name="out")

    gd = graph_of(build)
    result = RemoveIdentities().run(gd, context(["out"], ["x:0"]))
    names = {n.name: n.op for n in result.graph_def.node}
    assert names["out"] == "Identity"  # a signature output keeps its name
    assert "StopGradient" not in names.values()
    assert list(names.values()).count("Identity") == 1
    feed = {"x:0": np.array([1, 2, 3], np.float32)}
    np.testing.assert_array_equal(run(result.graph_def, ["out"], feed)[0], [1, 4, 9])


def test_identity_n_ports():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [4], name="x")
        a, b = tf.split(x, 2)
        ia, ib = tf.identity_n([a, b], name="idn")
        tf.subtract(ib, ia, name="out")

    gd = graph_of(build)
    result = RemoveIdentities().run(gd, context(["out"], ["x:0"]))
    assert "IdentityN" not in counts(result.graph_def)
    feed = {"x:0": np.array([1, 2, 10, 20], np.float32)}
    np.testing.assert_array_equal(run(result.graph_def, ["out"], feed)[0], [9, 18])


def test_control_edges_on_constants_dropped():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [3], name="x")
        w = tf.constant([1.0, 2.0, 3.0], name="w")
        unused = tf.constant([7.0], name="unused_weight")
        with tf.control_dependencies([unused]):
            tf.identity(x * w, name="out")

    gd = graph_of(build)
    result = RemoveIdentities().run(gd, context(["out"], ["x:0"]))
    assert "1 control edges on constants dropped" in result.notes
    assert not [t for n in result.graph_def.node for t in n.input if t.startswith("^")]
    feed = {"x:0": np.array([1, 2, 3], np.float32)}
    np.testing.assert_array_equal(run(result.graph_def, ["out"], feed)[0], [1, 4, 9])
