"""Inputs for a signature, running graphs and SavedModels, and comparing their outputs.

The float comparison is *relative to the output's scale*:
``rel = max|optimized - original| / max|original|`` per output (NaNs must match NaNs), so one
near-zero element cannot make a correct model look wrong. Integer, bool and string outputs
must match exactly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from tfopt.errors import TfoptError
from tfopt.model import SignatureGraph, TensorInfo

DEFAULT_TOLERANCE = 1e-4
DEFAULT_INT_RANGE = (0, 10)


def parse_shapes(specs: list[str] | tuple[str, ...] | None) -> dict[str, tuple[int, ...]]:
    """``["x=1,224,224,3", ...]`` -> ``{"x": (1, 224, 224, 3)}``."""
    shapes: dict[str, tuple[int, ...]] = {}
    for spec in specs or ():
        name, sep, dims = spec.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            shapes[name.strip()] = tuple(int(d) for d in dims.split(",") if d.strip())
        except ValueError:
            raise TfoptError(f"--input-shape {spec!r}: expected NAME=D1,D2,... "
                             "(e.g. images=1,224,224,3)") from None
    return shapes


def resolve_shape(key: str, info: TensorInfo, batch_size: int,
                  shapes: dict[str, tuple[int, ...]]) -> tuple[int, ...]:
    hint = f"give it with --input-shape {key}=D1,D2,..."
    if key in shapes:
        shape = shapes[key]
        if info.shape is not None:
            if len(shape) != len(info.shape):
                raise TfoptError(f"input {key!r}: --input-shape has rank {len(shape)}, the model "
                                 f"expects {info.describe()}")
            for got, want in zip(shape, info.shape, strict=True):
                if want is not None and got != want:
                    raise TfoptError(f"input {key!r}: --input-shape {shape} does not fit "
                                     f"{info.describe()}")
        return shape
    if info.shape is None:
        raise TfoptError(f"input {key!r} has unknown rank; {hint}")
    dims = list(info.shape)
    if dims and dims[0] is None:
        dims[0] = batch_size
    if any(d is None for d in dims):
        raise TfoptError(f"input {key!r} has unknown dimensions {info.describe()}; {hint}")
    return tuple(dims)


def make_inputs(specs: dict[str, TensorInfo], batch_size: int = 1,
                shapes: dict[str, tuple[int, ...]] | None = None,
                int_range: tuple[int, int] = DEFAULT_INT_RANGE, seed: int = 0
                ) -> dict[str, np.ndarray]:
    """Random inputs that fit the signature: floats N(0,1), uint8 images, ids in ``int_range``."""
    rng = np.random.default_rng(seed)
    shapes = shapes or {}
    unknown = set(shapes) - set(specs)
    if unknown:
        raise TfoptError(f"--input-shape names unknown input(s) {', '.join(sorted(unknown))} "
                         f"(inputs: {', '.join(sorted(specs))})")
    feeds: dict[str, np.ndarray] = {}
    for key, info in specs.items():
        shape = resolve_shape(key, info, batch_size, shapes)
        dtype = info.dtype
        if dtype.is_floating:
            feeds[key] = rng.standard_normal(shape).astype(dtype.as_numpy_dtype)
        elif dtype == tf.uint8:
            feeds[key] = rng.integers(0, 256, shape, dtype=np.uint8)
        elif dtype.is_integer:
            low, high = int_range
            feeds[key] = rng.integers(low, high, shape).astype(dtype.as_numpy_dtype)
        elif dtype == tf.bool:
            feeds[key] = rng.integers(0, 2, shape).astype(bool)
        elif dtype == tf.string:
            words = np.array([b"the", b"quick", b"brown", b"fox", b"jumps"], dtype=object)
            feeds[key] = words[rng.integers(0, len(words), shape)]
        else:
            raise TfoptError(f"input {key!r}: cannot generate {dtype.name} values; give real "
                             "inputs with --inputs-file inputs.npz")
    return feeds


def load_inputs(path: str, specs: dict[str, TensorInfo]) -> dict[str, np.ndarray]:
    if not os.path.isfile(path):
        raise TfoptError(f"{path}: no such inputs file")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as err:
        raise TfoptError(f"{path}: not a readable .npz file ({type(err).__name__})") from None
    missing = [k for k in specs if k not in data.files]
    if missing:
        raise TfoptError(f"{path}: missing input(s) {', '.join(missing)} "
                         f"(it has {', '.join(data.files) or 'nothing'})")
    feeds = {}
    for key, info in specs.items():
        value = data[key]
        if value.dtype.kind in "US":
            value = value.astype(object)
        feeds[key] = value.astype(info.dtype.as_numpy_dtype) if info.dtype != tf.string else value
    return feeds


# --- running -------------------------------------------------------------------------------------


def session_config(intra: int = 0, inter: int = 0) -> tf.compat.v1.ConfigProto:
    return tf.compat.v1.ConfigProto(intra_op_parallelism_threads=intra,
                                    inter_op_parallelism_threads=inter)


def open_session(sig: SignatureGraph, config: tf.compat.v1.ConfigProto | None = None
                 ) -> tf.compat.v1.Session:
    """A session on the signature's graph with its lookup tables initialised (caller closes)."""
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(sig.graph_def, name="")
    sess = tf.compat.v1.Session(graph=graph, config=config or session_config())
    if sig.init_ops:
        sess.run(sig.init_ops)
    return sess


