"""LiteRT: a ``.tflite`` converted by the pinned TensorFlow's own converter, run by the
maintained interpreter (``ai_edge_litert``, XNNPACK on CPU).

``tf.lite.TFLiteConverter`` is deprecated in TensorFlow's Python package but still the
converter of the TensorFlow it ships with; when TensorFlow drops it, ``ai_edge_torch``'s and
LiteRT's own converter packages take its place here, and only :func:`convert` changes. Only
LiteRT's built-in ops are emitted: models needing Select TF ops do not run from the pip
runtime (since TF 2.20), so they are refused at conversion, naming the ops.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

import numpy as np

from tfopt.errors import TfoptError, first_line
from tfopt.runtimes import package_version

FILE = "model.tflite"


def available() -> str | None:
    return package_version("ai_edge_litert", "ai-edge-litert")


def label(threads: int, precision: str = "f32") -> str:
    """What runs the model (LiteRT's candidates are float32: ``precision`` is for the
    runtimes' common signature)."""
    return f"LiteRT {available()}, XNNPACK, {threads} threads"


def model_file(path: str) -> str | None:
    if os.path.isfile(path) and path.endswith(".tflite"):
        return path
    inside = os.path.join(path, FILE)
    return inside if os.path.isfile(inside) else None


def convert(saved_model: str, key: str, out_dir: str) -> str:
    """Convert signature ``key`` of ``saved_model`` to ``out_dir/model.tflite`` (float32,
    built-in ops only); the file's path."""
    import tensorflow as tf

    try:
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model, signature_keys=[key])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        blob = converter.convert()
    except Exception as err:  # the converter raises ConverterError, ValueError, ...
        raise TfoptError(f"LiteRT cannot hold this model: {_why(err)}") from None
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, FILE)
    with open(path, "wb") as f:
        f.write(blob)
    return path


def _why(err: Exception) -> str:
    """The converter's reason in one line: the ops it could not convert, when it names them."""
    text = str(err)
    ops = sorted(set(re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", text)))
    if ops:
        return (f"ops {', '.join(ops)} are not LiteRT built-ins (they need Select TF ops, which "
                "the pip runtime does not run)")
    lines = [ln.strip() for ln in text.splitlines() if "error:" in ln]
    if not lines:
        return first_line(err)
    reason = lines[0].split("error:", 1)[1].strip()
    if reason.startswith("loc("):  # the MLIR location (node names, call sites): not the reason
        reason = reason.rsplit("): ", 1)[-1]
    return reason


def open_signature(path: str, key: str | None, threads: int):
    """``(inputs, outputs, prepare)``: name -> (dtype, shape) of the signature's inputs and
    outputs, and ``prepare(feeds)`` -> a call returning the outputs by name."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=model_file(path), num_threads=threads)
    keys = list(interpreter.get_signature_list())
    key = key if key in keys else keys[0]
    runner = interpreter.get_signature_runner(key)
    inputs = {k: (np.dtype(d["dtype"]), tuple(int(x) for x in d["shape_signature"]))
              for k, d in runner.get_input_details().items()}
    outputs = {k: (np.dtype(d["dtype"]), tuple(int(x) for x in d["shape_signature"]))
               for k, d in runner.get_output_details().items()}

    def prepare(feeds: dict[str, np.ndarray]) -> Callable[[], dict]:
        given = {k: np.ascontiguousarray(v) for k, v in feeds.items()}
        return lambda: runner(**given)

    return inputs, outputs, prepare, interpreter


def op_counts(path: str) -> dict[str, int]:
    """Op types of the ``.tflite`` (LiteRT's op names, e.g. CONV_2D), counted."""
    from collections import Counter

    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=model_file(path))
    return dict(Counter(op["op_name"] for op in interpreter._get_ops_details()))
