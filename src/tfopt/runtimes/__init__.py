"""Runtimes beside TensorFlow that a model can be converted to and run by: one module each
(:mod:`tfopt.runtimes.litert`, :mod:`tfopt.runtimes.openvino`), all with the same functions:

- ``available()``: the runtime's version, or None when its package is not installed;
- ``convert(saved_model, key, out_dir)``: write the model for the runtime, or a one-line
  :class:`~tfopt.errors.TfoptError` naming what it cannot hold;
- ``model_file(path)``: the runtime's file inside a model directory tfopt wrote (None: none);
- ``open_signature(path, key, threads)``: ``(inputs, outputs, prepare)``, ``prepare(feeds)``
  returning a call with no arguments that returns the outputs by name;
- ``label(threads, precision)``: what ran, for reports (``LiteRT 2.3.0, XNNPACK, 2 threads``).

Each is optional at install time (``pip install tfopt[litert]``, ``tfopt[openvino]``); without
it, :func:`require` says in one line which extra brings it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from types import ModuleType

from tfopt.errors import TfoptError

RUNTIME_FORMATS = ("litert", "openvino")  # one module each, below this package

EXTRAS = {"litert": "LiteRT (pip install 'tfopt[litert]')",
          "openvino": "OpenVINO (pip install 'tfopt[openvino]')"}


def package_version(module: str, dist: str) -> str | None:
    """The installed version of distribution ``dist`` (None: ``module`` is not importable
    here, so the runtime is not installed)."""
    if importlib.util.find_spec(module) is None:
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def runtime(fmt: str) -> ModuleType:
    """The module of runtime format ``fmt`` ("litert" or "openvino")."""
    if fmt not in RUNTIME_FORMATS:
        raise TfoptError(f"unknown runtime {fmt!r} ({', '.join(RUNTIME_FORMATS)})")
    return importlib.import_module(f"tfopt.runtimes.{fmt}")


def require(fmt: str) -> ModuleType:
    """The runtime's module, its package installed; else a one-line TfoptError naming the
    extra that brings it."""
    module = runtime(fmt)
    if module.available() is None:
        raise TfoptError(f"--format {fmt} needs {EXTRAS[fmt]}, which is not installed")
    return module


def installed() -> list[str]:
    """The runtime formats whose packages are installed here."""
    return [fmt for fmt in RUNTIME_FORMATS if runtime(fmt).available() is not None]


def default_threads() -> int:
    """One thread per core, set explicitly (ai_edge_litert's interpreter uses one thread when
    given none; OpenVINO picks its own)."""
    return os.cpu_count() or 1


def detect(path: str) -> str | None:
    """The runtime format of the model at ``path`` (a runtime's file, or a directory tfopt
    wrote for it), or None."""
    for fmt in RUNTIME_FORMATS:
        if runtime(fmt).model_file(path) is not None:
            return fmt
    return None
