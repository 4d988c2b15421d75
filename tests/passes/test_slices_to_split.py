"""slices_to_split: consecutive slices of one tensor become one SplitV."""

from __future__ import annotations

import tensorflow as tf

from tests.passes.helpers import check_same, context, counts, graph_of, rand
from tfopt.passes.slices_to_split import SlicesToSplit

X = {"x:0": rand(3, 4, seed=30)}


def _gru_slices(gap: bool = False, unknown_width: bool = False):
    x = tf.compat.v1.placeholder(tf.float32, [None, None if unknown_width else 4], name="x")
    m = tf.matmul(x, tf.constant(rand(4, 12, seed=31))) if not unknown_width else x
    z, r = m[:, :4], (m[:, 5:9] if gap else m[:, 4:8])
    h = m[:, 8:]
    tf.identity(tf.sigmoid(z) * h + r, name="out")


def test_three_slices_of_a_gru_product_become_one_split():
    graph_def = graph_of(_gru_slices)
    result = SlicesToSplit().run(graph_def, context(["out"], ["x:0"]))
    assert result.notes == ["1 runs of consecutive slices cut by one SplitV"]
    after = counts(result.graph_def)
    assert after["SplitV"] == 1 and "StridedSlice" not in after
    check_same(graph_def, result.graph_def, feeds=X, rtol=1e-6)


def test_slices_with_a_gap_or_an_axis_of_unknown_length_stay():
    ctx = context(["out"], ["x:0"])
    assert not SlicesToSplit().run(graph_of(lambda: _gru_slices(gap=True)), ctx).changed
    # x[:, 8:] of a width that may be shorter than 8 clamps where SplitV would fail
    assert not SlicesToSplit().run(graph_of(lambda: _gru_slices(unknown_width=True)),
                                   ctx).changed
