"""Models converted for LiteRT and OpenVINO: verified in their own runtime (a child process),
written with the runtime recorded, callable through tfopt.load, read by analyze and
benchmark; what a runtime cannot hold is refused in one line; --format auto keeps the fastest
verified form."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import tfopt
from tfopt.errors import TfoptError, VerificationError


@pytest.fixture(scope="module")
def small_cnn(tmp_path_factory) -> str:
    import keras

    from tfopt.zoo.builders import randomize_batch_norm

    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same")(inp)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU(6.0)(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(4, activation="softmax")(x))
    randomize_batch_norm(model)
    path = str(tmp_path_factory.mktemp("rt") / "cnn")
    model.export(path, format="tf_saved_model", verbose=False)
    return path


X = np.random.default_rng(0).standard_normal((3, 16, 16, 3)).astype(np.float32)


@pytest.mark.parametrize(("fmt", "file", "op"), [("litert", "model.tflite", "CONV_2D"),
                                                 ("openvino", "1/model.xml", "Convolution")])
def test_a_runtime_format_is_verified_in_its_runtime_and_callable(small_cnn, tmp_path, fmt,
                                                                   file, op):
    out = str(tmp_path / fmt)
    report = tfopt.optimize(small_cnn, out, format=fmt, time=False)
    assert report.verified and report.output["format"] == fmt
    assert os.path.isfile(os.path.join(out, file))
    assert f"verified in {report.output['runtime']}" in str(report)
    # the file holds the converter's ops: the summary names its source, not TF node counts
    assert f"{fmt} model converted from {report.output['source']}" in report.summary()
    assert " nodes, " not in report.summary()
    assert report.output["threads"] == (os.cpu_count() or 1)  # set explicitly, recorded
    with open(os.path.join(out, "tfopt.json")) as f:
        meta = json.load(f)
    assert meta["format"] == fmt and meta["runtime_model"]["precision"] == "f32"
    assert meta["signatures"] == ["serving_default"]
    # every source tried is accounted for
    notes = " | ".join(report.notes)
    assert f"{fmt} from tfopt's graph: " in notes and f"{fmt} from the original: " in notes
    assert [r["candidate"] for r in report.candidates] == [f"{fmt} from tfopt's graph",
                                                           f"{fmt} from the original"]
    # used without reading tfopt's code: tfopt.load answers like the original
    want = tfopt.load(small_cnn)(image=X)["output_0"]
    got = tfopt.load(out)(image=X)["output_0"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    from tfopt.report import analyze as az

    assert az.analyze(out).op_counts.get(op, 0) >= 1


def test_what_a_runtime_cannot_hold_is_refused_in_one_line(tf2_table, tmp_path):
    """Strings and a lookup table: LiteRT's built-ins cannot hold them; nothing is written."""
    out = tmp_path / "x"
    with pytest.raises(VerificationError) as err:
        tfopt.optimize(tf2_table, str(out), format="litert", time=False)
    text = str(err.value)
    assert "no verified litert model" in text and "not converted" in text and "\n" not in text
    assert not out.exists()


def test_runtime_options_are_checked_at_once(small_cnn, tmp_path, monkeypatch):
    from tfopt.runtimes import litert

    with pytest.raises(TfoptError, match="--precision bf16 applies to SavedModels"):
        tfopt.optimize(small_cnn, str(tmp_path / "a"), format="litert", precision="bf16",
                       force_precision=True)
    with pytest.raises(TfoptError, match="applies to --format saved_model or openvino"):
        tfopt.optimize(small_cnn, str(tmp_path / "e"), format="auto", precision="bf16", time=True,
                       force_precision=True)
    with pytest.raises(TfoptError, match="--format openvino writes float32 or bf16"):
        tfopt.optimize(small_cnn, str(tmp_path / "f"), format="openvino", precision="int8")
    with pytest.raises(TfoptError, match="needs verification and timing"):
        tfopt.optimize(small_cnn, str(tmp_path / "b"), format="auto", time=False)
    with pytest.raises(TfoptError, match="--runtimes: unknown tflite"):
        tfopt.optimize(small_cnn, str(tmp_path / "c"), format="auto", runtimes=["tflite"])
    monkeypatch.setattr(litert, "available", lambda: None)
    with pytest.raises(TfoptError, match=r"needs LiteRT \(pip install 'tfopt\[litert\]'\)"):
        tfopt.optimize(small_cnn, str(tmp_path / "d"), format="litert")


