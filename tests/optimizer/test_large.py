"""Models whose frozen graph is over what one protobuf holds: weights in variables/.

The threshold is lowered (TFOPT_MAX_GRAPH_MB, seen by the verification children too) so that
small models take the path a >2 GiB one takes: freezing without building the frozen function,
passes on the in-memory graph, verification with the weights fed into variables, a TF2
SavedModel whose variables/ hold the largest weights. The >2 GiB model itself runs in
benchmarks/run_scaling.py, not here.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import tfopt
from tests.conftest import run_saved_model
from tfopt.errors import TfoptError
from tfopt.model.formats import load_model
from tfopt.verify.isolate import variables_bytes


def test_keras_model_over_the_limit_keeps_weights_in_variables(keras_resnet, tmp_path,
                                                                monkeypatch):
    monkeypatch.setenv("TFOPT_MAX_GRAPH_MB", "0.02")  # 20 KiB: most conv weights go outside
    out = str(tmp_path / "opt")
    report = tfopt.optimize(keras_resnet, out)
    assert report.verified and report.worst.rel < 1e-4
    assert set(report.runtimes) == {"onednn", "eigen"}
    assert any("stored in variables/" in n for n in report.notes)
    assert os.path.getsize(os.path.join(out, "saved_model.pb")) < 60_000
    assert variables_bytes(out) > 30_000
    # the passes still folded and fused weights that live outside
    ops = report.signatures["serving_default"].ops_after
    assert "FusedBatchNormV3" not in ops and "_FusedConv2D" in ops
    # plain TensorFlow loads it and it answers like the original (drop-in: serve too)
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype("f")
    got = run_saved_model(out, {"image": x})
    want = load_model(keras_resnet).reference("serving_default", {"image": x})
    np.testing.assert_allclose(next(iter(got.values())), next(iter(want.values())),
                               rtol=1e-4, atol=1e-5)
    served = tf.saved_model.load(out).serve(tf.constant(x))
    np.testing.assert_allclose(served.numpy(), next(iter(want.values())), rtol=1e-4,
                               atol=1e-5)
    meta = json.loads(open(os.path.join(out, "tfopt.json")).read())
    assert meta["precision"] == "fp32"


def test_tf1_model_over_the_limit_and_pb_refused(toy_tf1, tmp_path, monkeypatch):
    monkeypatch.setenv("TFOPT_MAX_GRAPH_MB", "0.001")
    out = str(tmp_path / "opt")
    report = tfopt.optimize(toy_tf1, out)
    assert report.verified
    assert variables_bytes(out) > 1000
    sig = tf.saved_model.load(out).signatures["serving_default"]
    assert sig.structured_input_signature[1]["images"].shape.as_list() == [None, 16, 16, 3]
    # a GraphDef file has no variables/: past the real 2 GiB it is refused in one line; the
    # lowered threshold only moves weights out of SavedModels
    monkeypatch.setattr("tfopt.model.saver.PROTO_LIMIT", 1000)
    with pytest.raises(TfoptError, match="2 GiB limit for one GraphDef file"):
        tfopt.optimize(toy_tf1, str(tmp_path / "opt.pb"), format="pb")


def test_one_weight_over_what_a_tensor_proto_holds_is_refused_in_one_line(keras_resnet,
                                                                          tmp_path,
                                                                          monkeypatch):
    """A single table of 2 GiB or more cannot be a graph constant at all: refused by name
    (the limit lowered here so that a small model shows it)."""
    monkeypatch.setattr("tfopt.model.freeze.PROTO_LIMIT", 4000)
    with pytest.raises(TfoptError, match=r"variable .* GiB: one tensor of 2 GiB or more"):
        tfopt.optimize(keras_resnet, str(tmp_path / "opt"))
    assert not (tmp_path / "opt").exists()


def test_large_transformer_keeps_matmul_and_embedding_weights_in_variables(bert_export,
                                                                          tmp_path,
                                                                          monkeypatch):
    """Past 1/24 of the limit (memory: a process loading inline weights holds several
    copies) the embedding tables and matmul weights live in variables/ while the graph stays
    under the limit; the passes still fuse the matmuls, and the output answers as the
    original under both runtimes and through Keras' ``serve``."""
    monkeypatch.setenv("TFOPT_MAX_GRAPH_MB", "0.3")  # 1/24: 13 KiB, under this model
    out = str(tmp_path / "opt")
    report = tfopt.optimize(bert_export, out)
    assert report.verified and report.worst.rel < 1e-4
    assert set(report.runtimes) == {"onednn", "eigen"}
    note = next(n for n in report.notes if "stored in variables/" in n)
    assert "matmul and embedding weights" in note
    assert variables_bytes(out) > 40_000
    assert "_FusedMatMul" in report.signatures["serving_default"].ops_after
    feeds = {"token_ids": np.array([[5, 7, 9, 1]], "int32"),
             "segment_ids": np.array([[0, 0, 1, 1]], "int32"),
             "padding_mask": np.array([[1, 1, 1, 0]], "int32")}
    want = load_model(bert_export).reference("serving_default", feeds)
    served = tf.saved_model.load(out).serve({k: tf.constant(v) for k, v in feeds.items()})
    for key, value in want.items():
        np.testing.assert_allclose(served[key].numpy(), value, rtol=1e-4, atol=1e-5)


def test_lookup_tables_keep_weights_inline_under_the_limit(tf2_table, tmp_path, monkeypatch):
    """A model that fills lookup tables at load is written by the v1 builder, which runs
    them: past the memory threshold but under the protobuf limit its weights stay inline
    rather than the model being refused."""
    monkeypatch.setenv("TFOPT_MAX_GRAPH_MB", "0.01")  # 10 KiB; 1/24 of it is under the model
    out = str(tmp_path / "opt")
    report = tfopt.optimize(tf2_table, out)
    assert report.verified
    assert not any("stored in variables/" in n for n in report.notes)
    got = run_saved_model(out, {"words": np.array([b"fox", b"dog"])})
    np.testing.assert_array_equal(next(iter(got.values())), [[6.0, 7.0], [0.0, 1.0]])
