"""switch_const: tests on hand-built graphs, numbers compared with the original."""

import numpy as np
import tensorflow as tf

from tests.passes.helpers import context, counts, graph_of, run
from tfopt.passes.identity import RemoveIdentities
from tfopt.passes.strip_unused import StripUnused
from tfopt.passes.switch_const import ResolveConstantSwitch
from tfopt.passes.training_nodes import RemoveTrainingNodes
from tfopt.zoo.builders import v1_control_flow


def test_placeholder_with_default_and_constant_switch():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [3], name="x")
        training = tf.compat.v1.placeholder_with_default(False, [], name="training")
        y = tf.compat.v1.cond(training, lambda: x * 100.0, lambda: x + 1.0)
        tf.identity(y, name="out")

    with v1_control_flow():
        gd = graph_of(build)
    ctx = context(["out"], ["x:0"])
    assert counts(gd)["Switch"] >= 1
    g = gd
    for p in (RemoveTrainingNodes(), RemoveIdentities(), ResolveConstantSwitch(), StripUnused(),
              RemoveIdentities()):
        g = p.run(g, ctx).graph_def
    ops = counts(g)
    assert "Switch" not in ops and "Merge" not in ops and "PlaceholderWithDefault" not in ops
    feed = {"x:0": np.array([1, 2, 3], np.float32)}
    np.testing.assert_array_equal(run(g, ["out"], feed)[0], [2, 3, 4])
