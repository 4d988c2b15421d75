"""function_bodies and check-only If removal: a TF2 model with tf.cond, tf.while_loop, an
embedding lookup and asserts optimizes with no check, print or Identity chain left anywhere."""

import numpy as np
import pytest
import tensorflow as tf

import tfopt
from tests.conftest import run_saved_model

DEBUG = {"Assert", "CheckNumerics", "CheckNumericsV2", "Print", "PrintV2"}


@pytest.fixture(scope="module")
def control_flow_model(tmp_path_factory) -> str:
    class Module(tf.Module):
        def __init__(self):
            super().__init__()
            rng = np.random.default_rng(0)
            self.emb = tf.Variable(rng.standard_normal((20, 4)).astype(np.float32))
            self.w = tf.Variable(rng.standard_normal((4, 4)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.int32, name="ids"),
                                      tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, ids, x):
            tf.debugging.assert_non_negative(ids, message="negative id")
            tf.debugging.assert_less(x, 100.0, message="x too large")  # float data: an If
            v = tf.debugging.check_numerics(tf.gather(self.emb, ids), "v")

            def body(i, acc):
                tf.print("step", i)
                scale = tf.constant(0.5) * tf.constant(2.0)
                acc = tf.identity(tf.identity(tf.matmul(acc, self.w) * scale))
                return i + 1, tf.debugging.check_numerics(acc + v, "acc")

            _, acc = tf.while_loop(lambda i, a: i < 3, body, [tf.constant(0), x])
            y = tf.cond(tf.reduce_sum(x) > 0, lambda: tf.identity(tf.identity(acc)) * 2.0,
                        lambda: tf.debugging.check_numerics(acc, "a") - 1.0)
            return {"y": y}

    module = Module()
    path = str(tmp_path_factory.mktemp("models") / "control_flow")
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    return path


def _all_nodes(path):
    graph = tf.saved_model.load(path).signatures["serving_default"].graph.as_graph_def()
    main = list(graph.node)
    bodies = {f.signature.name: list(f.node_def) for f in graph.library.function}
    return main, bodies


def test_no_checks_prints_or_identity_chains_anywhere(control_flow_model, tmp_path):
    out = str(tmp_path / "opt")
    report = tfopt.optimize(control_flow_model, out, batch_size=3)
    assert report.verified and report.worst.rel < 1e-5
    notes = "; ".join(n for r in report.signatures["serving_default"].passes for n in r.notes)
    assert "function bodies cleaned" in notes and "If nodes that only checked" in notes
    # what the written model holds, as TF loads it (the frozen graph is in the MetaGraph)
    from tfopt.loader import load_model

    frozen = load_model(out).signatures["serving_default"].graph_def
    everything = list(frozen.node) + [n for f in frozen.library.function for n in f.node_def]
    assert not [n.name for n in everything if n.op in DEBUG]
    assert {n.op for n in frozen.node} >= {"While", "If"} or {"StatelessWhile"} & {
        n.op for n in frozen.node}
    for fn in frozen.library.function:
        nodes = {n.name: n for n in fn.node_def}
        chains = [n.name for n in fn.node_def if n.op == "Identity" and n.input
                  and nodes.get(n.input[0].split(":")[0], n).op == "Identity"
                  and n.input[0].split(":")[0] in nodes]
        assert not chains, (fn.signature.name, chains)
    feeds = {"ids": np.array([1, 5, 19], np.int32),
             "x": np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)}
    np.testing.assert_allclose(run_saved_model(out, feeds)["y"],
                               run_saved_model(control_flow_model, feeds)["y"], rtol=1e-5)
