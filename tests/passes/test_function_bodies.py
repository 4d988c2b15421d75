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
    # lower_control_flow skipped: the bodies are looked at as the passes leave them (lowering
    # inlines them, with the Identity nodes of its own call boundaries and loop pivots)
    report = tfopt.optimize(control_flow_model, out, batch_size=3,
                            skip=["lower_control_flow"])
    assert report.verified and report.worst.rel < 1e-5
    notes = "; ".join(n for r in report.signatures["serving_default"].passes for n in r.notes)
    assert "function bodies cleaned" in notes and "If nodes that only checked" in notes
    # what the written model holds, as TF loads it (the frozen graph is in the MetaGraph)
    from tfopt.model.formats import load_model

    frozen = load_model(out).signatures["serving_default"].graph_def
    everything = list(frozen.node) + [n for f in frozen.library.function for n in f.node_def]
    assert not [n.name for n in everything if n.op in DEBUG]
    ops = {n.op for n in everything}
    assert {"While", "If"} <= ops or {"StatelessWhile", "StatelessIf"} <= ops
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


@pytest.fixture(scope="module")
def loop_arithmetic_model(tmp_path_factory) -> str:
    """A loop whose body computes ``2.0 * 3.0 + 1.0`` on every iteration."""

    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x):
            def body(i, acc):
                step = tf.constant(2.0) * tf.constant(3.0) + tf.constant(1.0)
                return i + 1, acc * 0.5 + step

            _, acc = tf.while_loop(lambda i, a: i < 3, body, [tf.constant(0), x])
            return {"y": acc}

    module = Module()
    path = str(tmp_path_factory.mktemp("models") / "loop_arithmetic")
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    return path


def _body_ops(path) -> list[str]:
    from tfopt.model.formats import load_model

    frozen = load_model(path).signatures["serving_default"].graph_def
    return [n.op for f in frozen.library.function for n in f.node_def]


@pytest.mark.parametrize("skip", [[], ["constant_fold"]], ids=["default", "skip"])
def test_loop_body_constant_arithmetic_follows_skip(loop_arithmetic_model, tmp_path, skip):
    """Bodies run the same pipeline as the main graph: constant_fold folds the body's
    arithmetic by default, leaves it with --skip constant_fold, and its record is in the
    per-pass table under function_bodies."""
    out = str(tmp_path / "opt")
    report = tfopt.optimize(loop_arithmetic_model, out, skip=skip)
    assert report.verified
    ops = _body_ops(out)
    records = {r.label: r for r in report.signatures["serving_default"].passes}
    if skip:
        assert ops.count("Mul") >= 2 and "AddV2" in ops  # 2.0 * 3.0 and + 1.0 still there
        assert "function_bodies > constant_fold" not in records
    else:
        assert ops.count("Mul") == 1  # only acc * 0.5 is left; 2.0 * 3.0 + 1.0 is one Const
        folded = records["function_bodies > constant_fold"]
        assert folded.changed and folded.ops_delta.get("Mul", 0) < 0
        assert "function_bodies > constant_fold" in report.table()
