"""Models built once per test session, locally and with real TensorFlow."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# optimize's speed check starts timed processes (~20 s a model): tests that check it ask for
# it (time=True); everything else would spend minutes timing models built to test answers.
os.environ.setdefault("TFOPT_TIME", "off")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``int8_cpu`` check oneDNN's int8 kernels' answers: without VNNI or AMX
    those kernels saturate (measured: relative RMS 0.74 on a small CNN), and tfopt refuses int8
    there, which tests/optimizer/test_int8.py checks on every CPU by patching the flags."""
    from tfopt.runtime import int8_hardware

    if int8_hardware():
        return
    skip = pytest.mark.skip(reason="this CPU has no int8 dot-product instructions (VNNI/AMX): "
                                   "int8 is refused here (test_int8_refused_*)")
    for item in items:
        if "int8_cpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def toy_tf1(tmp_path_factory) -> str:
    from tfopt.zoo.builders import build_toy_tf1

    path = str(tmp_path_factory.mktemp("models") / "toy_tf1")
    build_toy_tf1(path)
    return path


@pytest.fixture(scope="session")
def toy_tf2(tmp_path_factory) -> str:
    from tfopt.zoo.builders import build_toy_tf2

    path = str(tmp_path_factory.mktemp("models") / "toy_tf2")
    build_toy_tf2(path)
    return path


def small_resnet():
    """A small Keras ResNet-style model: conv/BN/ReLU, residual adds, a dense head."""
    import keras

    from tfopt.zoo.builders import randomize_batch_norm

    keras.utils.set_random_seed(0)
    inp = keras.Input((32, 32, 3), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same")(inp)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    for _ in range(2):
        y = keras.layers.Conv2D(16, 3, padding="same", use_bias=False)(x)
        y = keras.layers.BatchNormalization()(y)
        y = keras.layers.ReLU()(y)
        y = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=1)(y)
        y = keras.layers.BatchNormalization()(y)
        x = keras.layers.ReLU()(keras.layers.Add()([x, y]))
    x = keras.layers.ZeroPadding2D(1)(x)
    x = keras.layers.Conv2D(32, 3, strides=2)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(10, activation="relu")(x)
    model = keras.Model(inp, out)
    randomize_batch_norm(model)
    return model


@pytest.fixture(scope="session")
def keras_resnet(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("models") / "keras_resnet")
    small_resnet().export(path, format="tf_saved_model", verbose=False)
    return path


@pytest.fixture(scope="session")
def keras_file(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("models") / "small.keras")
    small_resnet().save(path)
    return path


@pytest.fixture(scope="session")
def mobilenet_v2(tmp_path_factory) -> str:
    from tfopt.zoo.builders import build_keras_app

    path = str(tmp_path_factory.mktemp("models") / "mobilenet_v2")
    build_keras_app("mobilenet_v2", path)
    return path


@pytest.fixture(scope="session")
def small_ssd(tmp_path_factory) -> str:
    from tfopt.zoo.detector import build_ssd_inception

    path = str(tmp_path_factory.mktemp("models") / "ssd")
    build_ssd_inception(path, depth=0.25)
    return path


def run_saved_model(path: str, feeds: dict[str, np.ndarray], key: str = "serving_default"):
    """Run a SavedModel exactly as a user would: plain tf.saved_model.load, no tfopt."""
    import tensorflow as tf

    fn = tf.saved_model.load(path).signatures[key]
    return {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in feeds.items()}).items()}


@pytest.fixture(scope="session")
def two_signatures(tmp_path_factory) -> str:
    """TF2 module with a float and a string-input signature."""
    import tensorflow as tf

    class Module(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(np.arange(12, dtype=np.float32).reshape(3, 4))

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def predict(self, x):
            return {"y": tf.identity(tf.matmul(x, self.w))}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="words")])
        def lengths(self, words):
            return {"n": tf.strings.length(words) * 2}

    module = Module()
    path = str(tmp_path_factory.mktemp("models") / "two_signatures")
    tf.saved_model.save(module, path, signatures={"serving_default": module.predict,
                                                  "lengths": module.lengths})
    return path


@pytest.fixture(scope="session")
def tf2_table(tmp_path_factory) -> str:
    """TF2 module with a vocabulary lookup table feeding an embedding gather."""
    import tensorflow as tf

    class Module(tf.Module):
        def __init__(self):
            super().__init__()
            self.table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(["the", "quick", "fox"], [1, 2, 3]), 0)
            self.emb = tf.Variable(np.arange(8, dtype=np.float32).reshape(4, 2))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="words")])
        def serve(self, words):
            return {"vectors": tf.gather(self.emb, self.table.lookup(words))}

    module = Module()
    path = str(tmp_path_factory.mktemp("models") / "tf2_table")
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    return path


