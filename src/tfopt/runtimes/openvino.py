"""OpenVINO: an IR (``model.xml`` + ``model.bin``) converted from the SavedModel by
``openvino.convert_model``, run by OpenVINO's CPU plugin in float32, set explicitly
(``INFERENCE_PRECISION_HINT=f32``: on a CPU with bf16 instructions OpenVINO would otherwise
run bf16 unnoticed). The IR is written in OpenVINO Model Server's layout (``OUT/1/``).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from tfopt.errors import TfoptError, first_line
from tfopt.runtimes import package_version

FILE = os.path.join("1", "model.xml")  # OpenVINO Model Server: <model>/<version>/model.xml
PRECISION = "f32"


def available() -> str | None:
    return package_version("openvino", "openvino")


def label(threads: int) -> str:
    return f"OpenVINO {available()}, CPU {PRECISION}, {threads} threads"


def model_file(path: str) -> str | None:
    if os.path.isfile(path) and path.endswith(".xml"):
        return path
    for name in (FILE, "model.xml"):
        inside = os.path.join(path, name)
        if os.path.isfile(inside):
            return inside
    return None


def convert(saved_model: str, key: str, out_dir: str) -> str:
    """Convert ``saved_model`` (its signature ``key``) to an IR under ``out_dir/1/``."""
    import openvino as ov
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(saved_model)
        model = ov.convert_model(loaded.signatures[key])
    except Exception as err:
        raise TfoptError(f"OpenVINO cannot hold this model: {_why(err)}") from None
    path = os.path.join(out_dir, FILE)
    ov.save_model(model, path, compress_to_fp16=False)
    return path


def _why(err: Exception) -> str:
    text = str(err)
    for line in text.splitlines():
        if "No conversion rule found for operations:" in line:
            return "no conversion rule for " + line.split(":", 1)[1].strip()
    return first_line(err)


def open_signature(path: str, key: str | None, threads: int):
    """``(inputs, outputs, prepare)`` as :func:`tfopt.runtimes.litert.open_signature`."""
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(model_file(path), "CPU", {
        "INFERENCE_PRECISION_HINT": PRECISION, "INFERENCE_NUM_THREADS": threads})

    def spec(port) -> tuple:
        shape = tuple(-1 if d.is_dynamic else d.get_length() for d in port.get_partial_shape())
        return np.dtype(port.get_element_type().to_dtype()), shape

    inputs = {p.get_any_name(): spec(p) for p in compiled.inputs}
    outputs = {p.get_any_name(): spec(p) for p in compiled.outputs}
    request = compiled.create_infer_request()
    names = [p.get_any_name() for p in compiled.outputs]

    def prepare(feeds: dict[str, np.ndarray]) -> Callable[[], dict]:
        given = {k: np.ascontiguousarray(v) for k, v in feeds.items()}

        def call() -> dict:
            result = request.infer(given)
            return {name: np.array(result[port]) for name, port in
                    zip(names, compiled.outputs, strict=True)}
        return call

    return inputs, outputs, prepare, compiled


def op_counts(path: str) -> dict[str, int]:
    """Op types of the IR (OpenVINO's opset names, e.g. Convolution), counted."""
    from collections import Counter

    import openvino as ov

    model = ov.Core().read_model(model_file(path))
    return dict(Counter(op.get_type_name() for op in model.get_ordered_ops()))
