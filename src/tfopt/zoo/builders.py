"""Models built locally, with random but realistic weights: nothing is ever downloaded.

- ``toy_tf1``: a small TF1-era classifier exported with the v1 builder, carrying everything an
  old export carries (FusedBatchNormV3, Relu6, Identity chains, CheckNumerics, an Assert, a
  Saver, a training branch and a ``PlaceholderWithDefault`` training flag driving a v1 cond).
- ``toy_tf2``: a TF2 module with ``tf.cond``, ``tf.while_loop``, ``tf.map_fn`` and embedding
  lookups on a variable.
- ``ssd_inception``: an SSD detector on an Inception-v2-style backbone, as the TF1 Object
  Detection API exports it (see :mod:`tfopt.zoo.detector`).
- Keras applications by name (``weights=None``), exported as TF2 SavedModels.
- ``digits_cnn``, ``digits_transformer``: small models *trained* here on scikit-learn's
  digits (see :mod:`tfopt.zoo.digits`), for accuracy numbers that mean something.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator

import numpy as np
import tensorflow as tf

from tfopt.errors import TfoptError

KERAS_APPS = {
    "mobilenet_v2": ("MobileNetV2", (224, 224, 3)),
    "resnet50": ("ResNet50", (224, 224, 3)),
    "inception_v3": ("InceptionV3", (299, 299, 3)),
    "efficientnet_b0": ("EfficientNetB0", (224, 224, 3)),
    "densenet121": ("DenseNet121", (224, 224, 3)),
    "mobilenet": ("MobileNet", (224, 224, 3)),
    # pre-activation and separable-conv architectures (issue #37's comparison with TF's chain)
    "resnet50_v2": ("ResNet50V2", (224, 224, 3)),
    "nasnet_mobile": ("NASNetMobile", (224, 224, 3)),
    "xception": ("Xception", (299, 299, 3)),
}


def _bn_variables(name: str, channels: int, rng: np.random.Generator):
    """Non-trivial inference statistics, as a trained network has."""
    init = tf.compat.v1.constant_initializer
    return (
        tf.compat.v1.get_variable(f"{name}/gamma", initializer=init(
            rng.uniform(0.5, 1.5, channels).astype(np.float32)), shape=[channels]),
        tf.compat.v1.get_variable(f"{name}/beta", initializer=init(
            rng.normal(0, 0.1, channels).astype(np.float32)), shape=[channels]),
        tf.compat.v1.get_variable(f"{name}/moving_mean", initializer=init(
            rng.normal(0, 0.1, channels).astype(np.float32)), shape=[channels], trainable=False),
        tf.compat.v1.get_variable(f"{name}/moving_variance", initializer=init(
            rng.uniform(0.5, 1.5, channels).astype(np.float32)), shape=[channels],
            trainable=False),
    )


def conv_bn_relu6(x, channels: int, kernel: int, name: str, rng: np.random.Generator,
                  stride: int = 1, depthwise: bool = False):
    """Conv2D (or depthwise) + FusedBatchNormV3 + Relu6, the unit of TF1 detection backbones."""
    in_ch = int(x.shape[-1])
    with tf.compat.v1.variable_scope(name, use_resource=False):  # VariableV2, as TF1 had
        fan_in = kernel * kernel * (1 if depthwise else in_ch)
        shape = [kernel, kernel, in_ch, 1] if depthwise else [kernel, kernel, in_ch, channels]
        w = tf.compat.v1.get_variable("weights", initializer=tf.compat.v1.constant_initializer(
            rng.normal(0, np.sqrt(2.0 / fan_in), shape).astype(np.float32)), shape=shape)
        if depthwise:
            y = tf.nn.depthwise_conv2d(x, w, [1, stride, stride, 1], "SAME")
            channels = in_ch
        else:
            y = tf.nn.conv2d(x, w, stride, "SAME")
        gamma, beta, mean, var = _bn_variables("BatchNorm", channels, rng)
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(y, gamma, beta, mean, var, epsilon=1e-3,
                                                   is_training=False)
        return tf.nn.relu6(y)


@contextlib.contextmanager
def v1_control_flow() -> Iterator[None]:
    """Build TF1 Switch/Merge/Enter control flow (as old exports have) inside the block."""
    from tensorflow.python.ops import control_flow_util

    saved = control_flow_util.ENABLE_CONTROL_FLOW_V2
    control_flow_util.ENABLE_CONTROL_FLOW_V2 = False
    try:
        yield
    finally:
        control_flow_util.ENABLE_CONTROL_FLOW_V2 = saved


def build_toy_tf1(export_dir: str, seed: int = 0) -> None:
    """Small TF1 classifier with the training and debug baggage of a real TF1 export."""
    rng = np.random.default_rng(seed)
    graph = tf.Graph()
    with v1_control_flow():
        with graph.as_default():
            images = tf.compat.v1.placeholder(tf.float32, [None, 16, 16, 3], name="images")
            labels = tf.compat.v1.placeholder(tf.int64, [None], name="labels")
            training = tf.compat.v1.placeholder_with_default(False, [], name="is_training")
            h = tf.identity(tf.identity(images, name="input_copy"), name="input_copy2")
            h = conv_bn_relu6(h, 8, 3, "conv1", rng)
            h = tf.debugging.check_numerics(h, "conv1 is not finite")
            assert_op = tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(h)), [h],
                                            name="finite_check")
            with tf.control_dependencies([assert_op]):
                h = tf.identity(h, name="checked")
            h = conv_bn_relu6(h, 8, 3, "conv2_dw", rng, stride=2, depthwise=True)
            h = conv_bn_relu6(h, 16, 1, "conv2_pw", rng)
            h = tf.compat.v1.cond(training, lambda: tf.nn.dropout(h, rate=0.5), lambda: h)
            h = tf.reduce_mean(h, [1, 2], name="global_pool")
            init = tf.compat.v1.constant_initializer
            with tf.compat.v1.variable_scope("logits", use_resource=False):
                w = tf.compat.v1.get_variable("weights", initializer=init(
                    rng.normal(0, 0.3, [16, 5]).astype(np.float32)), shape=[16, 5])
                b = tf.compat.v1.get_variable("biases", initializer=init(
                    rng.normal(0, 0.1, [5]).astype(np.float32)), shape=[5])
            logits = tf.identity(tf.nn.bias_add(tf.matmul(h, w), b), name="logits")
            probs = tf.nn.softmax(logits, name="probabilities")
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=labels, logits=logits))
            train_op = tf.compat.v1.train.MomentumOptimizer(0.01, 0.9).minimize(loss)
            saver = tf.compat.v1.train.Saver()
            del train_op
            with tf.compat.v1.Session(graph=graph) as sess:
                sess.run(tf.compat.v1.global_variables_initializer())
                builder = tf.compat.v1.saved_model.Builder(export_dir)
                sig = tf.compat.v1.saved_model.predict_signature_def(
                    inputs={"images": images}, outputs={"probabilities": probs, "logits": logits})
                builder.add_meta_graph_and_variables(
                    sess, ["serve"], signature_def_map={"serving_default": sig}, saver=saver)
                builder.save()


class _ControlFlowModule(tf.Module):
    def __init__(self, seed: int):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.embedding = tf.Variable(rng.normal(size=[50, 8]).astype(np.float32), name="emb")
        self.w = tf.Variable(rng.normal(size=[8, 4]).astype(np.float32), name="w")
        self.b = tf.Variable(rng.normal(size=[4]).astype(np.float32), name="b")

    @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.int32, name="ids"),
                                  tf.TensorSpec([None], tf.float32, name="weight")])
    def serve(self, ids, weight):
        emb = tf.nn.embedding_lookup(self.embedding, ids)
        h = tf.reduce_mean(tf.identity(emb), 1) @ self.w
        h = tf.cond(tf.reduce_sum(weight) > 0, lambda: h + self.b, lambda: h - self.b)

        def body(i, acc):
            step = tf.gather(self.embedding, i)[:4]  # an embedding lookup inside the loop
            return i + 1, tf.nn.relu(acc) * 0.5 + step

        _, h = tf.while_loop(lambda i, acc: i < 3, body, [tf.constant(0), h])
        per_row = tf.map_fn(lambda r: tf.reduce_sum(tf.gather(self.embedding, r)), ids,
                            fn_output_signature=tf.float32)
        return {"scores": tf.identity(h) * weight[:, None], "row_sums": per_row}


def build_toy_tf2(export_dir: str, seed: int = 0) -> None:
    """TF2 module with control flow and embedding lookups (vocabulary of 50 ids)."""
    module = _ControlFlowModule(seed)
    tf.saved_model.save(module, export_dir, signatures={"serving_default": module.serve})


def build_keras_app(name: str, export_dir: str, seed: int = 0) -> None:
    """A Keras application with random weights (and random BN statistics), as a SavedModel."""
    import keras

    if name not in KERAS_APPS:
        raise TfoptError(f"unknown Keras application {name!r} ({', '.join(sorted(KERAS_APPS))})")
    cls, shape = KERAS_APPS[name]
    keras.utils.set_random_seed(seed)
    model = getattr(keras.applications, cls)(weights=None, input_shape=shape)
    randomize_batch_norm(model, seed)
    model.export(export_dir, format="tf_saved_model", verbose=False)


def randomize_batch_norm(model, seed: int = 0) -> None:
    """Give BN layers trained-looking statistics, so folding them is really exercised."""
    import keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            weights = layer.get_weights()
            shapes = [w.shape for w in weights]
            new = []
            for w, s in zip(weights, shapes, strict=True):
                del w
                new.append(rng.uniform(0.8, 1.2, s).astype(np.float32))
            # gamma, beta, moving_mean, moving_variance: beta and mean centred on zero
            if len(new) == 4:
                new[1] -= 1.0
                new[2] -= 1.0
            layer.set_weights(new)


def randomize_constant_weights(model, seed: int = 0, scale: float = 0.1) -> None:
    """Perturb every weight that initialisation left constant (zero biases, LayerNorm's
    gamma = 1 and beta = 0, BN statistics): trained models have none, and a zero bias or a
    unit scale is something Grappler removes at load time, which would flatter or hide
    rewrites of exactly those ops."""
    rng = np.random.default_rng(seed)
    for var in model.weights:
        value = np.asarray(var.numpy())
        if value.size and value.dtype.kind == "f" and np.all(value == value.flat[0]):
            noise = rng.uniform(-scale, scale, value.shape).astype(value.dtype)
            var.assign(value + noise)


def build_ssd(export_dir: str, seed: int = 0) -> None:
    from tfopt.zoo.detector import build_ssd_inception

    build_ssd_inception(export_dir, seed=seed)


def build_unet(export_dir: str, seed: int = 0) -> None:
    """A small U-Net (128x128): conv + batch norm + ReLU down, Conv2DTranspose up, skip
    concatenations, a per-pixel softmax."""
    import keras

    keras.utils.set_random_seed(seed)
    layers = keras.layers
    x = inputs = keras.Input((128, 128, 3))
    skips = []
    for channels in (32, 64, 128):
        x = layers.ReLU()(layers.BatchNormalization()(
            layers.Conv2D(channels, 3, padding="same", use_bias=False)(x)))
        x = layers.Conv2D(channels, 3, padding="same", activation="relu")(x)
        skips.append(x)
        x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(256, 3, padding="same", activation="relu")(x)
    for channels, skip in zip((128, 64, 32), reversed(skips), strict=True):
        x = layers.Conv2DTranspose(channels, 2, strides=2, padding="same")(x)
        x = layers.Concatenate()([x, skip])
        x = layers.ReLU()(layers.BatchNormalization()(
            layers.Conv2D(channels, 3, padding="same", use_bias=False)(x)))
    model = keras.Model(inputs, layers.Conv2D(2, 1, activation="softmax")(x))
    randomize_batch_norm(model, seed)
    model.export(export_dir, format="tf_saved_model", verbose=False)


def build_digits_cnn(export_dir: str, seed: int = 0) -> None:
    from tfopt.zoo.digits import build_digits

    build_digits("digits_cnn", export_dir, seed)


def build_digits_transformer(export_dir: str, seed: int = 0) -> None:
    from tfopt.zoo.digits import build_digits

    build_digits("digits_transformer", export_dir, seed)


RECURRENT = {  # name -> (description, the layers between the embedding and the head)
    "lstm_gru": "text classifier: Embedding(5000, 64) -> LSTM(96, sequences) -> GRU(64) -> "
                "Dense(4, softmax), sequence 40",
    "bilstm_masked": "Embedding(5000, 64, mask_zero) -> Bidirectional(LSTM(64)) -> "
                     "Dense(4, softmax), sequence 40, padded ids masked",
    "stacked_gru": "Embedding(5000, 64) -> GRU(64, sequences) -> GRU(64, sequences) -> "
                   "GRU(64) -> Dense(4, softmax), sequence 40",
    "bigru_masked": "Embedding(5000, 64, mask_zero) -> Bidirectional(GRU(64)) -> "
                    "Dense(4, softmax), sequence 40, padded ids masked",
    "bilstm_tagger": "sequence tagger: Embedding(5000, 64) -> Bidirectional(LSTM(64, "
                     "sequences)) -> TimeDistributed(Dense(9, softmax)), sequence 40",
}


def recurrent_model(kind: str, seq: int = 40, vocab: int = 5000, units: int = 64,
                    seed: int = 0):
    """A Keras 3 recurrent text classifier (``kind`` one of :data:`RECURRENT`)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inp = keras.Input((seq,), dtype="int32", name="tokens")
    x = layers.Embedding(vocab, units, mask_zero=kind.endswith("_masked"))(inp)
    if kind == "lstm_gru":
        x = layers.LSTM(units * 3 // 2, return_sequences=True)(x)
        x = layers.GRU(units)(x)
    elif kind == "bilstm_masked":
        x = layers.Bidirectional(layers.LSTM(units))(x)
    elif kind == "bigru_masked":
        x = layers.Bidirectional(layers.GRU(units))(x)
    elif kind == "bilstm_tagger":
        x = layers.Bidirectional(layers.LSTM(units, return_sequences=True))(x)
        return keras.Model(inp, layers.TimeDistributed(layers.Dense(9, activation="softmax"))(x))
    elif kind == "stacked_gru":
        for _ in range(2):
            x = layers.GRU(units, return_sequences=True)(x)
        x = layers.GRU(units)(x)
    else:
        raise TfoptError(f"unknown recurrent model {kind!r} ({', '.join(RECURRENT)})")
    return keras.Model(inp, layers.Dense(4, activation="softmax")(x))


def build_recurrent(kind: str, export_dir: str, seed: int = 0) -> None:
    recurrent_model(kind, seed=seed).export(export_dir, verbose=False)


BUILDERS: dict[str, tuple[Callable[[str, int], None], str]] = {
    "digits_cnn": (build_digits_cnn, "small CNN trained on scikit-learn's digits (test split "
                                     "saved beside it)"),
    "digits_transformer": (build_digits_transformer, "small transformer trained on "
                                                     "scikit-learn's digits (test split saved "
                                                     "beside it)"),
    "ssd_inception": (build_ssd, "SSD detector on an Inception-v2-style backbone (TF1 export)"),
    "toy_tf1": (build_toy_tf1, "small TF1 classifier with Saver, training branch, debug ops"),
    "unet": (build_unet, "U-Net, 128x128 (Conv2DTranspose, skip concatenations, batch norm)"),
    "toy_tf2": (build_toy_tf2, "TF2 module with tf.cond, tf.while_loop, map_fn, embeddings"),
    **{kind: (functools.partial(build_recurrent, kind), text)
       for kind, text in RECURRENT.items()},
}


def zoo_names() -> dict[str, str]:
    names = {k: v[1] for k, v in BUILDERS.items()}
    for key, (cls, shape) in KERAS_APPS.items():
        names[key] = f"keras.applications.{cls}(weights=None), input {shape}"
    return names


def build(name: str, export_dir: str, seed: int = 0) -> None:
    """Build zoo model ``name`` as a SavedModel at ``export_dir``."""
    if name in BUILDERS:
        BUILDERS[name][0](export_dir, seed)
    elif name in KERAS_APPS:
        build_keras_app(name, export_dir, seed)
    else:
        raise TfoptError(f"unknown zoo model {name!r} (available: {', '.join(zoo_names())})")
