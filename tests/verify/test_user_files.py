"""What the user hands in beside the model: every bad file and number is refused at once, in
one line naming the file, the input and what was expected (never an internal error, never a
"verified" on data that means nothing)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tfopt.errors import TfoptError
from tfopt.model.signature import TensorInfo
from tfopt.options import OptimizeOptions, normalise_shapes, parse_shapes
from tfopt.verify.compare import compare_output
from tfopt.verify.inputs import make_inputs
from tfopt.verify.user_files import read_calibration, read_labels, read_samples

IMAGE = {"x": TensorInfo("x:0", tf.float32, (None, 8, 8, 3))}
IDS = {"ids": TensorInfo("ids:0", tf.int32, (None, 5))}
GOOD = np.zeros((2, 8, 8, 3), np.float32)


def _npz(tmp_path, name="f.npz", **arrays) -> str:
    path = str(tmp_path / name)
    np.savez(path, **arrays)
    return path


BAD_SAMPLES = [  # (specs, arrays, what the one-line refusal must say)
    (IMAGE, {"x": np.array([["a"] * 3] * 2)}, "holds strings"),
    (IMAGE, {"x": GOOD, "y": GOOD}, "key(s) y name no input"),
    (IMAGE, {"z": GOOD}, "missing input(s) x"),
    (IMAGE, {"x": np.zeros((2, 9, 9, 3), np.float32)}, "dimension 1 must be 8, not 9"),
    (IMAGE, {"x": np.zeros((2, 8, 8), np.float32)}, "(rank 4)"),
    (IMAGE, {"x": np.full((2, 8, 8, 3), np.inf, np.float32)}, "NaN or Inf"),
    (IMAGE, {"x": np.where(GOOD == 0, np.nan, GOOD)}, "NaN or Inf"),
    (IMAGE, {"x": np.zeros((0, 8, 8, 3), np.float32)}, "holds no samples"),
    (IMAGE, {"x": np.zeros((2, 8, 8, 3), np.complex64)}, "complex values"),
    (IDS, {"ids": np.full((2, 5), 2.5)}, "fractional values"),
    (IDS, {"ids": np.full((2, 5), 2**40)}, "outside int32's range"),
    ({**IMAGE, **IDS}, {"x": GOOD, "ids": np.zeros((3, 5), np.int32)},
     "different numbers of samples"),
]


@pytest.mark.parametrize(("specs", "arrays", "says"), BAD_SAMPLES)
def test_bad_samples_are_refused_in_one_line(tmp_path, specs, arrays, says):
    path = _npz(tmp_path, **arrays)
    with pytest.raises(TfoptError) as err:
        read_samples(path, specs)
    assert says in str(err.value) and path in str(err.value) and "\n" not in str(err.value)


def test_a_npy_given_as_npz_and_good_samples(tmp_path):
    path = str(tmp_path / "x.npz")
    with open(path, "wb") as f:
        np.save(f, GOOD)
    with pytest.raises(TfoptError, match="a single .npy array, not an .npz archive"):
        read_samples(path, IMAGE)
    ids = read_samples(_npz(tmp_path, ids=np.arange(10.0).reshape(2, 5)), IDS)["ids"]
    assert ids.dtype == np.int32  # whole floats for ids are fine, cast exactly


def test_labels_are_class_indices_within_the_class_count(tmp_path):
    def labels(values, name="y.npy") -> str:
        path = str(tmp_path / name)
        np.save(path, np.asarray(values))
        return path

    classes = {"probs": 3}
    assert read_labels(labels([0, 2, 1]), 3, classes).tolist() == [0, 2, 1]
    for values, says in (([0, 7, 1], "label 7 for output 'probs', which scores 3 classes"),
                         ([0, -1, 1], "negative"), ([0, 1], "2 labels for 3 samples"),
                         ([0.0, 1.0, 2.0], "must be integers")):
        with pytest.raises(TfoptError, match=says.replace("(", r"\(")):
            read_labels(labels(values), 3, classes)
    archive = str(tmp_path / "y.npz")
    np.savez(archive, y=np.zeros(3, np.int64))
    with pytest.raises(TfoptError, match="not a readable .npy file|an .npz archive"):
        read_labels(archive, 3, classes)


def test_calibration_needs_samples_and_says_when_they_are_few(tmp_path):
    notes: list[str] = []
    read_calibration(_npz(tmp_path, x=GOOD), IMAGE, {"x"}, notes)
    assert notes and "calibrated on 2 sample(s)" in notes[0] and "recommended" in notes[0]
    with pytest.raises(TfoptError, match="holds no samples"):
        read_calibration(_npz(tmp_path, "e.npz", x=GOOD[:0]), IMAGE, {"x"}, [])
    with pytest.raises(TfoptError, match="NaN or Inf"):
        read_calibration(_npz(tmp_path, "n.npz", x=GOOD * np.nan), IMAGE, {"x"}, [])


@pytest.mark.parametrize("tolerance", [float("inf"), float("nan"), 1e30, 0.5, -1.0])
def test_tolerances_that_cannot_judge_anything_are_refused(tmp_path, tolerance):
    with pytest.raises(TfoptError, match="--tolerance"):
        OptimizeOptions("in", str(tmp_path / "out"), tolerance=tolerance).checked()


def test_input_shapes_must_be_positive_and_given_once():
    with pytest.raises(TfoptError, match="must be positive"):
        parse_shapes(["x=0,8"])
    with pytest.raises(TfoptError, match="names 'x' twice"):
        parse_shapes(["x=1,8", "x=2,8"])
    with pytest.raises(TfoptError, match="must be positive"):
        normalise_shapes({"x": (-1, 8)})


def test_a_huge_declared_dimension_is_refused_not_allocated():
    specs = {"x": TensorInfo("x:0", tf.float32, (None, 2**40, 3))}
    with pytest.raises(TfoptError, match="would take .* GiB; give a smaller shape"):
        make_inputs(specs)


def test_matching_infinities_compare_equal_and_differing_ones_do_not():
    ref = np.array([[1.0, np.inf, -np.inf]], np.float32)
    assert compare_output("y", ref, ref.copy(), 1e-4).ok
    check = compare_output("y", ref, np.array([[1.0, -np.inf, -np.inf]], np.float32), 1e-4)
    assert not check.ok and "Infs differ" in check.detail


def test_the_cli_refuses_bad_files_at_once_with_exit_2(tmp_path):
    """End to end, as a user meets it: one line, exit 2, before any pass runs."""

    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x):
            return {"y": tf.nn.softmax(x * 2.0)}

    model = str(tmp_path / "m")
    module = Module()
    tf.saved_model.save(module, model, signatures={"serving_default": module.serve})
    key, shape = "x", [2, 4]
    nan = _npz(tmp_path, "nan.npz", **{key: np.full(shape, np.nan, np.float32)})
    extra = _npz(tmp_path, "extra.npz", **{key: np.zeros(shape, np.float32), "oops": GOOD})
    cases = [(["--inputs-file", nan], "NaN or Inf"), (["--inputs-file", extra], "oops"),
             (["--tolerance", "nan"], "--tolerance"),
             (["--input-shape", f"{key}=0,{shape[1]}"], "must be positive")]
    env = {**os.environ, "TFOPT_TIME": "off"}
    for flags, says in cases:
        began = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "tfopt.cli.main", "optimize", model,
                               str(tmp_path / "out"), *flags], capture_output=True,
                              text=True, env=env, timeout=300)
        lines = [ln for ln in done.stderr.splitlines() if ln.startswith("tfopt:")]
        assert done.returncode == 2 and len(lines) == 1 and says in lines[0], done.stderr
        assert "internal error" not in done.stderr
        assert time.perf_counter() - began < 60  # refused after loading, not after the passes
        assert not os.path.exists(tmp_path / "out")