@pytest.fixture(scope="session")
def tf1_table(tmp_path_factory) -> str:
    """TF1 export whose vocabulary table is filled by the SavedModel's main op."""
    import tensorflow as tf

    path = str(tmp_path_factory.mktemp("models") / "tf1_table")
    graph = tf.Graph()
    with graph.as_default():
        words = tf.compat.v1.placeholder(tf.string, [None], name="words")
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(["a", "b"], np.array([5, 7], np.int64)), -1)
        ids = tf.identity(table.lookup(words) * 2, name="ids")
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.tables_initializer())
            builder = tf.compat.v1.saved_model.Builder(path)
            sig = tf.compat.v1.saved_model.predict_signature_def({"words": words}, {"ids": ids})
            builder.add_meta_graph_and_variables(
                sess, ["serve"], signature_def_map={"serving_default": sig},
                main_op=tf.compat.v1.tables_initializer())
            builder.save()
    return path


@pytest.fixture(scope="session")
def keras_transformer(tmp_path_factory) -> str:
    """Two inputs (ids, floats), attention + layer norm + GELU, two named outputs (.keras)."""
    import keras

    keras.utils.set_random_seed(0)
    tok = keras.Input((16,), dtype="int32", name="tokens")
    num = keras.Input((4,), name="numeric")
    x = keras.layers.Embedding(200, 32)(tok)
    x = keras.layers.LayerNormalization()(x + keras.layers.MultiHeadAttention(4, 8)(x, x))
    x = keras.layers.LayerNormalization()(
        x + keras.layers.Dense(32)(keras.layers.Dense(64, activation="gelu")(x)))
    h = keras.layers.Concatenate()([keras.layers.GlobalAveragePooling1D()(x),
                                    keras.layers.Dense(8, activation="tanh")(num)])
    model = keras.Model([tok, num], {"cls": keras.layers.Dense(3, activation="softmax")(h),
                                     "reg": keras.layers.Dense(1)(h)})
    path = str(tmp_path_factory.mktemp("models") / "transformer.keras")
    model.save(path)
    return path


def bert_like():
    """A BERT-style encoder as keras_hub builds one: token, segment (2 rows) and position
    embeddings, a padding mask cast to bool for attention, layer norm, GELU MLP; dynamic
    sequence length, int32 inputs named like keras_hub's."""
    import keras
    from keras import ops

    keras.utils.set_random_seed(0)
    tokens = keras.Input((None,), dtype="int32", name="token_ids")
    segments = keras.Input((None,), dtype="int32", name="segment_ids")
    mask = keras.Input((None,), dtype="int32", name="padding_mask")
    x = keras.layers.Embedding(100, 32)(tokens) + keras.layers.Embedding(2, 32)(segments)
    x = keras.layers.LayerNormalization()(x)
    attention_mask = ops.expand_dims(ops.cast(mask, "bool"), 1)
    x = keras.layers.LayerNormalization()(
        x + keras.layers.MultiHeadAttention(4, 8)(x, x, attention_mask=attention_mask))
    x = keras.layers.LayerNormalization()(
        x + keras.layers.Dense(32)(keras.layers.Dense(64, activation="gelu")(x)))
    pooled = keras.layers.Dense(32, activation="tanh")(x[:, 0, :])
    return keras.Model({"token_ids": tokens, "segment_ids": segments, "padding_mask": mask},
                       {"sequence_output": x, "pooled_output": pooled})


@pytest.fixture(scope="session")
def bert_export(tmp_path_factory) -> str:
    """``model.export()`` of :func:`bert_like`: signatures ``serve`` and ``serving_default``."""
    path = str(tmp_path_factory.mktemp("models") / "bert_like")
    bert_like().export(path, format="tf_saved_model", verbose=False)
    return path


@pytest.fixture(scope="session")
def digits_cnn(tmp_path_factory) -> str:
    """A CNN trained here on scikit-learn's digits; its test split inside (test.npz,
    labels.npy)."""
    from tfopt.zoo.digits import build_digits

    path = str(tmp_path_factory.mktemp("models") / "digits_cnn")
    accuracy = build_digits("digits_cnn", path)
    assert accuracy > 0.9  # trained, not random: agreement numbers mean something
    return path
