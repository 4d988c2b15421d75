"""Run a model in a child process, so that a native TensorFlow abort cannot take tfopt down.

TensorFlow's C++ checks (``CHECK`` failures in Grappler or a kernel) end the whole process
with SIGABRT, not a Python exception. Verification runs the *optimized* model, which is the
one thing we have not seen run before, so it runs here: a crash becomes an ordinary error
that names what crashed, and the pipeline can go on to find the pass responsible.

Usage (internal): ``python -m tfopt.isolate saved_model PATH KEY IN.npz OUT.npz`` or
``python -m tfopt.isolate graph_def SIGNATURE.pickle - IN.npz OUT.npz``.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import tempfile

import numpy as np

from tfopt.model import SignatureGraph

TIMEOUT_S = 1800


class ChildFailed(Exception):
    """The child process crashed or failed; the message says how."""


def _to_npz(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    # .npz cannot hold object arrays without pickle: strings travel as fixed-width bytes.
    return {k: (v.astype(np.bytes_) if v.dtype == object else v) for k, v in values.items()}


def _from_npz(data) -> dict[str, np.ndarray]:
    return {k: (data[k].astype(object) if data[k].dtype.kind == "S" else data[k])
            for k in data.files}


def _run_child(args: list[str], feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory(prefix="tfopt-run-") as tmp:
        feeds_path, out_path = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
        np.savez(feeds_path, **_to_npz(feeds))
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
        proc = subprocess.run([sys.executable, "-m", "tfopt.isolate", *args, feeds_path, out_path],
                              capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
            if proc.returncode < 0:
                name = signal.Signals(-proc.returncode).name
                check = [ln for ln in lines if "Check failed" in ln]
                detail = check[-1].split("]", 1)[-1].strip() if check else (lines[-1] if lines else "")
                raise ChildFailed(f"TensorFlow crashed ({name}) running it: {detail}".strip())
            raise ChildFailed(lines[-1] if lines else f"exit code {proc.returncode}")
        with np.load(out_path, allow_pickle=False) as data:
            return _from_npz(data)


def run_saved_model(path: str, key: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return _run_child(["saved_model", path, key], feeds)


def run_graph_def(sig: SignatureGraph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory(prefix="tfopt-graph-") as tmp:
        path = os.path.join(tmp, "signature.pickle")
        with open(path, "wb") as f:
            pickle.dump(sig, f)  # GraphDef and DType pickle; written and read by tfopt only
        return _run_child(["graph_def", path, "-"], feeds)


def _child(argv: list[str]) -> None:
    """The child's side: the same runners verification uses in-process, on the same data."""
    mode, path, key, feeds_path, out_path = argv
    from tfopt import verify

    with np.load(feeds_path, allow_pickle=False) as data:
        feeds = _from_npz(data)
    if mode == "saved_model":
        outputs = verify.run_saved_model(path, key, feeds)
    else:
        with open(path, "rb") as f:
            outputs = verify.run_graph_def(pickle.load(f), feeds)
    np.savez(out_path, **_to_npz({k: np.asarray(v) for k, v in outputs.items()}))


if __name__ == "__main__":
    _child(sys.argv[1:])
