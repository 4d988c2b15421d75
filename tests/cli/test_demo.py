import numpy as np

from tests.conftest import run_saved_model
from tfopt.report import analyze as az


def test_detector_runs_with_sane_outputs(small_ssd):
    img = np.random.default_rng(0).integers(0, 256, (2, 240, 320, 3), dtype=np.uint8)
    out = run_saved_model(small_ssd, {"inputs": img})
    assert out["detection_boxes"].shape == (2, 100, 4)
    assert out["detection_scores"].shape == (2, 100)
    assert out["detection_classes"].shape == (2, 100)
    assert out["num_detections"].shape == (2,)
    assert (out["detection_boxes"] >= 0).all() and (out["detection_boxes"] <= 1).all()
    assert (out["detection_scores"] >= 0).all() and (out["detection_scores"] <= 1).all()
    valid = out["detection_classes"][out["detection_scores"] > 0]
    assert ((valid >= 1) & (valid <= 90)).all()


def test_detector_op_table(small_ssd):
    counts = az.analyze(small_ssd, facts=False).op_counts
    assert counts["FusedBatchNorm"] == 77 and counts["Relu6"] == 77
    assert counts["Conv2D"] == 77 + 12  # units + box/class predictors
    assert counts["AvgPool"] == 7 and counts["MaxPool"] == 5
    assert counts["ConcatV2"] >= 10 and counts["DepthwiseConv2dNative"] == 1
    assert counts["Identity"] > 300 and counts["VariableV2"] > 300
    assert counts["SaveV2"] == 1 and counts["RestoreV2"] == 1


def test_demo_end_to_end_via_cli(tmp_path):
    """The README's first command, with tiny iteration counts."""
    import subprocess
    import sys

    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "tfopt.cli.main", "demo", "--out", str(out),
                           "--num-iter", "2", "--rounds", "1"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout
    assert "FusedBatchNorm" in text and "_FusedConv2D" in text
    assert "Throughput at batch 1: " in text and "worst relative output difference" in text
    assert "total kernel time" in text  # the profile, before and after
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "FusedBatchNorm" in page
    assert "Where the time goes" in page and "oneDNN o" in page
    assert "<b>Throughput: " in page and "Throughput at batch 1" not in page  # said once
    for png in ("op_types.png", "throughput.png", "kernel_time.png"):
        assert (out / png).stat().st_size > 1000
    # The bf16 column where the CPU runs bf16 with oneDNN, else one line saying why not.
    from tfopt.optimizer.precision import why_not_bf16

    if why_not_bf16() is None:
        assert "optimized bf16" in text and "bf16: " in text and "MB on disk" in text
        assert (out / "ssd_inception_v2_optimized_bf16" / "saved_model.pb").exists()
    else:
        assert "no bf16 column" in text
    again = subprocess.run([sys.executable, "-m", "tfopt.cli.main", "demo", "--out", str(out)],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode != 0 and "not empty" in again.stderr


def test_explanation_never_contradicts_the_headline():
    """Sign-correct wording, and no kernel-time claim the profile does not support."""
    from tfopt.cli.demo import explain
    from tfopt.measure.profile import OpProfile
    from tfopt.measure.stats import Ratio

    faster, same = Ratio(1.2, 1.1, 1.3, 0.95), Ratio(1.0, 0.9, 1.1, 0.95)
    before = OpProfile(100.0, [("_MklNativeFusedConv2D", 90.0, 50), ("AddV2", 10.0, 20)])
    more = OpProfile(104.0, [("_MklNativeFusedConv2D", 97.0, 50), ("AddV2", 7.0, 10)])
    less = OpProfile(80.0, [("_MklNativeFusedConv2D", 75.0, 50), ("AddV2", 5.0, 10)])
    text = explain(faster, before, more, (1325, 374))
    assert "less kernel time" not in text and "about the same" in text and "1325 -> 374" in text
    assert "-" not in text.split("per run")[0]  # no negative "saving"
    text = explain(faster, before, less)
    assert "20.0 ms less kernel time" in text and "_MklNativeFusedConv2D (15.0 ms less)" in text
    assert "No difference can be claimed" in explain(same, before, less)
    assert "summed over threads" in explain(same, before, less)
