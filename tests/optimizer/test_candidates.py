"""The candidate driver end to end: choices that only happen when something goes wrong (a pass
that changes the answers, a pass that makes the model slower) are candidate sets too, kept or
dropped by their verdicts, and the report lists every candidate tried."""

from __future__ import annotations

import os
import re

import numpy as np

import tfopt
from tfopt.measure.stats import Ratio
from tfopt.optimizer.speed import SpeedCheck
from tfopt.verify.inputs import make_inputs
from tfopt.verify.runners import run_saved_model


def _ops(path: str) -> set[str]:
    from tfopt.model.formats import load_model

    sig = load_model(path).signatures["serving_default"]
    return {n.op for n in sig.graph_def.node}


def test_a_pass_that_changes_the_answers_is_switched_off_by_the_answers_choice(
        toy_tf1, tmp_path, monkeypatch):
    """fold_batch_norm made to fold wrong weights: the written model fails verification, the
    candidate whose passes run checked one by one replaces it (the pass switched off), and
    both are listed with their verdicts."""
    from tfopt.graph.nodes import const_value, set_const_value
    from tfopt.passes import fold_batch_norm

    folds = fold_batch_norm.FoldBatchNorm.apply

    def folds_wrong(self, view, ctx):
        before = {node.name: node.SerializeToString() for node in view}
        said = folds(self, view, ctx)
        for node in view:  # the weights and shifts it folded
            if node.op == "Const" and before.get(node.name) != node.SerializeToString():
                set_const_value(node, const_value(node) * 1.5)
        return said

    monkeypatch.setattr(fold_batch_norm.FoldBatchNorm, "apply", folds_wrong)
    out = str(tmp_path / "opt")
    # few passes: the checked candidate verifies every application under both runtimes
    report = tfopt.optimize(toy_tf1, out, batch_size=2, time=False,
                            passes=["switch_const", "identity", "fold_batch_norm"])
    assert report.verified and report.worst.rel < 1e-4
    assert any(n.startswith("[serving_default] pass fold_batch_norm skipped") for n in report.notes)
    rows = [r for r in report.candidates if r["choice"] == "answers"]
    assert [(r["candidate"], r["verified"], r["written"]) for r in rows] == [
        ("float32", False, False), ("float32, passes checked one by one", True, True)]
    assert rows[0]["why_not"] == "answers differently"
    assert "FusedBatchNormV3" in _ops(out)  # the batch norm stays, unfolded
    from tfopt.model.formats import load_model

    feeds = make_inputs(load_model(toy_tf1).signatures["serving_default"].inputs, 2)
    np.testing.assert_allclose(run_saved_model(out, "serving_default", feeds)["logits"],
                               run_saved_model(toy_tf1, "serving_default", feeds)["logits"],
                               rtol=1e-4, atol=1e-5)


def test_a_pass_that_makes_the_model_slower_is_switched_off_by_the_speed_choice(
        toy_tf1, tmp_path, monkeypatch):
    """Timing made to say that fuse_kernels slows the model: the bisection's probes (passes
    up to a point) find it, the candidate without it is written, verified and timed again,
    and the report lists the probes, the slow candidate and the kept one."""
    from tfopt.optimizer import speed

    timed_out = []

    def timing(original, candidates, key, feeds, say=None, decide=False):
        checks = []
        for path in candidates:
            name = os.path.basename(path)
            if name.startswith("speed-passes"):  # a probe: slow with fuse_kernels in it
                slow = re.search(r"(^|-)fuse-kernels", name) is not None
            else:  # the written model: slow until the pass is switched off
                slow = not timed_out
                timed_out.append(path)
            value = 0.5 if slow else 1.2
            checks.append(SpeedCheck(key, Ratio(value, value - 0.05, value + 0.05, 0.95), 1,
                                     "oneDNN on", 100.0, 100.0 * value))
        return checks

    monkeypatch.setattr(speed, "time_all_against", timing)
    out = str(tmp_path / "opt")
    report = tfopt.optimize(toy_tf1, out, batch_size=2, time=True)
    assert report.verified and report.speed["serving_default"].ratio.value == 1.2
    assert any("pass fuse_kernels switched off" in n for n in report.notes)
    assert not any(op.startswith("_Fused") for op in _ops(out))
    rows = [r for r in report.candidates if r["choice"] == "speed"]
    probes = [r for r in rows if r["candidate"].startswith("passes ")]
    assert probes and all(not r["verified"] and r["speedup"] in (0.5, 1.2) for r in probes)
    slow, kept = rows[-2:]
    assert (slow["candidate"], slow["speedup"], slow["written"]) == ("float32", 0.5, False)
    assert slow["why_not"] == "slower than the original with pass fuse_kernels"
    assert kept["candidate"] == "float32 without fuse_kernels"
    assert kept["verified"] and kept["written"] and kept["speedup"] == 1.2
    assert "dropped: slower than the original" in report.table()


def test_a_batch_dependent_pass_is_switched_off_where_the_model_runs_faster_without_it(
        tmp_path, monkeypatch):
    """loop_projection wins at batch 1 and can lose at batch 8 on 2 cores: timing made to say
    the model without it is faster at the batch timed, the candidate without it is verified,
    written and timed again against the original, and both are listed."""
    import keras

    from tfopt.optimizer import speed

    inputs = keras.Input((6, 3))
    keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GRU(4)(inputs))).export(
        str(tmp_path / "gru"), verbose=False)

    def timing(original, candidates, key, feeds, say=None, decide=False):
        checks = []
        for path in candidates:  # without the projection: 1.3x the model with it
            value = 1.3 if "without-loop-projection" in os.path.basename(path) else 1.1
            checks.append(SpeedCheck(key, Ratio(value, value - 0.05, value + 0.05, 0.95), 8,
                                     "oneDNN on", 100.0, 100.0 * value))
        return checks

    monkeypatch.setattr(speed, "time_all_against", timing)
    out = str(tmp_path / "opt")
    report = tfopt.optimize(str(tmp_path / "gru"), out, batch_size=8, time=True)
    assert report.verified
    assert any("loop_projection switched off" in n for n in report.notes)
    rows = [r for r in report.candidates if r["choice"] == "speed"]
    assert [(r["candidate"], r["written"]) for r in rows] == [
        ("float32", False), ("float32 without loop_projection", True)]
    assert rows[0]["why_not"] == "slower than without loop_projection at this batch"
    from tfopt.model.formats import load_model

    nodes = load_model(out).signatures["serving_default"].graph_def.node
    assert not any("input_projection" in n.name for n in nodes)
