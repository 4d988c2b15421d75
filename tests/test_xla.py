"""Selective XLA: the convolution-free part is outlined into a compiled function that plain
tf.saved_model.load runs; convolution-led graphs are left alone."""

import numpy as np
import tensorflow as tf

import tfopt
from tfopt import xla
from tfopt.loader import load_model


def test_transformer_cluster_is_compiled_and_answers_alike(bert_export, tmp_path):
    out = str(tmp_path / "xla")
    report = tfopt.optimize(bert_export, out, xla="on")
    assert report.verified and report.worst.rel < 1e-4
    assert any(n.startswith("xla: compiled cluster in serve") for n in report.notes)
    graph = load_model(out, ["serve"]).signatures["serve"].graph_def
    calls = [n for n in graph.node if n.op == "PartitionedCall"]
    assert len(calls) == 1 and calls[0].attr["_XlaMustCompile"].b
    (fn,) = [f for f in graph.library.function if f.signature.name == xla.FUNCTION_NAME]
    assert fn.attr["_XlaMustCompile"].b
    assert sum(n.op == "Einsum" for n in fn.node_def) == 6  # the attention is inside
    assert len(graph.node) < 15  # the main graph is inputs, the call and the outputs
    feeds = {"token_ids": tf.constant(np.arange(10, dtype=np.int32).reshape(1, 10)),
             "segment_ids": tf.constant(np.zeros((1, 10), np.int32)),
             "padding_mask": tf.constant(np.ones((1, 10), np.int32))}
    got = tf.saved_model.load(out).signatures["serving_default"](**feeds)
    want = tf.saved_model.load(bert_export).signatures["serving_default"](**feeds)
    np.testing.assert_allclose(got["pooled_output"].numpy(), want["pooled_output"].numpy(),
                               rtol=1e-4, atol=1e-5)


def test_auto_times_and_says_what_it_kept(bert_export, tmp_path):
    report = tfopt.optimize(bert_export, str(tmp_path / "auto"), xla="auto")
    assert report.verified
    (note,) = [n for n in report.notes if n.startswith("xla:")]
    assert "x [" in note and ("kept" in note)


def test_convolutions_first_means_no_cluster(keras_resnet):
    sig = load_model(keras_resnet, ["serving_default"]).signatures["serving_default"]
    assert xla.outline(sig) is None