def test_format_auto_writes_the_fastest_verified_form(small_cnn, tmp_path):
    out = str(tmp_path / "auto")
    # (two candidates beside the SavedModel would time three pairs: one keeps the suite quick)
    report = tfopt.optimize(small_cnn, out, format="auto", time=True,
                            runtimes=["tf", "litert"])
    assert report.verified
    notes = " | ".join(report.notes)
    assert "litert from the original: verified" in notes and "faster" in notes
    assert "openvino from" not in notes  # not asked for
    assert "format auto: the SavedModel" in notes
    assert notes.count("(written)") == 1
    written = report.output.get("format", "saved_model")
    assert written in ("saved_model", "litert", "openvino")
    chosen = [n for n in report.notes if n.endswith("(written)") or "(written)" in n][0]
    assert (written == "saved_model") == chosen.startswith("format auto: the SavedModel")
    np.testing.assert_allclose(tfopt.load(out)(image=X)["output_0"],
                               tfopt.load(small_cnn)(image=X)["output_0"], rtol=1e-4, atol=1e-6)
    # the table of every candidate: verified, worst difference, speed with interval, size
    rows = {r["candidate"]: r for r in report.candidates}
    assert set(rows) == {"SavedModel (fp32)", "litert from the original"}
    assert all(r["verified"] and r["speedup"] > 0 and r["bytes"] > 0 for r in rows.values()), rows
    assert [r["written"] for r in rows.values()].count(True) == 1
    # each size is its own form's, taken before the written one took the output's place
    from tfopt.model.paths import size_on_disk

    assert rows["SavedModel (fp32)"]["bytes"] != rows["litert from the original"]["bytes"]
    assert 0 < next(r for r in rows.values() if r["written"])["bytes"] <= size_on_disk(out)
    assert rows["SavedModel (fp32)"]["written"] == (written == "saved_model")
    table = report.table()
    assert "<- written" in table and "litert from the original" in table and "x [" in table
    with open(os.path.join(out, "tfopt.json")) as f:
        assert len(json.load(f)["candidates"]) == 2


@pytest.fixture(scope="module")
def debug_model(tmp_path_factory) -> str:
    """A TF2 module that checks and prints its activations: debug ops LiteRT cannot hold."""
    import tensorflow as tf

    class Module(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(np.random.default_rng(0).standard_normal((6, 4))
                                 .astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32, name="x")])
        def serve(self, x):
            h = tf.debugging.check_numerics(tf.matmul(x, self.w), "h")
            tf.print("largest activation", tf.reduce_max(h))
            return {"y": tf.nn.tanh(h)}

    module = Module()
    path = str(tmp_path_factory.mktemp("rt") / "debug")
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    return path


def test_format_auto_converts_tfopt_graph_where_the_original_cannot_be(debug_model, tmp_path):
    """The original needs Select TF ops for its debug ops; tfopt's graph, without them, is
    converted in its place, verified and timed like any candidate."""
    out = str(tmp_path / "auto")
    report = tfopt.optimize(debug_model, out, format="auto", time=True,
                            runtimes=["tf", "litert"])
    rows = {r["candidate"]: r for r in report.candidates}
    assert "not LiteRT built-ins" in rows["litert from the original"]["why_not"], rows
    assert rows["litert from tfopt's graph"]["verified"], rows
    assert rows["litert from tfopt's graph"]["speedup"] > 0
    x = np.random.default_rng(1).standard_normal((2, 6)).astype(np.float32)
    np.testing.assert_allclose(tfopt.load(out)(x=x)["y"], tfopt.load(debug_model)(x=x)["y"],
                               rtol=1e-4, atol=1e-6)


