"""A Keras file (``.keras``, ``.h5``): its call traced and frozen, run by Keras as the
original."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf
from tensorflow.python.util import nest

from tfopt.model.format import DEFAULT_SIGNATURE, OpenSignature, SingleSignature
from tfopt.model.saved_model import load_error, shape_tuple
from tfopt.model.saved_model_tf2 import freeze_function
from tfopt.model.signature import LoadedModel, SignatureGraph, TensorInfo


class KerasFile(SingleSignature):
    name = "keras"

    def _load(self, inputs, outputs) -> LoadedModel:
        return load_keras(self.path)

    def open(self, signature: str | None, config) -> OpenSignature:
        """A Keras file runs as its traced call function (inputs by name), as Keras serves
        it."""
        model = self.load(None, None, None)
        sig = model.signatures[DEFAULT_SIGNATURE]

        def prepare(feeds: dict[str, np.ndarray]) -> Callable[[], object]:
            return lambda: model.reference(DEFAULT_SIGNATURE, feeds)

        return OpenSignature(sig.inputs, prepare, owner=model)


def load_keras(path: str) -> LoadedModel:
    import keras

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as err:
        raise load_error(path, err) from None
    specs = {}
    for t in model.inputs:
        name = t.name.split(":")[0]
        specs[name] = tf.TensorSpec(t.shape, t.dtype, name=name)

    @tf.function(input_signature=[specs])
    def serve(inputs):
        args = [inputs[k] for k in specs]
        out = model(args if len(args) > 1 else args[0], training=False)
        if isinstance(out, dict):  # named outputs keep their names, as model.export() does
            return dict(out)
        flat = tf.nest.flatten(out)
        return {f"output_{i}": t for i, t in enumerate(flat)}

    func = serve.get_concrete_function()
    frozen = freeze_function(path, func)
    sig = SignatureGraph(DEFAULT_SIGNATURE, frozen.graph_def, {}, {},
                         init_ops=list(frozen.init_ops), weights=frozen.weights)
    # Inputs of a dict-structured function flatten in sorted-key order.
    for key, ph in zip(sorted(specs), frozen.io.inputs[:len(specs)], strict=False):
        spec = specs[key]
        sig.inputs[key] = TensorInfo(ph.name, spec.dtype, shape_tuple(spec.shape))
    paths = nest.flatten_with_joined_string_paths(func.structured_outputs)
    for (out_key, _), tensor in zip(paths, frozen.io.outputs, strict=True):
        sig.outputs[out_key] = TensorInfo(tensor.name, tensor.dtype, shape_tuple(tensor.shape))

    def reference(key: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = func(inputs={k: tf.constant(v) for k, v in feeds.items()})
        return {k: np.asarray(v) for k, v in result.items()}

    # As Keras 3's model.export() does: "serve" and "serving_default" over one function.
    serve = sig.with_graph(sig.graph_def)
    serve.key, serve.same_as = "serve", DEFAULT_SIGNATURE
    return LoadedModel(path, {DEFAULT_SIGNATURE: sig, "serve": serve},
                       reference=reference)
