"""The output is a drop-in for the original: TF2 attribute endpoints (``loaded.serve(x)``)
with the original's argument and result structure, as well as every signature."""

import numpy as np
import pytest
import tensorflow as tf

import tfopt


def _same(a, b) -> None:
    """Same structure, same values (to float rounding)."""
    tf.nest.assert_same_structure(a, b)
    for x, y in zip(tf.nest.flatten(a), tf.nest.flatten(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-5)


def test_keras_export_serve_returns_what_the_original_returned(keras_resnet, tmp_path):
    out = str(tmp_path / "opt")
    report = tfopt.optimize(keras_resnet, out)
    assert report.verified
    original, optimized = tf.saved_model.load(keras_resnet), tf.saved_model.load(out)
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype(np.float32)
    got = optimized.serve(x)
    assert isinstance(got, tf.Tensor)  # the bare tensor, as Keras' serve returns it
    _same(original.serve(x), got)
    assert sorted(optimized.signatures) == sorted(original.signatures)
    assert [e["name"] for e in report.metadata()["endpoints"]] == ["serve"]


def test_tfsmlayer_calls_the_optimized_model_unchanged(bert_export, tmp_path):
    """keras.layers.TFSMLayer(path, call_endpoint="serve"): dict in, dict out, as before."""
    import keras

    out = str(tmp_path / "opt")
    tfopt.optimize(bert_export, out, input_shapes={"token_ids": (2, 16), "segment_ids": (2, 16),
                                                   "padding_mask": (2, 16)})
    rng = np.random.default_rng(1)
    feeds = {"token_ids": rng.integers(0, 100, (2, 16)).astype(np.int32),
             "segment_ids": rng.integers(0, 2, (2, 16)).astype(np.int32),
             "padding_mask": np.ones((2, 16), np.int32)}
    before = keras.layers.TFSMLayer(bert_export, call_endpoint="serve")(feeds)
    after = keras.layers.TFSMLayer(out, call_endpoint="serve")(feeds)
    assert set(after) == {"sequence_output", "pooled_output"}
    _same(before, after)


def test_tf_module_attribute_endpoint(tmp_path):
    """A tf.Module save: the signature's function stays callable as ``loaded.predict``; an
    attribute no signature calls is named in the notes."""

    class Module(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(np.random.default_rng(2).standard_normal((4, 3)),
                                 dtype=tf.float32)

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def predict(self, x):
            return (tf.nn.relu(tf.matmul(x, self.w)), tf.reduce_sum(x, 1))

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
        def other(self, x):
            return x * 2.0

    module = Module()
    src, out = str(tmp_path / "src"), str(tmp_path / "opt")
    tf.saved_model.save(module, src, signatures={"serving_default": module.predict})
    report = tfopt.optimize(src, out)
    x = np.random.default_rng(3).standard_normal((5, 4)).astype(np.float32)
    original, optimized = tf.saved_model.load(src), tf.saved_model.load(out)
    got = optimized.predict(x)
    assert isinstance(got, tuple) and len(got) == 2
    _same(original.predict(x), got)
    assert any("'other' not kept" in n for n in report.notes)


def test_tf1_saved_model_keeps_its_signatures(toy_tf1, tmp_path):
    """A TF1 SavedModel has no attribute endpoints: the output stays a v1 SavedModel whose
    signatures TF Serving and saved_model_cli read as before."""
    out = str(tmp_path / "opt")
    report = tfopt.optimize(toy_tf1, out, input_shapes={"images": (2, 16, 16, 3)})
    assert report.metadata()["endpoints"] == []
    loaded = tf.saved_model.load(out)
    assert list(loaded.signatures) == ["serving_default"]
    with pytest.raises(AttributeError):
        loaded.serve  # noqa: B018  (it never had one)
