"""What the user hands in beside the model, checked against the signature it declares, before
any work: the inputs file, the calibration file and the labels.

A wrong file used to surface minutes later as a misleading refusal ("the frozen graph already
differs ... tolerance"), an internal error, or, worse, a "verified" on data that cannot mean
anything (9x9 images for an 8x8 model, Inf inputs, label 7 for 3 classes). Each problem here
is one line naming the file, the input and what was expected. The CLI, the API and
``tfopt benchmark`` read samples through :func:`read_samples`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from tfopt.errors import TfoptError

if TYPE_CHECKING:  # this module stays TensorFlow-free: options.checked() calls precheck()
    from tfopt.model.signature import TensorInfo  # (or tfopt.model.declared.Spec)

# Fewer calibration samples than this set int8 ranges from too little of the data's spread.
CALIBRATION_RECOMMENDED = 100


def _np_load(path: str, what: str, suffix: str):
    """``np.load`` of a file the user named (no pickles), or a one-line TfoptError."""
    if not os.path.isfile(path):
        raise TfoptError(f"{path}: no such {what}")
    try:
        return np.load(path, allow_pickle=False)
    except Exception as err:
        raise TfoptError(f"{path}: not a readable {suffix} file ({type(err).__name__})") from None


def _open_npz(path: str, what: str):
    data = _np_load(path, what, ".npz")
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise TfoptError(f"{path}: a single .npy array, not an .npz archive keyed by input "
                         "name (write it with np.savez(path, input_name=array, ...))")
    return data


def precheck(inputs_file: str | None, labels: str | None, calibration_file: str | None,
             src: str | None = None, signatures: list[str] | None = None) -> None:
    """Everything that can be refused before TensorFlow is imported (well under a second):
    against the signatures a SavedModel ``src`` declares in its ``saved_model.pb`` (read
    without TensorFlow: :mod:`tfopt.model.declared`), all of it; for other formats, what
    needs no signature (not an .npz, no samples, NaN/Inf, sample counts, labels that are not
    non-negative integers, one per sample)."""
    from tfopt.model.declared import declared_signatures

    declared = declared_signatures(src) if src and os.path.isdir(src) else None
    if declared:
        wanted = {k: v for k, v in declared.items() if not signatures or k in signatures}
        check_files(inputs_file, labels, calibration_file, wanted)
        return
    samples = None
    for path, what in ((inputs_file, "inputs file"), (calibration_file, "calibration file")):
        if not path:
            continue
        data = _open_npz(path, what)
        arrays = {}
        for key in data.files:
            try:
                arrays[key] = value = data[key]
            except ValueError:
                continue  # an object array: read_samples says what to do
            where = f"{path}: input {key!r}"
            _some_samples(where, value.shape)
            if value.dtype.kind in "fc":
                _numeric(where, value, None)
        count = _sample_count(path, arrays)
        if path == inputs_file:
            samples = count
    if labels and inputs_file:
        read_labels(labels, samples, {})


def read_samples(path: str, specs: dict[str, TensorInfo], what: str = "inputs file",
                 known: set[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays of ``path`` (.npz keyed by input name) for the inputs ``specs``, each
    checked against its declared dtype and shape; ``known``: every input name of the model
    (a key naming none of them is a mistake, not something to ignore)."""
    data = _open_npz(path, what)
    missing = [k for k in specs if k not in data.files]
    if missing:
        raise TfoptError(f"{path}: missing input(s) {', '.join(missing)} "
                         f"(it has {', '.join(data.files) or 'nothing'})")
    extra = sorted(set(data.files) - set(known if known is not None else specs))
    if extra:
        raise TfoptError(f"{path}: key(s) {', '.join(extra)} name no input of the model "
                         f"(inputs: {', '.join(sorted(known if known is not None else specs))})")
    feeds = {}
    for key, info in specs.items():
        try:
            value = data[key]
        except ValueError:  # an object array: reading it would need pickle
            raise TfoptError(f"{path}: input {key!r} is an object array, which loads only "
                             "through pickle; save strings as a bytes array "
                             "(np.array(values, dtype=bytes))") from None
        feeds[key] = _checked(path, key, value, info)
    _sample_count(path, feeds)
    return feeds


def _sample_count(path: str, arrays: dict[str, np.ndarray]) -> int | None:
    """How many samples every input of ``path`` holds (None: no input has a batch axis);
    inputs that disagree are refused."""
    counts = {k: len(v) for k, v in arrays.items() if np.ndim(v)}
    if len(set(counts.values())) > 1:
        sizes = ", ".join(f"{k} {n}" for k, n in counts.items())
        raise TfoptError(f"{path}: inputs hold different numbers of samples ({sizes})")
    return next(iter(counts.values()), None)


def _some_samples(where: str, shape: tuple[int, ...]) -> None:
    if shape and shape[0] == 0:
        raise TfoptError(f"{where} holds no samples (shape {list(shape)})")


def _dtype_name(dtype) -> str:
    """``float32``: a TensorFlow DType's name, or the name itself (what declared.py reads
    from saved_model.pb without TensorFlow)."""
    return getattr(dtype, "name", str(dtype))


def _checked(path: str, key: str, value: np.ndarray, info: TensorInfo) -> np.ndarray:
    """``value`` cast to the input's dtype, or a TfoptError saying why it cannot stand for it."""
    where = f"{path}: input {key!r}"
    want = info.dtype
    name = _dtype_name(want)
    kind = value.dtype.kind
    if name == "string":
        if kind not in "US":
            raise TfoptError(f"{where} holds {value.dtype} values; the model declares strings")
        value = value.astype(object)
    elif kind in "USO":
        raise TfoptError(f"{where} holds strings ({value.dtype}); the model declares {name}")
    elif kind not in "biufc":
        raise TfoptError(f"{where} holds {value.dtype} values; the model declares {name}")
    else:
        value = _numeric(where, value, want)
    _check_shape(where, value.shape, info)
    return value


