"""Comparing answers: order-free comparison of what a selection (non-max suppression) kept."""

from __future__ import annotations

import dataclasses

import numpy as np

from tfopt.verify.compare import Policy, compare


def _boxes(rng, n=50):
    return rng.uniform(0, 1, (2, n, 4)).astype(np.float32)


def test_swapped_near_ties_are_found_in_any_order():
    rng = np.random.default_rng(0)
    ref = _boxes(rng)
    got = ref[:, ::-1] + 1e-4  # same boxes, another order, bf16-sized noise
    policy = Policy.for_precision("bf16", 2e-2)
    strict = compare({"boxes": ref}, {"boxes": got}, policy)[0]
    assert not strict.ok  # element by element the order change is a difference
    check = compare({"boxes": ref}, {"boxes": got},
                    dataclasses.replace(policy, selections=frozenset({"boxes"})))[0]
    assert check.ok and check.matched == 1.0 and check.rel < 1e-3
    assert "in any order" in check.describe()


def test_boxes_that_moved_are_not_found():
    rng = np.random.default_rng(1)
    ref = _boxes(rng)
    got = ref.copy()
    got[:, :10] = rng.uniform(0, 1, (2, 10, 4))  # 20% of the boxes replaced by others
    policy = Policy(2e-2, metric="rms", selection_match=0.9, selections=frozenset({"b"}))
    check = compare({"b": ref}, {"b": got}, policy)[0]
    assert not check.ok and abs(check.matched - 0.8) < 0.02


def test_float32_policy_keeps_selections_strict():
    """Order-free matching is for reduced precision only: float32 graphs must keep the order."""
    rng = np.random.default_rng(2)
    ref = _boxes(rng)
    policy = Policy(1e-4, selections=frozenset({"b"}))
    assert not compare({"b": ref}, {"b": ref[:, ::-1]}, policy)[0].ok


def test_selection_outputs_are_found_in_the_graph():
    import tensorflow as tf

    from tfopt.graph.ops import SELECTION_OPS
    from tfopt.graph.walk import depends_on_op

    graph = tf.Graph()
    with graph.as_default():
        boxes = tf.compat.v1.placeholder(tf.float32, [10, 4], name="boxes")
        scores = tf.compat.v1.placeholder(tf.float32, [10], name="scores")
        keep = tf.image.non_max_suppression(boxes, scores, 5)
        tf.gather(boxes, keep, name="kept")
        tf.reduce_sum(boxes, name="plain")
    gd = graph.as_graph_def()
    assert depends_on_op(gd, "kept:0", SELECTION_OPS)
    assert not depends_on_op(gd, "plain:0", SELECTION_OPS)