def run_graph_def(sig: SignatureGraph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run a signature's graph once in a fresh session."""
    keys = list(sig.outputs)
    with open_session(sig) as sess:
        values = sess.run([sig.outputs[k].tensor for k in keys],
                          {sig.inputs[k].tensor: v for k, v in feeds.items()})
    return dict(zip(keys, values, strict=True))


def run_saved_model(path: str, key: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    obj = tf.saved_model.load(path)
    result = obj.signatures[key](**{k: tf.constant(v) for k, v in feeds.items()})
    return {k: np.asarray(v) for k, v in result.items()}


# --- comparing -----------------------------------------------------------------------------------


@dataclass
class OutputCheck:
    key: str
    ok: bool
    max_abs: float
    rel: float
    detail: str = ""

    def describe(self) -> str:
        status = "ok" if self.ok else "DIFFERS"
        text = f"{self.key}: max abs diff {self.max_abs:.3g}, relative {self.rel:.3g} [{status}]"
        return text + (f" ({self.detail})" if self.detail else "")


def compare_output(key: str, ref: np.ndarray, got: np.ndarray, tolerance: float) -> OutputCheck:
    ref, got = np.asarray(ref), np.asarray(got)
    if ref.shape != got.shape:
        return OutputCheck(key, False, float("inf"), float("inf"),
                           f"shape {got.shape} instead of {ref.shape}")
    if ref.dtype.kind in "fc":
        ref64, got64 = ref.astype(np.float64), got.astype(np.float64)
        nan_ref, nan_got = np.isnan(ref64), np.isnan(got64)
        if (nan_ref != nan_got).any():
            return OutputCheck(key, False, float("nan"), float("nan"), "NaNs differ")
        diff = np.abs(np.where(nan_ref, 0.0, ref64 - got64))
        max_abs = float(diff.max()) if diff.size else 0.0
        scale = float(np.abs(np.where(nan_ref, 0.0, ref64)).max()) if diff.size else 0.0
        rel = max_abs / scale if scale > 0 else max_abs
        return OutputCheck(key, rel <= tolerance, max_abs, rel)
    mismatches = int(np.count_nonzero(ref != got))
    if ref.dtype.kind in "iub":
        max_abs = float(np.abs(ref.astype(np.int64) - got.astype(np.int64)).max()) if ref.size else 0.0
    else:
        max_abs = float(mismatches)
    return OutputCheck(key, mismatches == 0, max_abs, 0.0 if mismatches == 0 else 1.0,
                       f"{mismatches} elements differ" if mismatches else "exact")


def compare(ref: dict[str, np.ndarray], got: dict[str, np.ndarray],
            tolerance: float = DEFAULT_TOLERANCE) -> list[OutputCheck]:
    checks = []
    for key in ref:
        if key not in got:
            checks.append(OutputCheck(key, False, float("inf"), float("inf"), "missing output"))
        else:
            checks.append(compare_output(key, ref[key], got[key], tolerance))
    return checks