def _numeric(where: str, value: np.ndarray, want) -> np.ndarray:
    """``value`` cast to ``want`` (a TensorFlow dtype or its name; None: only checked to be
    finite)."""
    if value.dtype.kind in "fc" and value.size and not np.isfinite(value).all():
        bad = int(np.count_nonzero(~np.isfinite(value)))
        raise TfoptError(f"{where} holds {bad} NaN or Inf value(s): outputs computed from them "
                         "compare as NaN and prove nothing; give finite samples")
    if want is None:
        return value
    name = _dtype_name(want)
    if name == "bool":
        if value.dtype.kind != "b" and not np.isin(value, (0, 1)).all():
            raise TfoptError(f"{where} holds values other than 0 and 1; the model declares bool")
        return value.astype(bool)
    if name.startswith(("int", "uint")):
        if value.dtype.kind in "fc":
            if value.size and not (np.real(value) == np.round(np.real(value))).all():
                raise TfoptError(f"{where} holds fractional values; the model declares "
                                 f"{name} (ids or counts): give integers")
            value = np.real(value)
        info = np.iinfo(np.dtype(name))
        if value.size and (value.min() < info.min or value.max() > info.max):
            raise TfoptError(f"{where} holds values outside {name}'s range "
                             f"[{info.min}, {info.max}] ({value.min()}..{value.max()})")
        return value.astype(name)
    if not name.startswith("complex") and value.dtype.kind == "c":
        raise TfoptError(f"{where} holds complex values; the model declares {name}")
    numpy = getattr(want, "as_numpy_dtype", None)  # bfloat16: TensorFlow's own NumPy type
    return value.astype(numpy if numpy is not None else
                        ("float32" if name == "bfloat16" else name))


def _check_shape(where: str, shape: tuple[int, ...], info: TensorInfo) -> None:
    if info.shape is not None:
        if len(shape) != len(info.shape):
            raise TfoptError(f"{where} has shape {list(shape)}; the model declares "
                             f"{info.describe()} (rank {len(info.shape)})")
        fixed = [(i, got, want) for i, (got, want) in enumerate(zip(shape, info.shape,
                                                                     strict=True))
                 if want is not None and got != want]
        if fixed:
            i, got, want = fixed[0]
            raise TfoptError(f"{where} has shape {list(shape)}; the model declares "
                             f"{info.describe()} (dimension {i} must be {want}, not {got})")
    _some_samples(where, shape)


def read_calibration(path: str, specs: dict[str, TensorInfo], known: set[str],
                     notes: list[str]) -> dict[str, np.ndarray]:
    """Calibration samples, checked as verification inputs are; too few is said in ``notes``."""
    samples = read_samples(path, specs, "calibration file", known)
    count = max((len(v) for v in samples.values() if np.ndim(v)), default=1)
    if count < CALIBRATION_RECOMMENDED:
        note = (f"calibrated on {count} sample(s) of {path}: {CALIBRATION_RECOMMENDED}-500 "
                "representative samples are recommended (int8 ranges follow the data's spread)")
        if note not in notes:
            notes.append(note)
    return samples


def class_counts(outputs: dict[str, TensorInfo]) -> dict[str, int]:
    """Outputs declared as class scores (``[samples, classes]``, float): key -> classes."""
    return {k: i.shape[1] for k, i in outputs.items()
            if _dtype_name(i.dtype).startswith(("float", "bfloat"))
            and i.shape is not None and len(i.shape) == 2
            and i.shape[1] is not None and i.shape[1] >= 2}


def check_files(inputs_file: str | None, labels: str | None, calibration_file: str | None,
                signatures: dict[str, tuple[dict[str, TensorInfo], dict[str, TensorInfo]]]
                ) -> None:
    """Every file the user gave, against every signature's declared inputs and outputs: run
    before the model is loaded where the model declares them in its proto (a SavedModel), so
    a wrong file costs seconds, not a pipeline."""
    known = {k for inputs, _ in signatures.values() for k in inputs}
    for inputs, outputs in signatures.values():
        if inputs_file:
            feeds = read_samples(inputs_file, inputs, known=known)
            if labels:
                read_labels(labels, _sample_count(inputs_file, feeds), class_counts(outputs))
        if calibration_file:
            read_samples(calibration_file, inputs, "calibration file", known)


def read_labels(path: str, samples: int | None, classes: dict[str, int]) -> np.ndarray:
    """True classes (``.npy``, one integer per sample), each within every class-score
    output's class count (``classes``: output key -> count)."""
    labels = _np_load(path, "labels file", ".npy")
    if not isinstance(labels, np.ndarray):
        raise TfoptError(f"{path}: an .npz archive; labels are one .npy array of class "
                         "indices (np.save(path, labels))")
    labels = labels.reshape(-1)
    if labels.dtype.kind not in "iu":
        raise TfoptError(f"{path}: labels must be integers (class indices), not {labels.dtype}")
    if samples is not None and len(labels) != samples:
        raise TfoptError(f"{path}: {len(labels)} labels for {samples} samples in the "
                         "inputs file")
    if labels.size and labels.min() < 0:
        raise TfoptError(f"{path}: label {labels.min()} is negative; labels are class indices")
    for key, count in classes.items():
        if labels.size and labels.max() >= count:
            raise TfoptError(f"{path}: label {labels.max()} for output {key!r}, which scores "
                             f"{count} classes (labels are 0..{count - 1})")
    return labels.astype(np.int64)
