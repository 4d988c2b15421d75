"""--precision int8 on a model trained here on real data (scikit-learn's digits): calibrated
on training images, judged on the held-out split; refused cleanly where it cannot work."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import tfopt
from tfopt.errors import TfoptError, VerificationError


def _files(model: str) -> dict[str, str]:
    return {"inputs_file": os.path.join(model, "test.npz"),
            "labels": os.path.join(model, "labels.npy"),
            "calibration_file": os.path.join(model, "calibration.npz")}


@pytest.mark.int8_cpu
def test_int8_keeps_accuracy_on_real_data(digits_cnn, tmp_path):
    out = str(tmp_path / "int8")
    files = _files(digits_cnn)
    report = tfopt.optimize(digits_cnn, out, precision="int8", force_precision=True, **files)
    assert report.verified and report.precision == "int8"
    assert sorted(report.runtimes) == ["eigen", "onednn"]
    checks = [c for s in report.signatures.values() for c in s.checks]
    assert all(c.metric == "rms" and c.rel <= 5e-2 and c.top1 >= 0.99 for c in checks)
    assert all(abs(c.accuracy[0] - c.accuracy[1]) <= 0.01 for c in checks)  # the bar
    # what changed is accounted for: the convolutions in int8; the two small dense layers
    # (64 multiply-adds per output, float on both sides) stay float32, with the reason
    record = next(r for s in report.signatures.values() for r in s.passes
                  if r.name == "quantize_int8")
    assert record.ops_delta["_FusedQuantizedConv2D"] == 2
    assert record.ops_delta["_FusedQuantizedDepthwiseConv2D"] == 1
    assert [n for n in record.notes if "kept" in n] == [
        "2 MatMul (isolated and light: converting in and out costs more than int8 saves) "
        "kept in float32"]
    # plain TensorFlow runs it and it answers like the original on the held-out images
    x, y = np.load(files["inputs_file"])["image"], np.load(files["labels"])
    probs = tf.saved_model.load(out).signatures["serving_default"](image=tf.constant(x))
    assert np.mean(next(iter(probs.values())).numpy().argmax(1) == y) >= checks[0].accuracy[0] - 0.01
    with open(os.path.join(out, "tfopt.json")) as f:
        assert json.load(f)["precision"] == "int8"
    assert "calibrated" in " ".join(report.notes)


def test_int8_needs_calibration_samples(digits_cnn, tmp_path):
    out = str(tmp_path / "x")
    with pytest.raises(TfoptError, match="needs --calibration-file"):
        tfopt.optimize(digits_cnn, out, precision="int8", force_precision=True)
    with pytest.raises(TfoptError, match="no such calibration file"):
        tfopt.optimize(digits_cnn, out, precision="int8", force_precision=True,
                       calibration_file=str(tmp_path / "missing.npz"))
    with pytest.raises(TfoptError, match="unknown calibration method"):
        tfopt.optimize(digits_cnn, out, precision="int8", force_precision=True,
                       calibration_file=_files(digits_cnn)["calibration_file"],
                       calibration_method="kl")
    assert not os.path.exists(out)


def test_int8_refused_without_int8_instructions(digits_cnn, tmp_path, monkeypatch):
    from tfopt import runtime

    monkeypatch.setattr(runtime, "int8_hardware", lambda: [])
    with pytest.raises(TfoptError, match="no int8 dot-product instructions"):
        tfopt.optimize(digits_cnn, str(tmp_path / "x"), precision="int8",
                       calibration_file=_files(digits_cnn)["calibration_file"])


def test_int8_that_misses_its_budget_is_not_written(digits_cnn, tmp_path):
    """Never a float32 model under the int8 name: a budget int8 cannot meet, or nothing that
    could be quantized, is refused with the reason and nothing is written."""
    out = str(tmp_path / "tight")
    with pytest.raises(VerificationError, match="misses the accuracy budget"):
        tfopt.optimize(digits_cnn, out, precision="int8", force_precision=True,
                       tolerance=1e-5, **_files(digits_cnn))
    with pytest.raises(TfoptError, match="nothing in signature 'serve' could run in int8"):
        tfopt.optimize(digits_cnn, out, precision="int8", force_precision=True,
                       skip=["quantize_int8"], **_files(digits_cnn))
    assert not os.path.exists(out)


def test_max_accuracy_drop_needs_labels(digits_cnn, tmp_path):
    with pytest.raises(TfoptError, match="needs --labels"):
        tfopt.optimize(digits_cnn, str(tmp_path / "x"), precision="int8", force_precision=True,
                       calibration_file=_files(digits_cnn)["calibration_file"],
                       max_accuracy_drop=0.01)


def test_auto_considers_int8_when_given_calibration_samples(digits_cnn, tmp_path):
    """auto with --calibration-file: int8 is a candidate beside bf16, kept only if it meets
    its budget and is measurably faster than float32; the notes say which and why."""
    from tfopt.optimizer.precision import why_not_int8  # noqa: F401 (the rule under test)

    report = tfopt.optimize(digits_cnn, str(tmp_path / "auto"), precision="auto",
                            **_files(digits_cnn))
    notes = " | ".join(n for n in report.notes if n.startswith("precision auto:"))
    assert report.verified
    if report.precision == "int8":
        assert "precision auto: int8, " in notes and "faster than float32" in notes
        assert report.tolerance == pytest.approx(5e-2)
    else:
        assert "no int8 (" in notes
    # every candidate is accounted for, a runner-up that was also faster included
    for precision in ("bf16", "int8"):
        assert f"precision auto: {precision}, " in notes or f"no {precision} (" in notes


def test_auto_says_why_not_int8_without_int8_instructions(digits_cnn, tmp_path, monkeypatch):
    """The fallback on CPUs without VNNI/AMX (patched here: flags cannot be removed): auto
    keeps a non-int8 result and names the missing instructions."""
    from tfopt import runtime
    from tfopt.optimizer import precision

    monkeypatch.setattr(runtime, "int8_hardware", lambda: [])
    monkeypatch.setattr(precision, "int8_hardware", lambda: [])
    monkeypatch.setattr(precision, "bf16_hardware", lambda: [])
    report = tfopt.optimize(digits_cnn, str(tmp_path / "auto"), precision="auto",
                            calibration_file=_files(digits_cnn)["calibration_file"])
    assert report.verified and report.precision == "fp32"
    notes = " | ".join(report.notes)
    assert "precision auto: no int8 (this CPU has no int8 dot-product instructions" in notes
    assert "precision auto: no bf16 (this CPU has no bfloat16 instructions" in notes
