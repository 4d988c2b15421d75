"""End to end: optimize locally built models, reload with plain TF, compare outputs."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import tfopt
from tests.conftest import run_saved_model
from tfopt.graph.walk import op_counts
from tfopt.model.formats import load_model
from tfopt.model.saved_model import read_saved_model_proto
from tfopt.verify.inputs import make_inputs


def _ops(path: str) -> dict[str, int]:
    proto = read_saved_model_proto(path)
    gd = proto.meta_graphs[0].graph_def
    counts = op_counts(gd)
    for fn in gd.library.function:
        for n in fn.node_def:
            counts[n.op] = counts.get(n.op, 0) + 1
    return counts


def test_tf1_model(toy_tf1, tmp_path):
    out = str(tmp_path / "opt")
    report = tfopt.optimize(toy_tf1, out)
    assert report.verified and report.worst.rel < 1e-4
    ops = _ops(out)
    for gone in ("SaveV2", "RestoreV2", "CheckNumerics", "Assert", "FusedBatchNormV3",
                 "Switch", "Merge", "PlaceholderWithDefault", "VariableV2", "Assign"):
        assert gone not in ops, gone
    assert ops.get("Identity", 0) <= 2  # only the signature outputs' own nodes
    assert not any(op.startswith(("ResourceApply", "Apply")) for op in ops)
    assert "VariableV2" in _ops(toy_tf1) and "ApplyMomentum" in _ops(toy_tf1)
    feeds = {"images": np.random.default_rng(1).standard_normal((3, 16, 16, 3)).astype("f")}
    got = run_saved_model(out, feeds)
    ref = load_model(toy_tf1).reference("serving_default", feeds)
    assert set(got) == {"logits", "probabilities"}
    np.testing.assert_allclose(got["logits"], ref["logits"], rtol=1e-4, atol=1e-5)
    # the signature is restated exactly
    sig = tf.saved_model.load(out).signatures["serving_default"]
    spec = sig.structured_input_signature[1]["images"]
    assert spec.shape.as_list() == [None, 16, 16, 3] and spec.dtype == tf.float32
    names = [r.name for s in report.signatures.values() for r in s.passes if r.changed]
    assert {"training_nodes", "debug_ops", "identity", "fold_batch_norm"} <= set(names)
    # what each stage cost: seconds and peak memory (this process, largest child)
    from tfopt.optimizer.stages import PREPARE, WRITE

    stages = report.to_dict()["stages"]
    assert [c["stage"] for c in stages] == [s.__name__ for s in (*PREPARE, *WRITE)]
    assert all(c["seconds"] >= 0 and c["peak_mb"] > 100 for c in stages)
    assert stages[-1]["children_peak_mb"] > 100  # the verification children ran TensorFlow
    assert sum(c["seconds"] for c in stages) <= report.seconds * 1.05 + 0.5


def test_tf2_control_flow_and_embeddings(toy_tf2, tmp_path):
    out = str(tmp_path / "opt")
    report = tfopt.optimize(toy_tf2, out, int_range=(0, 50))
    assert report.verified
    ops = _ops(out)
    assert "ResourceGather" not in ops and "ReadVariableOp" not in ops
    # tf.cond and tf.while_loop are stored lowered (Switch/Merge frames), as TF's freezing
    # stores them, so Grappler optimizes the bodies with the graph around them.
    assert not {"While", "StatelessWhile", "If", "StatelessIf"} & set(ops)
    assert {"Enter", "Exit", "Switch", "Merge", "LoopCond"} <= set(ops)
    rng = np.random.default_rng(5)
    feeds = {"ids": rng.integers(0, 50, (4, 6)).astype(np.int32),
             "weight": rng.standard_normal(4).astype(np.float32)}
    ref = run_saved_model(toy_tf2, feeds)
    got = run_saved_model(out, feeds)
    for key in ref:
        np.testing.assert_allclose(got[key], ref[key], rtol=1e-5)


def test_keras_resnet_style_is_folded_and_fused(keras_resnet, tmp_path):
    out = str(tmp_path / "opt")
    report = tfopt.optimize(keras_resnet, out, batch_size=2)
    assert report.verified and report.worst.rel < 1e-4
    ops = _ops(out)
    assert not any(op.startswith("FusedBatchNorm") for op in ops)
    assert "Rsqrt" not in ops
    assert ops.get("_FusedConv2D", 0) >= 3
    # Portable by default: oneDNN-only fusions (depthwise, residual Add) are not emitted.
    assert "_FusedDepthwiseConv2dNative" not in ops and ops["DepthwiseConv2dNative"] == 2
    generic = str(tmp_path / "generic")
    tfopt.optimize(keras_resnet, generic, target="generic")
    assert not any(op.startswith("_Fused") for op in _ops(generic))


def test_keras_file_and_pb_format(keras_file, tmp_path):
    out = str(tmp_path / "model.pb")
    report = tfopt.optimize(keras_file, out, format="pb")
    assert report.verified and os.path.isfile(out)
    again = str(tmp_path / "again")
    report2 = tfopt.optimize(out, again)  # a frozen .pb loads back, inputs inferred
    assert report2.verified
    assert any("inferred" in n for n in report2.notes)


def test_keras_application_mobilenet(mobilenet_v2, tmp_path):
    out = str(tmp_path / "opt")
    report = tfopt.optimize(mobilenet_v2, out)
    assert report.verified and report.worst.rel < 1e-4
    ops = _ops(out)
    assert "Rsqrt" not in ops and ops.get("_FusedConv2D", 0) >= 25
    # the 10 projection convs before a residual Add are left for the runtime to fuse
    assert ops.get("Conv2D") == 10 and ops.get("AddV2") == 10
    feeds = make_inputs(load_model(mobilenet_v2).signatures["serving_default"].inputs)
    np.testing.assert_allclose(run_saved_model(out, feeds)["output_0"],
                               run_saved_model(mobilenet_v2, feeds)["output_0"], rtol=1e-4,
                               atol=1e-6)


def test_pass_selection(toy_tf1, tmp_path):
    out = str(tmp_path / "opt")
    report = tfopt.optimize(toy_tf1, out, skip=["fuse_kernels", "fold_batch_norm"])
    ops = _ops(out)
    assert "FusedBatchNormV3" in ops and "_FusedConv2D" not in ops
    names = [r.name for r in report.signatures["serving_default"].passes]
    assert "fuse_kernels" not in names
    with pytest.raises(tfopt.TfoptError, match="unknown pass"):
        tfopt.optimize(toy_tf1, str(tmp_path / "x"), passes=["nope"])


def test_checked_pipeline_switches_off_a_pass_that_breaks_outputs(toy_tf1):
    """The checker sees real outputs; a pass whose result it rejects is undone and named."""
    from tfopt.graph.kernels import KernelSupport
    from tfopt.optimizer.candidates import pass_context as _context
    from tfopt.passes.pipeline import run_passes
    from tfopt.passes.registry import select
    from tfopt.verify.runners import run_graph_def

    model = load_model(toy_tf1)
    sig = model.signatures["serving_default"]
    feeds = make_inputs(sig.inputs, 2)
    ref = run_graph_def(sig, feeds)
    wrong = {k: v + 1.0 for k, v in ref.items()}  # a reference only an unchanged graph... fails

    def checker(candidate):
        got = run_graph_def(sig.with_graph(candidate), feeds)
        ok = all(np.allclose(got[k], ref[k], rtol=1e-4, atol=1e-6) for k in ref)
        has_bn = any(n.op == "FusedBatchNormV3" for n in candidate.node)
        return None if ok and has_bn else "outputs or batch norms changed"

    del wrong
    ctx = _context(sig, KernelSupport())
    result = run_passes(sig.graph_def, ctx, select(None, None), checker)
    graph, records = result.graph_def, result.records
    assert result.converged and result.iterations >= 2
    skipped = {r.name: r.skipped for r in records if r.skipped}
    assert "fold_batch_norm" in skipped
    assert any(n.op == "FusedBatchNormV3" for n in graph.node)
    got = run_graph_def(sig.with_graph(graph), feeds)
    np.testing.assert_allclose(got["logits"], ref["logits"], rtol=1e-4, atol=1e-6)


def test_input_never_modified(toy_tf1, tmp_path):
    before = {f: os.path.getmtime(os.path.join(dp, f)) for dp, _, fs in os.walk(toy_tf1) for f in fs}
    tfopt.optimize(toy_tf1, str(tmp_path / "o"))
    after = {f: os.path.getmtime(os.path.join(dp, f)) for dp, _, fs in os.walk(toy_tf1) for f in fs}
    assert before == after


# --- bad input: one line, non-zero exit, nothing written ---------------------------------------

def _cli(*args, cwd=None, onednn: str | None = None, timeout: int = 300):
    """Run ``tfopt`` in a child: (exit code, stdout, stderr); ``onednn`` pins
    TF_ENABLE_ONEDNN_OPTS for it."""
    env = None if onednn is None else dict(os.environ, TF_ENABLE_ONEDNN_OPTS=onednn)
    proc = subprocess.run([sys.executable, "-m", "tfopt.cli.main", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize("case", ["missing", "not_saved_model", "corrupt_pb", "truncated_sm",
                                  "unknown_op"])
def test_bad_input_errors(case, tmp_path):
    src = tmp_path / "src"
    if case == "not_saved_model":
        src.mkdir()
        (src / "readme.txt").write_text("hi")
    elif case == "corrupt_pb":
        src = tmp_path / "m.pb"
        src.write_bytes(b"\x00\xffthis is not a graph" * 10)
    elif case == "truncated_sm":
        src.mkdir()
        (src / "saved_model.pb").write_bytes(b"\x0a\x05abc")
    elif case == "unknown_op":
        src = tmp_path / "m.pbtxt"
        src.write_text('node { name: "x" op: "NoSuchOpAnywhere" }\n')
    out = tmp_path / "out"
    code, _, err = _cli("optimize", str(src), str(out))
    assert code != 0
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tfopt: error:"), err
    assert "Traceback" not in err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tfopt-")]


def test_unknown_signature_and_existing_output(toy_tf1, tmp_path):
    code, _, err = _cli("optimize", toy_tf1, str(tmp_path / "o"), "--signature", "nope")
    assert code != 0 and "unknown signature 'nope'" in err and "serving_default" in err
    existing = tmp_path / "exists"
    existing.mkdir()
    code, _, err = _cli("optimize", toy_tf1, str(existing))
    assert code != 0 and "already exists" in err
    code, out, err = _cli("optimize", toy_tf1, str(existing), "--overwrite", "-q")
    assert code == 0 and "verified" in out
    assert (existing / "saved_model.pb").exists()


def test_unknown_graph_def_node(keras_file, tmp_path):
    pb = str(tmp_path / "m.pb")
    tfopt.optimize(keras_file, pb, format="pb", verify=False)
    code, _, err = _cli("optimize", pb, str(tmp_path / "o"), "--outputs", "not_a_node")
    assert code != 0 and "unknown node 'not_a_node'" in err


def test_passes_command_lists_registry():
    code, out, _ = _cli("passes")
    assert code == 0
    from tfopt.passes.registry import NAMES

    for name in NAMES:
        assert name in out


def test_all_signatures_and_string_inputs(two_signatures, tmp_path):
    out = str(tmp_path / "opt")
    report = tfopt.optimize(two_signatures, out)
    assert set(report.signatures) == {"serving_default", "lengths"} and report.verified
    loaded = tf.saved_model.load(out)
    assert set(loaded.signatures.keys()) == {"serving_default", "lengths"}
    n = loaded.signatures["lengths"](words=tf.constant(["ab", "abcd"]))["n"].numpy()
    np.testing.assert_array_equal(n, [4, 8])
    y = loaded.signatures["serving_default"](x=tf.ones([1, 3]))["y"].numpy()
    np.testing.assert_array_equal(y, [[12, 15, 18, 21]])
    only = tfopt.optimize(two_signatures, str(tmp_path / "one"), signatures="lengths")
    assert set(only.signatures) == {"lengths"}
    assert set(tf.saved_model.load(str(tmp_path / "one")).signatures.keys()) == {"lengths"}
    # Real string inputs come as a bytes array; an object array would need pickle to load.
    np.savez(tmp_path / "words.npz", words=np.array([b"\xff\xd8 jpeg", b"ab"], dtype=bytes))
    given = tfopt.optimize(two_signatures, str(tmp_path / "given"), signatures="lengths",
                           inputs_file=str(tmp_path / "words.npz"))
    assert given.verified
    np.savez(tmp_path / "objects.npz", words=np.array([b"ab", b"c"], dtype=object))
    with pytest.raises(tfopt.TfoptError, match="object array.*dtype=bytes"):
        tfopt.optimize(two_signatures, str(tmp_path / "bad"), signatures="lengths",
                       inputs_file=str(tmp_path / "objects.npz"))


def test_lookup_tables_are_frozen(tf2_table, tf1_table, tmp_path):
    out2 = str(tmp_path / "t2")
    assert tfopt.optimize(tf2_table, out2).verified
    got = run_saved_model(out2, {"words": np.array([b"fox", b"the", b"zebra"], dtype=object)})
    np.testing.assert_array_equal(got["vectors"], [[6, 7], [2, 3], [0, 1]])
    out1 = str(tmp_path / "t1")
    assert tfopt.optimize(tf1_table, out1).verified
    got = run_saved_model(out1, {"words": np.array([b"b", b"a", b"c"], dtype=object)})
    np.testing.assert_array_equal(got["ids"], [14, 10, -2])
    # both optimized tables live in one process without colliding
    again = run_saved_model(out2, {"words": np.array([b"quick"], dtype=object)})
    np.testing.assert_array_equal(again["vectors"], [[4, 5]])


def test_signature_restated_for_serving(toy_tf1, tmp_path):
    """saved_model_cli (the tool TF Serving users check exports with) sees the same signature."""
    out = str(tmp_path / "opt")
    tfopt.optimize(toy_tf1, out)

    def show(path):
        proc = subprocess.run(["saved_model_cli", "show", "--dir", path, "--tag_set", "serve",
                               "--signature_def", "serving_default"], capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return [line for line in proc.stdout.splitlines() if "name:" not in line]

    assert show(out) == show(toy_tf1)  # keys, dtypes, shapes, method name (node names may differ)
    np.save(tmp_path / "images.npy", np.zeros((1, 16, 16, 3), np.float32))
    run = subprocess.run(["saved_model_cli", "run", "--dir", out, "--tag_set", "serve",
                          "--signature_def", "serving_default", "--inputs",
                          f"images={tmp_path / 'images.npy'}"], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0 and "probabilities" in run.stdout


def test_output_may_not_touch_the_input(toy_tf1, tmp_path):
    import shutil

    src = tmp_path / "models" / "m"
    shutil.copytree(toy_tf1, src)
    for dst, words in ((src, "overwrite the input"), (src / "opt", "inside the input"),
                       (tmp_path / "models", "overwrite the input")):
        with pytest.raises(tfopt.TfoptError, match=words):
            tfopt.optimize(str(src), str(dst), overwrite=True)
    assert sorted(os.listdir(src)) == sorted(os.listdir(toy_tf1))


def test_keras_transformer_two_inputs_named_outputs(keras_transformer, tmp_path):
    import keras

    out = str(tmp_path / "opt")
    report = tfopt.optimize(keras_transformer, out, int_range=(0, 200), batch_size=2)
    assert report.verified
    sig = tf.saved_model.load(out).signatures["serving_default"]
    assert set(sig.structured_input_signature[1]) == {"tokens", "numeric"}
    rng = np.random.default_rng(2)
    feeds = {"tokens": rng.integers(0, 200, (3, 16)).astype(np.int32),
             "numeric": rng.standard_normal((3, 4)).astype(np.float32)}
    got = run_saved_model(out, feeds)
    ref = keras.models.load_model(keras_transformer)(feeds)
    assert set(got) == {"cls", "reg"}
    for key in got:
        np.testing.assert_allclose(got[key], np.asarray(ref[key]), rtol=1e-4, atol=1e-5)


def test_zero_tolerance_blames_freezing_not_passes(toy_tf1, tmp_path):
    """Float rounding differs once weights are constants: no pass is to blame for that."""
    out = tmp_path / "z"
    try:
        report = tfopt.optimize(toy_tf1, str(out), tolerance=0.0)
    except tfopt.VerificationError as err:
        assert "before any pass" in str(err)
        assert not out.exists()
    else:  # a runtime where freezing is bit-exact: then the model must be exact too
        assert report.worst.rel == 0.0


def test_inputs_file_and_input_shape_errors(toy_tf1, small_ssd, tmp_path):
    data = tmp_path / "inputs.npz"
    np.savez(data, images=np.random.default_rng(0).standard_normal((5, 16, 16, 3)))
    report = tfopt.optimize(toy_tf1, str(tmp_path / "a"), inputs_file=str(data))
    assert report.verified
    np.savez(tmp_path / "wrong.npz", other=np.zeros(3))
    with pytest.raises(tfopt.TfoptError, match="missing input"):
        tfopt.optimize(toy_tf1, str(tmp_path / "b"), inputs_file=str(tmp_path / "wrong.npz"))
    with pytest.raises(tfopt.TfoptError, match="does not fit"):
        tfopt.optimize(small_ssd, str(tmp_path / "d"), input_shapes={"inputs": (1, 300, 300, 4)})
    with pytest.raises(tfopt.TfoptError, match="unknown input.*images"):
        tfopt.optimize(small_ssd, str(tmp_path / "e"), input_shapes={"images": (1, 2)})
    assert not any((tmp_path / n).exists() for n in "bde")
    # An image input of unknown size [?, ?, ?, 3] gets 224x224, and the report says so.
    report = tfopt.optimize(small_ssd, str(tmp_path / "c"), verify=True, skip=["fuse_kernels"])
    assert report.verified
    assert any("inputs uint8[1, 224, 224, 3]" in n and "spatial dims set to 224" in n
               for n in report.notes)


@pytest.mark.parametrize("written_under", ["0", "1"])
def test_output_runs_under_both_runtimes(keras_resnet, tmp_path, written_under):
    """Optimized with oneDNN on or off, the default output loads and answers alike with oneDNN
    on and off (each run in a child with TF_ENABLE_ONEDNN_OPTS pinned); tfopt.json says so."""
    import json

    out = tmp_path / "opt"
    code, stdout, stderr = _cli("optimize", keras_resnet, str(out), "--json",
                                str(tmp_path / "r.json"), onednn=written_under, timeout=600)
    assert code == 0, stderr[-1500:]
    assert "verified (oneDNN on and oneDNN off)" in stdout
    meta = json.loads((out / "tfopt.json").read_text())
    assert meta["target"] == "portable" and meta["runtimes"] == ["onednn", "eigen"]
    assert meta["requires"] is None and meta["written_on"]["onednn"] == (written_under == "1")
    report = json.loads((tmp_path / "r.json").read_text())
    checks = report["signatures"]["serving_default"]["checks"]
    assert sorted({c["runtime"] for c in checks}) == ["eigen", "onednn"]
    assert all(c["ok"] and c["rel"] < 1e-4 for c in checks)


def test_native_target_records_what_it_needs(keras_resnet, tmp_path):
    """--target native may use fusions only this runtime has; tfopt.json names the runtime
    it then needs, and the other runtime really cannot run it."""
    import json

    from tfopt.runtime import current_runtime
    from tfopt.verify import isolate

    out = str(tmp_path / "native")
    report = tfopt.optimize(keras_resnet, out, target="native", batch_size=2)
    meta = json.loads(open(os.path.join(out, "tfopt.json")).read())
    assert meta["target"] == "native" and current_runtime() in meta["runtimes"]
    assert meta["fused_kernels"] == report.fused_kernels
    others = [r for r in ("onednn", "eigen") if r not in meta["runtimes"]]
    if others:  # a fusion only this runtime has (oneDNN: residual Add, depthwise)
        assert meta["runtimes"] == [current_runtime()] and meta["requires"].startswith(
            "TF_ENABLE_ONEDNN_OPTS=")
        feeds = make_inputs(load_model(out).signatures["serving_default"].inputs)
        with pytest.raises(isolate.ChildFailed):
            isolate.run_saved_model(out, "serving_default", feeds, runtime=others[0])
    else:
        assert meta["requires"] is None


def test_each_runtime_is_compared_with_the_original_under_the_same_runtime(toy_tf1):
    """A model whose own answers differ between runtimes is compared, under the other runtime,
    with itself run there (in a child, only when needed), and the difference is noted."""
    from tfopt.runtime import RUNTIMES, current_runtime
    from tfopt.verify.references import References

    model = load_model(toy_tf1)
    sig = model.signatures["serving_default"]
    feeds = {"serving_default": make_inputs(sig.inputs, 2)}
    local = {"serving_default": model.reference("serving_default", feeds["serving_default"])}
    other = next(r for r in RUNTIMES if r != current_runtime())

    same = References(model, feeds, local)
    assert all(c.ok for c in same.check("serving_default", local["serving_default"], 1e-4,
                                        other))
    assert not same._under  # agreeing outputs start no child

    there = References(model, feeds, local).original_under(other)["serving_default"]
    # This process's original answering otherwise (as a saturated softmax can): the output
    # under the other runtime is checked against the original run there, and that is said.
    shifted = {"serving_default": {k: v + 1.0 for k, v in local["serving_default"].items()}}
    refs = References(model, feeds, shifted)
    checks = refs.check("serving_default", there, 1e-4, other)
    assert checks and all(c.ok for c in checks)
    assert refs.notes and "the original itself answers differently" in refs.notes[0]
    # ... but an output that matches neither still fails.
    wrong = {k: v - 5.0 for k, v in there.items()}
    assert not all(c.ok for c in refs.check("serving_default", wrong, 1e-4, other))


def test_keras_grouped_conv_with_batch_norm_runs_on_both_runtimes(tmp_path):
    """ResNeXt/RegNet-style Conv2D(groups=4) + BatchNorm + ReLU: Keras keeps the grouped conv
    in an XLA function; inlined and with its batch norm folded into a bias, it must not become
    a Conv2D + BiasAdd + Relu that Grappler fuses into a kernel the Eigen runtime lacks."""
    import keras

    from tfopt.zoo.builders import randomize_batch_norm

    keras.utils.set_random_seed(0)
    inp = keras.Input((12, 12, 8))
    x = keras.layers.Conv2D(16, 3, padding="same", groups=4, use_bias=False)(inp)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    model = keras.Model(inp, keras.layers.GlobalAveragePooling2D()(x))
    randomize_batch_norm(model)
    src, out = str(tmp_path / "grouped"), str(tmp_path / "opt")
    model.export(src, format="tf_saved_model", verbose=False)
    report = tfopt.optimize(src, out)
    assert report.verified and report.worst.rel < 1e-4
    assert not [n for n in report.notes if "skipped" in n]
    ops = _ops(out)
    assert ops["Conv2D"] == 1 and ops["AddV2"] == 1 and ops["Relu"] == 1
    assert "Rsqrt" not in ops and "_FusedConv2D" not in ops and "BiasAdd" not in ops


def test_model_that_only_runs_with_onednn(tmp_path):
    """An NCHW MaxPool runs only with oneDNN; as the signature's output node it keeps its
    layout (nchw_layout leaves output nodes as they are). Portable output is impossible and
    the error says why; --target native verifies and records oneDNN only."""
    import json

    rng = np.random.default_rng(0)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 3, 8, 8], name="images")
        w = tf.constant(rng.standard_normal((3, 3, 3, 4)).astype(np.float32))
        h = tf.nn.relu(tf.nn.conv2d(x, w, 1, "SAME", data_format="NCHW"))
        tf.nn.max_pool2d(h, 2, 2, "VALID", data_format="NCHW", name="logits")
    pb = str(tmp_path / "nchw.pb")
    tf.io.write_graph(graph.as_graph_def(), str(tmp_path), "nchw.pb", as_text=False)
    # oneDNN pinned on: the same on any x86 CPU
    code, _, err = _cli("optimize", pb, str(tmp_path / "portable"), onednn="1", timeout=600)
    assert code == 2 and not (tmp_path / "portable").exists()
    assert "the original model itself fails under oneDNN off" in err
    assert "Traceback" not in err and "--target native" in err
    code, out, err = _cli("optimize", pb, str(tmp_path / "native"), "--target", "native",
                          onednn="1", timeout=600)
    assert code == 0, err[-1500:]
    assert "verified (oneDNN on):" in out
    meta = json.loads((tmp_path / "native" / "tfopt.json").read_text())
    assert meta["runtimes"] == ["onednn"] and meta["requires"].startswith("TF_ENABLE_ONEDNN_OPTS=1")


def test_model_that_writes_variables_when_called(tmp_path):
    """A serving function that updates state (as a batch norm in training mode does) cannot be
    frozen; the error says so instead of TensorFlow's 'expected resource'."""
    class Stateful(tf.Module):
        def __init__(self):
            super().__init__()
            self.mean = tf.Variable(tf.zeros([3]))

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def serve(self, x):
            self.mean.assign(0.9 * self.mean + 0.1 * tf.reduce_mean(x, 0))
            return {"y": x - tf.reduce_mean(x, 0)}

    module = Stateful()
    src = str(tmp_path / "stateful")
    tf.saved_model.save(module, src, signatures={"serving_default": module.serve})
    with pytest.raises(tfopt.TfoptError, match=r"writes variables \(1 assignments, e\.g\. "
                                               r".*AssignVariableOp\).*training=False"):
        tfopt.optimize(src, str(tmp_path / "opt"))
    assert not (tmp_path / "opt").exists()


