"""Large TF2 SavedModels load with only the weights their signatures read (model/restore.py)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tfopt.model import restore


@pytest.fixture(scope="module")
def keras_export(tmp_path_factory) -> str:
    import keras

    keras.utils.set_random_seed(0)
    ids = keras.Input((None,), dtype="int32", name="ids")
    x = keras.layers.Embedding(500, 32)(ids)
    x = keras.layers.GlobalAveragePooling1D()(x)
    model = keras.Model(ids, keras.layers.Dense(4)(x))
    path = str(tmp_path_factory.mktemp("restore") / "m")
    model.export(path, format="tf_saved_model", verbose=False)
    return path


def _answers(obj) -> np.ndarray:
    ids = tf.constant([[1, 7, 499, 3]], tf.int32)
    return next(iter(obj.signatures["serve"](ids=ids).values())).numpy()


def _loaded_answers(path: str) -> np.ndarray:
    obj = tf.saved_model.load(path)  # kept while its signature runs
    return _answers(obj)


def test_keras_export_stores_each_weight_twice(keras_export):
    """Why restore.py exists: the checkpoint holds the weights twice."""
    reader = tf.train.load_checkpoint(restore.checkpoint_prefix(keras_export))
    obj = tf.saved_model.load(keras_export)
    weights = sum(v.numpy().nbytes for v in obj.signatures["serve"].variables)
    assert restore.checkpoint_bytes(reader) == 2 * weights


def test_past_the_threshold_only_the_signature_weights_are_restored(keras_export, monkeypatch):
    expected = _loaded_answers(keras_export)
    monkeypatch.setenv("TFOPT_MAX_GRAPH_MB", "0.001")  # 1/24 of 1 KiB: every model is large
    obj = restore.load(keras_export)
    np.testing.assert_array_equal(_answers(obj), expected)
    read = {id(v) for v in obj.signatures["serve"].variables}
    others = [v for v in obj._all_variables if id(v) not in read]  # the duplicates
    assert others and not any(v.is_initialized() for v in others)


def test_under_the_threshold_the_plain_load(keras_export):
    obj = restore.load(keras_export)
    assert all(v.is_initialized() for v in obj._all_variables)
    np.testing.assert_array_equal(_answers(obj), _loaded_answers(keras_export))
