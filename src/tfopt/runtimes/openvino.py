"""OpenVINO: an IR (``model.xml`` + ``model.bin``) converted from the SavedModel by
``openvino.convert_model``, run by OpenVINO's CPU plugin in the precision set explicitly
beside it (``plugin_config.json``: ``{"INFERENCE_PRECISION_HINT": "f32"}`` or ``"bf16"``; on a
CPU with bf16 instructions OpenVINO would otherwise run bf16 unnoticed). The IR is written in
OpenVINO Model Server's layout (``OUT/1/``), and the file is the model's ``plugin_config`` in
the server's ``config.json``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable

import numpy as np

from tfopt.errors import TfoptError, first_line
from tfopt.runtimes import package_version

FILE = os.path.join("1", "model.xml")  # OpenVINO Model Server: <model>/<version>/model.xml
CONFIG = "plugin_config.json"  # the precision the IR runs in (OVMS's "plugin_config")
PRECISION_KEY = "INFERENCE_PRECISION_HINT"


def available() -> str | None:
    return package_version("openvino", "openvino")


def label(threads: int, precision: str = "f32") -> str:
    return f"OpenVINO {available()}, CPU {precision}, {threads} threads"


def _config_file(path: str) -> str | None:
    """The plugin configuration beside the IR at ``path`` (the model directory or its xml)."""
    xml = model_file(path)
    if xml is None:
        return None
    for folder in (os.path.dirname(xml), os.path.dirname(os.path.dirname(xml))):
        if os.path.isfile(os.path.join(folder, CONFIG)):
            return os.path.join(folder, CONFIG)
    return None


def precision(path: str) -> str:
    """The inference precision the IR at ``path`` is to run in (float32 when nothing says)."""
    config = _config_file(path)
    if config is None:
        return "f32"
    with open(config) as f:
        return str(json.load(f).get(PRECISION_KEY, "f32"))


def set_precision(model_dir: str, value: str) -> None:
    with open(os.path.join(model_dir, CONFIG), "w") as f:
        json.dump({PRECISION_KEY: value}, f)


def with_precision(model_dir: str, out_dir: str, value: str) -> None:
    """The IR under ``model_dir`` again under ``out_dir`` (hard links where the file system
    allows: the weights are not copied), to run in ``value``."""
    for root, _, files in os.walk(model_dir):
        target = os.path.join(out_dir, os.path.relpath(root, model_dir))
        os.makedirs(target, exist_ok=True)
        for name in files:
            if name == CONFIG:
                continue
            try:
                os.link(os.path.join(root, name), os.path.join(target, name))
            except OSError:
                shutil.copy2(os.path.join(root, name), os.path.join(target, name))
    set_precision(out_dir, value)


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
    set_precision(out_dir, "f32")
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
        PRECISION_KEY: precision(path), "INFERENCE_NUM_THREADS": threads})

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
