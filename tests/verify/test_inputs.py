"""Verification inputs valid by construction: ranges and shapes derived from the graph."""

import numpy as np
import tensorflow as tf

import tfopt
from tfopt.model.formats import load_model
from tfopt.verify.inputs import input_hints, make_inputs


def test_bert_like_ids_stay_inside_their_tables(bert_export):
    sig = load_model(bert_export, ["serving_default"]).signatures["serving_default"]
    hints = input_hints(sig)
    assert hints["segment_ids"].int_range == (0, 2)      # the 2-row segment embedding
    assert hints["token_ids"].int_range == (0, 100)      # the vocabulary
    assert hints["padding_mask"].int_range == (0, 2) and hints["padding_mask"].why == "mask"
    notes = []
    feeds = make_inputs(sig.inputs, 2, hints=hints, notes=notes)
    assert feeds["token_ids"].shape == (2, 64) and feeds["segment_ids"].max() <= 1
    assert any("segment_ids int32[2, 64] in [0, 2) (embedding rows)" in n for n in notes)
    # --int-range still overrides what the graph says
    forced = make_inputs(sig.inputs, 1, int_range=(5, 6), hints=hints)
    assert (forced["segment_ids"] == 5).all()


def test_keras_export_keeps_both_signatures_and_needs_no_flags(bert_export, tmp_path):
    """Keras 3 exports serve and serving_default over one function: both are kept, optimized
    once, stored once, and both answer as before."""
    out = str(tmp_path / "opt")
    report = tfopt.optimize(bert_export, out)
    assert report.verified and set(report.signatures) == {"serve", "serving_default"}
    assert report.signatures["serving_default"].same_as == "serve"
    assert "serving_default: same graph as serve" in report.table()
    assert any("padding_mask" in n and "(mask)" in n for n in report.notes)
    loaded, original = tf.saved_model.load(out), tf.saved_model.load(bert_export)
    feeds = {"token_ids": tf.constant(np.arange(8, dtype=np.int32).reshape(1, 8) * 7),
             "segment_ids": tf.constant([[0, 0, 0, 0, 1, 1, 1, 1]], tf.int32),
             "padding_mask": tf.constant([[1, 1, 1, 1, 1, 1, 0, 0]], tf.int32)}
    want = original.serve(feeds)
    for got in (loaded.signatures["serve"](**feeds), loaded.signatures["serving_default"](**feeds)):
        for key in ("sequence_output", "pooled_output"):
            np.testing.assert_allclose(got[key].numpy(), want[key].numpy(), rtol=1e-4,
                                       atol=1e-5)
    # one graph in the file, not one per signature
    graph = loaded.signatures["serve"].graph.as_graph_def()
    assert not any(n.name.startswith(("serve/", "serving_default/")) for n in graph.node)


def test_image_input_of_unknown_size(tmp_path):
    """A [?, ?, ?, 3] input with an auto-generated name verifies at 224x224 with no flags."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inp)
    x = keras.layers.BatchNormalization()(x)
    model = keras.Model(inp, keras.layers.GlobalAveragePooling2D()(x))
    src = str(tmp_path / "dyn")
    model.export(src, format="tf_saved_model", verbose=False)
    report = tfopt.optimize(src, str(tmp_path / "opt"))
    assert report.verified
    assert any("[1, 224, 224, 3]" in n and "spatial dims set to 224" in n for n in report.notes)


def test_keras_grouped_conv_export_is_inlined_and_depthwise(tmp_path):
    """Keras 3 exports Conv2D(groups=C) as a call of an XLA-marked _conv_xla function (as in
    ConvNeXt): the call is inlined and the grouped conv becomes a depthwise conv."""
    import keras

    from tfopt.model.formats import load_model

    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 8))
    x = keras.layers.Conv2D(8, 7, padding="same", groups=8)(inp)
    x = keras.layers.LayerNormalization(epsilon=1e-6)(x)
    model = keras.Model(inp, keras.layers.GlobalAveragePooling2D()(keras.layers.Dense(4)(x)))
    src = str(tmp_path / "grouped")
    model.export(src, format="tf_saved_model", verbose=False)
    before = load_model(src, ["serve"]).signatures["serve"].graph_def
    assert sum(n.op == "StatefulPartitionedCall" for n in before.node) == 1
    report = tfopt.optimize(src, str(tmp_path / "opt"))
    assert report.verified and report.signatures["serving_default"].same_as == "serve"
    after = load_model(str(tmp_path / "opt"), ["serve"]).signatures["serve"].graph_def
    ops = {n.op for n in after.node}
    assert "StatefulPartitionedCall" not in ops and "DepthwiseConv2dNative" in ops
    assert "Conv2D" not in ops and not after.library.function


def test_unknown_dims_default_by_kind_of_input():
    """Only a rank-4 float or uint8 input with 1-4 channels is an image (224); anything else,
    a uint8 byte sequence included, gets the sequence default (64)."""
    from tfopt.model.signature import TensorInfo
    from tfopt.verify.inputs import resolve_shape

    def shape(dtype, dims):
        return resolve_shape("x", TensorInfo("x:0", dtype, dims), 2, {})[0]

    assert shape(tf.float32, (None, None, None, 3)) == (2, 224, 224, 3)
    assert shape(tf.uint8, (None, None, None, 3)) == (2, 224, 224, 3)
    assert shape(tf.uint8, (None, None)) == (2, 64)
    assert shape(tf.float32, (None, None, 16)) == (2, 64, 16)
    assert shape(tf.int32, (None, None, None, 3)) == (2, 64, 64, 3)


def test_mask_compared_with_zero_after_a_minimum_is_a_mask():
    """GPT-2's padding mask: ExpandDims -> Minimum(causal mask) -> Greater(0), never cast."""
    from tfopt.model.signature import SignatureGraph, TensorInfo

    graph = tf.Graph()
    with graph.as_default():
        mask = tf.compat.v1.placeholder(tf.int32, [None, None], name="padding_mask")
        causal = tf.constant(np.tril(np.ones((4, 4), np.int32)))
        zero = tf.cast(tf.constant(0.5), tf.int32)  # what Keras compares the mask with
        keep = tf.math.greater(tf.minimum(tf.expand_dims(mask, 1), causal), zero)
        tf.where(keep, tf.ones([1, 4, 4]), tf.zeros([1, 4, 4]), name="out")
    sig = SignatureGraph("serving_default", graph.as_graph_def(),
                         {"padding_mask": TensorInfo("padding_mask:0", tf.int32, (None, None))},
                         {"out": TensorInfo("out:0", tf.float32, (None, 4, 4))})
    hints = input_hints(sig)
    assert hints["padding_mask"].int_range == (0, 2) and hints["padding_mask"].why == "mask"