def test_model_that_calls_python_is_refused_in_one_line(tmp_path):
    """A tf.py_function stores only a key into the exporting process: the model runs nowhere
    else. The error names the op, not 'the original fails on the generated inputs'."""
    class Py(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x):
            return {"y": tf.py_function(lambda a: a * 2, [x], tf.float32)}

    module = Py()
    src = str(tmp_path / "py")
    tf.saved_model.save(module, src, signatures={"serving_default": module.serve})
    code, _, err = _cli("optimize", src, str(tmp_path / "opt"))
    assert code == 2 and "Traceback" not in err
    assert "unsupported op EagerPyFunc" in err and "tf.py_function" in err
    assert not (tmp_path / "opt").exists()


def test_tf_serving_extras_are_kept(tmp_path):
    """assets.extra/ (TF Serving's warm-up requests) is not part of the graph: the output
    keeps the original's, unless --signature dropped signatures its requests may name."""
    class Small(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x):
            return {"y": tf.nn.relu(x) * 2.0}

    module = Small()
    src = tmp_path / "m"
    tf.saved_model.save(module, str(src), signatures={"serving_default": module.serve,
                                                      "other": module.serve})
    (src / "assets.extra").mkdir()
    (src / "assets.extra" / "tf_serving_warmup_requests").write_bytes(b"\x00requests")
    report = tfopt.optimize(str(src), str(tmp_path / "out"))
    kept = tmp_path / "out" / "assets.extra" / "tf_serving_warmup_requests"
    assert kept.read_bytes() == b"\x00requests"
    assert any(n.startswith("assets.extra/ copied") for n in report.notes)
    narrowed = tfopt.optimize(str(src), str(tmp_path / "one"), signatures=["serving_default"])
    assert not (tmp_path / "one" / "assets.extra").exists()
    assert any(n.startswith("assets.extra/ not copied") for n in narrowed.notes)


def test_a_vacuous_verification_is_called_one(tmp_path):
    """An output the same on every input (a saturated head of random weights) proves nothing
    about the computation: the summary and its check say so; other outputs are not blamed."""
    class Module(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(np.arange(4, dtype=np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x):
            return {"flat": tf.nn.relu(x * 0.0 - 1.0) + self.w, "live": x * self.w}

    src = str(tmp_path / "m")
    module = Module()
    tf.saved_model.save(module, src, signatures={"serving_default": module.serve})
    for batch in (1, 3):  # one sample: inputs varied to tell; several: across the batch
        report = tfopt.optimize(src, str(tmp_path / f"out{batch}"),
                                input_shapes={"x": (batch, 4)})
        assert report.verified
        checks = {c.key: c for s in report.signatures.values() for c in s.checks}
        assert checks["flat"].constant and not checks["live"].constant
        assert "VACUOUS for flat:" in str(report) and "live" not in str(report).split("VACUOUS")[1]
        assert "vacuous" in checks["flat"].describe()
