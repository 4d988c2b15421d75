import numpy as np

from tests.conftest import run_saved_model
from tfopt import analyze as az


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


def test_demo_end_to_end(tmp_path, monkeypatch):
    from tfopt import demo

    monkeypatch.setattr(demo, "INPUT_SHAPE", "inputs=1,300,300,3")
    lines = []
    result = demo.run_demo(str(tmp_path / "demo"), num_iter=2, num_warmup=1, rounds=1,
                           say=lines.append)
    text = "\n".join(lines)
    assert "FusedBatchNorm" in text and "Speedup at batch 1" in text
    assert result.worst_rel < 1e-4 and result.speedup > 0
    page = open(result.report_html).read()
    assert "data:image/png;base64," in page and "FusedBatchNorm" in page
    assert (tmp_path / "demo" / "op_types.png").stat().st_size > 1000
    assert (tmp_path / "demo" / "throughput.png").stat().st_size > 1000
    assert page.count("data:image/png;base64,") == 2