def test_a_runtime_model_slower_than_the_original_is_not_written(small_cnn, tmp_path,
                                                                  monkeypatch):
    """OpenVINO ran the zoo's recurrent models at 0.46-0.65x the original: as for a
    SavedModel, a slower model is a defect, refused with its timing (timing patched here)."""
    from tfopt.measure.stats import Ratio
    from tfopt.optimizer import speed

    def slow(original, candidates, key, feeds, say=None):
        return [speed.SpeedCheck(key, Ratio(0.5, 0.45, 0.55, 0.95), 1, "oneDNN on", 100.0,
                                 50.0) for _ in candidates]

    monkeypatch.setattr(speed, "time_all_against", slow)
    out = tmp_path / "slow"
    with pytest.raises(VerificationError, match="slower than the original .*nothing written"):
        tfopt.optimize(small_cnn, str(out), format="openvino", time=True)
    assert not out.exists()


def test_openvino_runs_bf16_as_a_candidate_judged_by_the_bf16_budget(digits_cnn, tmp_path):
    """OpenVINO's bf16 is set explicitly beside the IR (plugin_config.json, read by tfopt.load
    and OpenVINO Model Server alike), judged on real digits by the bf16 budget, and recorded;
    tfopt's graph stays float32 for the converter."""
    out = str(tmp_path / "ov_bf16")
    samples = os.path.join(digits_cnn, "test.npz")
    # forced: on a CPU without bf16 instructions OpenVINO computes it in float32 instead
    report = tfopt.optimize(digits_cnn, out, format="openvino", precision="bf16",
                            force_precision=True, inputs_file=samples, time=False)
    assert report.verified and report.precision == "bf16"
    assert report.tolerance == pytest.approx(2e-2)
    notes = " | ".join(report.notes)
    assert "openvino bf16 from tfopt's graph: verified" in notes
    assert "openvino from" not in notes  # float32 was not asked for
    with open(os.path.join(out, "plugin_config.json")) as f:
        assert json.load(f) == {"INFERENCE_PRECISION_HINT": "bf16"}
    with open(os.path.join(out, "tfopt.json")) as f:
        meta = json.load(f)
    assert meta["runtime_model"]["precision"] == "bf16" and meta["precision"] == "bf16"
    assert "CPU bf16" in report.output["runtime"]
    x = dict(np.load(samples))
    (key,) = x
    want = tfopt.load(digits_cnn)(**x)["output_0"]
    got = tfopt.load(out)(**x)["output_0"]
    assert np.mean(want.argmax(-1) == got.argmax(-1)) > 0.97
    assert float(np.sqrt(np.mean((got - want) ** 2)) / np.abs(want).max()) <= 2e-2


def test_runtime_precisions(monkeypatch):
    """Which precisions a runtime's candidates run in: OpenVINO's bf16 beside float32 only
    under --precision auto on a CPU with bf16 instructions; LiteRT float32 always."""
    from tfopt import runtime
    from tfopt.options import OptimizeOptions

    def options(fmt, precision):
        return OptimizeOptions(src="m", dst="o", format=fmt, precision=precision)

    monkeypatch.setattr(runtime, "bf16_hardware", lambda: ["AVX512_BF16"])
    assert options("openvino", "auto").runtime_precisions("openvino") == ["f32", "bf16"]
    assert options("auto", "auto").runtime_precisions("openvino") == ["f32", "bf16"]
    assert options("auto", "auto").runtime_precisions("litert") == ["f32"]
    assert options("openvino", "bf16").runtime_precisions("openvino") == ["bf16"]
    assert options("openvino", "fp32").runtime_precisions("openvino") == ["f32"]
    assert options("openvino", "auto").graph_precision == "fp32"
    assert options("auto", "auto").graph_precision == "auto"
    monkeypatch.setattr(runtime, "bf16_hardware", lambda: [])
    assert options("openvino", "auto").runtime_precisions("openvino") == ["f32"]
