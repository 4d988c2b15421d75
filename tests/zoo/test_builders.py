"""The zoo command, and (marked slow) the full-size model-zoo optimizations."""

import subprocess
import sys

import numpy as np
import pytest

import tfopt
from tests.conftest import run_saved_model
from tfopt.model.formats import load_model
from tfopt.report.analyze import analyze
from tfopt.verify.inputs import make_inputs


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tfopt.cli.main", *args], capture_output=True,
                          text=True, timeout=300)


def test_zoo_list_and_build(tmp_path):
    listing = _cli("zoo", "list")
    assert listing.returncode == 0
    for name in ("ssd_inception", "toy_tf1", "toy_tf2", "mobilenet_v2", "resnet50"):
        assert name in listing.stdout
    out = tmp_path / "toy"
    built = _cli("zoo", "build", "toy_tf2", str(out))
    assert built.returncode == 0 and (out / "saved_model.pb").exists()
    again = _cli("zoo", "build", "toy_tf2", str(out))
    assert again.returncode != 0 and "already exists" in again.stderr
    unknown = _cli("zoo", "build", "nope", str(tmp_path / "x"))
    assert unknown.returncode != 0 and "unknown zoo model" in unknown.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet50", "inception_v3", "efficientnet_b0", "densenet121"])
def test_keras_application(name, tmp_path):
    from tfopt.zoo.builders import build

    src, dst = str(tmp_path / name), str(tmp_path / f"{name}_opt")
    build(name, src)
    report = tfopt.optimize(src, dst)
    assert report.verified and report.worst.rel < 1e-4
    after = analyze(dst, facts=False).op_counts
    assert not any(op.startswith("FusedBatchNorm") for op in after) and "Rsqrt" not in after
    assert after.get("_FusedConv2D", 0) > 10
    feeds = make_inputs(load_model(src).signatures["serving_default"].inputs, 2)
    np.testing.assert_allclose(run_saved_model(dst, feeds)["output_0"],
                               run_saved_model(src, feeds)["output_0"], rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_full_size_detector(tmp_path):
    from tfopt.zoo.detector import build_ssd_inception

    src, dst = str(tmp_path / "ssd"), str(tmp_path / "ssd_opt")
    build_ssd_inception(src)
    report = tfopt.optimize(src, dst, input_shapes=["inputs=1,300,300,3"])
    assert report.verified
    after = analyze(dst, facts=False).op_counts
    assert after["_FusedConv2D"] == 89 and "FusedBatchNorm" not in after
    assert "Identity" not in after or after["Identity"] <= 4
