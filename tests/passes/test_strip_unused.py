"""strip_unused: nodes and library functions the outputs never reach go; control deps stay."""

import numpy as np
import tensorflow as tf

from tests.passes.helpers import context, counts, graph_of, run
from tfopt.passes.strip_unused import StripUnused


def test_unreachable_nodes_go_control_dependencies_stay():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [3], name="x")
        tf.math.exp(x, name="unused_branch")
        gate = tf.identity(x * 2.0, name="gate")
        with tf.control_dependencies([gate]):
            tf.identity(x + 1.0, name="out")

    gd = graph_of(build)
    result = StripUnused().run(gd, context(["out"], ["x:0"]))
    names = {n.name for n in result.graph_def.node}
    assert "unused_branch" not in names and "gate" in names  # ^gate orders the output
    assert result.notes == ["1 unreachable nodes removed"]
    np.testing.assert_array_equal(run(result.graph_def, ["out"], {"x:0": [1, 2, 3]})[0],
                                  [2, 3, 4])


def test_unused_library_functions_go():
    @tf.function
    def used(x):
        return x * 2.0

    @tf.function
    def fn(x):
        return used(x)

    gd = fn.get_concrete_function(tf.TensorSpec([2], tf.float32)).graph.as_graph_def()
    extra = gd.library.function.add()
    extra.CopyFrom(gd.library.function[0])
    extra.signature.name = "never_called"
    out = next(n.name for n in gd.node if n.op == "Identity")
    x = next(n.name for n in gd.node if n.op == "Placeholder")
    result = StripUnused().run(gd, context([out], [x + ":0"]))
    assert "never_called" not in {f.signature.name for f in result.graph_def.library.function}
    assert counts(result.graph_def) == counts(gd)
