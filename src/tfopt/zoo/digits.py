"""Small models trained here on real data: scikit-learn's handwritten digits (1797 8x8 images,
10 classes, shipped inside the package; nothing is downloaded).

Random weights make accuracy and agreement numbers meaningless, so reduced precision is
judged on these: a CNN (conv + batch norm + ReLU, depthwise, dense head) and a small
transformer (rows of the image as a sequence of 8 tokens, attention, layer norm, GELU MLP).
Each trains in seconds on 2 cores to ~95% test accuracy, is exported with ``model.export()``,
and its held-out split is saved inside the model directory (TensorFlow ignores other files),
ready for ``--inputs-file`` and ``--labels``: ``<model>/test.npz`` (the images, keyed by the
input name ``image``) and ``<model>/labels.npy``; and ``<model>/calibration.npz``, 256 training
images for ``--precision int8 --calibration-file`` (never the test images: ranges fitted to the
samples that judge them would flatter the result).
"""

from __future__ import annotations

import os

import numpy as np

from tfopt.errors import TfoptError

TEST_SHARE = 0.25
TEST_INPUTS, TEST_LABELS = "test.npz", "labels.npy"  # inside the model directory
CALIBRATION, CALIBRATION_SAMPLES = "calibration.npz", 256


def digits_split(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train and test images ``[n, 8, 8, 1]`` float32 in [0, 1], and their labels."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise TfoptError("the digits models need scikit-learn (pip install scikit-learn): "
                         "it ships the data set") from None
    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[..., None]
    y = data.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    cut = int(len(x) * (1 - TEST_SHARE))
    train, test = order[:cut], order[cut:]
    return x[train], y[train], x[test], y[test]


def _cnn(keras):
    inp = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(32, 3, padding="same", use_bias=False)(inp)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    x = keras.layers.Conv2D(64, 3, strides=2, padding="same")(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    return keras.Model(inp, keras.layers.Dense(10, activation="softmax", name="probs")(x))


def _transformer(keras):
    inp = keras.Input((8, 8, 1), name="image")
    tokens = keras.layers.Reshape((8, 8))(inp)  # 8 rows of 8 pixels
    x = keras.layers.Dense(32)(tokens)
    x = x + keras.layers.Embedding(8, 32)(keras.ops.arange(8))
    for _ in range(2):
        attn = keras.layers.MultiHeadAttention(4, 8)(x, x)
        x = keras.layers.LayerNormalization()(x + attn)
        mlp = keras.layers.Dense(32)(keras.layers.Dense(64, activation="gelu")(x))
        x = keras.layers.LayerNormalization()(x + mlp)
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(inp, keras.layers.Dense(10, activation="softmax", name="probs")(x))


ARCHITECTURES = {"digits_cnn": _cnn, "digits_transformer": _transformer}


def build_digits(name: str, export_dir: str, seed: int = 0, epochs: int = 30) -> float:
    """Train ``name`` on the digits' training split, export it to ``export_dir`` and save the
    test split beside it (see the module docstring); returns the test accuracy."""
    import keras

    x_train, y_train, x_test, y_test = digits_split(seed)
    keras.utils.set_random_seed(seed)
    model = ARCHITECTURES[name](keras)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=64, epochs=epochs, verbose=0)
    accuracy = float(np.mean(model.predict(x_test, verbose=0).argmax(1) == y_test))
    model.export(export_dir, format="tf_saved_model", verbose=False)
    np.savez(os.path.join(export_dir, TEST_INPUTS), image=x_test)
    np.save(os.path.join(export_dir, TEST_LABELS), y_test)
    np.savez(os.path.join(export_dir, CALIBRATION), image=x_train[:CALIBRATION_SAMPLES])
    return accuracy