class _ExampleModel(tf.Module):
    """A TF Serving / Estimator-style signature: serialized tf.train.Example protos in."""

    def __init__(self):
        super().__init__()
        self.w = tf.Variable(tf.random.stateless_normal([5, 3], seed=(1, 2)))
        self.emb = tf.Variable(tf.random.stateless_normal([7, 3], seed=(3, 4)))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(self, examples):
        f = tf.io.parse_example(examples, {
            "x": tf.io.FixedLenFeature([4], tf.float32),
            "cat": tf.io.FixedLenFeature([], tf.int64),   # indexes a 7-row table
            "tags": tf.io.VarLenFeature(tf.string)})
        h = tf.concat([f["x"], tf.cast(f["tags"].dense_shape[1:], tf.float32)[None] +
                       0 * f["x"][:, :1]], 1)
        return {"scores": tf.nn.softmax(tf.matmul(h, self.w) + tf.gather(self.emb, f["cat"]))}

    @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="example")])
    def single(self, example):
        parsed = tf.raw_ops.ParseSingleExample(
            serialized=example, dense_defaults=[tf.constant([], tf.float32)], num_sparse=0,
            sparse_keys=[], dense_keys=["x"], sparse_types=[], dense_shapes=[[4]])
        return {"y": tf.reduce_sum(parsed.dense_values[0] * 2.0)}


def test_serialized_examples_are_generated_for_the_features_the_graph_parses(tmp_path):
    """A string input the graph parses as tf.train.Example gets protos holding every feature
    it reads (ids within the table they index), so such a model verifies without flags
    instead of failing with 'Feature: cat is required but could not be found'."""
    module = _ExampleModel()
    src = str(tmp_path / "examples")
    tf.saved_model.save(module, src, signatures={"serving_default": module.serve,
                                                 "single": module.single})
    sig = load_model(src, ["serving_default"]).signatures["serving_default"]
    features = {f.key: f for f in input_hints(sig)["examples"].features}
    assert set(features) == {"x", "cat", "tags"}
    assert features["x"].shape == (4,) and features["tags"].shape is None
    assert features["cat"].int_range == (0, 7) and features["cat"].why == "embedding rows"
    notes = []
    feeds = make_inputs(sig.inputs, 3, hints=input_hints(sig), notes=notes)
    parsed = [tf.train.Example.FromString(b) for b in feeds["examples"]]
    assert len(parsed) == 3 and all(p.features.feature["cat"].int64_list.value[0] < 7
                                    for p in parsed)
    assert "serialized tf.train.Example" in notes[0] and "tags string (var-len)" in notes[0]
    single = load_model(src, ["single"]).signatures["single"]
    assert [f.key for f in input_hints(single)["example"].features] == ["x"]  # attribute keys
    report = tfopt.optimize(src, str(tmp_path / "opt"))
    assert report.verified and set(report.signatures) == {"serving_default", "single"}
    assert any("cat int64 in [0, 7) (embedding rows)" in n for n in report.notes)


def test_encoded_images_are_generated_for_a_graph_that_decodes_them(tmp_path):
    """TF Serving image models take image bytes: a batch decoded in a map_fn (the decoder in
    a loop body) gets JPEGs, a PNG decoder gets PNGs; each verifies without flags."""
    class Images(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(tf.random.stateless_normal([3, 3, 3, 4], seed=(5, 6)))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
        def serve(self, image_bytes):
            def decode(b):
                img = tf.cast(tf.io.decode_jpeg(b, channels=3), tf.float32) / 255.0
                return tf.image.resize(img, [32, 32])
            x = tf.map_fn(decode, image_bytes, fn_output_signature=tf.float32)
            return {"y": tf.reduce_mean(tf.nn.conv2d(x, self.w, 1, "SAME"), [1, 2])}

        @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="png")])
        def png(self, png):
            x = tf.cast(tf.io.decode_png(png, channels=3), tf.float32)[None] / 255.0
            return {"y": tf.reduce_sum(tf.nn.conv2d(x, self.w, 1, "SAME"))}

    module = Images()
    src = str(tmp_path / "images")
    tf.saved_model.save(module, src, signatures={"serving_default": module.serve,
                                                 "png": module.png})
    model = load_model(src)
    assert input_hints(model.signatures["serving_default"])["image_bytes"].image_format == "jpeg"
    assert input_hints(model.signatures["png"])["png"].image_format == "png"
    feeds = make_inputs(model.signatures["png"].inputs, hints=input_hints(model.signatures["png"]))
    assert tf.io.decode_png(feeds["png"].item()).shape == (224, 224, 3)
    report = tfopt.optimize(src, str(tmp_path / "opt"))
    assert report.verified
    assert any("image_bytes string[1] (JPEG images 224x224" in n for n in report.notes)
