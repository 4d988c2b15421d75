"""Paths in and out, checked before TensorFlow loads: a missing model, an unknown format or an
output that exists is one line at once; outputs are written to a temporary path and renamed
into place. Importable without TensorFlow."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator

from tfopt.errors import TfoptError

SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
KERAS_EXTENSIONS = (".keras", ".h5", ".hdf5")
GRAPH_DEF_EXTENSIONS = (".pb", ".pbtxt", ".graphdef")


def model_kind(path: str) -> str:
    """"saved_model", "keras", "graph_def", "litert" or "openvino", from the path alone;
    TfoptError if none."""
    if not os.path.exists(path):
        raise TfoptError(f"{path}: no such file or directory")
    from tfopt.runtimes import detect as runtime_format

    if fmt := runtime_format(path):  # a model for LiteRT or OpenVINO (tfopt wrote it?)
        return fmt
    if os.path.isdir(path):
        if any(os.path.exists(os.path.join(path, f)) for f in SAVED_MODEL_FILES):
            return "saved_model"
        raise TfoptError(f"{path}: directory is not a SavedModel (no saved_model.pb inside)")
    ext = os.path.splitext(path)[1].lower()
    if ext in KERAS_EXTENSIONS:
        return "keras"
    if ext in GRAPH_DEF_EXTENSIONS:
        return "graph_def"
    raise TfoptError(f"{path}: unknown model format (expected a SavedModel directory, "
                     ".pb, .pbtxt, .keras or .h5)")


def size_on_disk(path: str) -> int:
    """Bytes a model takes on disk: a file, or every file under a directory."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def remove(path: str) -> None:
    """Remove what :func:`write` wrote at ``path`` (a directory or a file), if anything."""
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


METADATA_FILE = "tfopt.json"


def write_metadata(export_dir: str, metadata: dict) -> None:
    """``tfopt.json`` beside ``saved_model.pb``: the runtimes the model needs (TF ignores it)."""
    with open(os.path.join(export_dir, METADATA_FILE), "w") as f:
        json.dump(metadata, f, indent=2, sort_keys=True)


def read_metadata(path: str) -> dict | None:
    try:
        with open(os.path.join(path, METADATA_FILE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def check_output_path(out: str, overwrite: bool, src: str | None = None) -> None:
    """Refuse before any work is done: existing OUT without --overwrite, OUT == IN."""
    if src is not None:
        a, b = os.path.realpath(out), os.path.realpath(src)
        if a == b or b.startswith(a + os.sep):
            raise TfoptError(f"{out}: output would overwrite the input model; choose another path")
        if a.startswith(b + os.sep):
            raise TfoptError(f"{out}: output inside the input model's directory would modify "
                             "the input; choose a path outside it")
    if os.path.lexists(out) and not overwrite:
        raise TfoptError(f"{out}: already exists (use --overwrite to replace it)")
    ancestor = os.path.dirname(os.path.abspath(out))
    while not os.path.exists(ancestor):  # missing parents are created when writing
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise TfoptError(f"{out}: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK):
        raise TfoptError(f"{out}: {ancestor} is not writable")


@contextlib.contextmanager
def atomic_output(out: str, overwrite: bool) -> Iterator[str]:
    """Yield a temporary path next to ``out``; on success, move it into place in one rename."""
    out = os.path.abspath(out)
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp_root = tempfile.mkdtemp(prefix=".tfopt-", dir=parent)
    tmp = os.path.join(tmp_root, os.path.basename(out))
    try:
        yield tmp
        if os.path.lexists(out):
            if not overwrite:
                raise TfoptError(f"{out}: already exists (use --overwrite to replace it)")
            old = os.path.join(tmp_root, "previous")
            os.rename(out, old)
        os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
