import json
from html.parser import HTMLParser

import matplotlib.image as mpimg
import tensorflow as tf

from tfopt.report import analyze as az


def _pb(tmp_path):
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name="x")
        y = tf.nn.conv2d(x, tf.ones([3, 3, 3, 4]), 1, "SAME")
        y = tf.nn.relu6(tf.identity(tf.identity(y)))
        tf.identity(tf.nn.relu6(y), name="out")
    path = str(tmp_path / "m.pb")
    tf.io.write_graph(g.as_graph_def(), str(tmp_path), "m.pb", as_text=False)
    return path


def test_counts_shares_facts(tmp_path):
    a = az.analyze(_pb(tmp_path))
    assert a.op_counts == {"Placeholder": 1, "Const": 1, "Conv2D": 1, "Identity": 3, "Relu6": 2}
    shares = dict((op, s) for op, _, s in a.shares())
    assert abs(shares["Identity"] - 3 / 8) < 1e-9
    assert a.parameters == 3 * 3 * 3 * 4
    assert a.flops_per_sample == 2 * 8 * 8 * 4 * 3 * 3 * 3
    assert "x" in a.inputs and "out" in a.outputs


def test_compare_chart_html_json(toy_tf1, tmp_path):
    import tfopt

    opt = str(tmp_path / "opt")
    tfopt.optimize(toy_tf1, opt)
    before, after = az.analyze(toy_tf1), az.analyze(opt)
    rows = {op: (b, c) for op, b, c, _ in az.compare_rows(before, after)}
    assert rows["FusedBatchNormV3"] == (3, 0)
    assert rows["_FusedConv2D"][0] == 0 and rows["_FusedConv2D"][1] >= 1
    text = az.compare_report(before, after)
    assert "disappeared" in text and "FusedBatchNormV3 3 -> 0" in text
    png, page, js = tmp_path / "c.png", tmp_path / "r.html", tmp_path / "a.json"
    pair = [("before", before), ("after", after)]
    az.write_chart(str(png), pair)
    img = mpimg.imread(str(png))
    assert img.shape[0] > 100 and img.shape[1] == 800  # horizontal bars, 8 inches at 100 dpi
    az.write_html(str(page), "t", pair)
    seen = []

    class P(HTMLParser):
        def handle_starttag(self, tag, attrs):
            seen.append((tag, dict(attrs)))

    P().feed(page.read_text())
    imgs = [a for t, a in seen if t == "img"]
    assert imgs and imgs[0]["src"].startswith("data:image/png;base64,")
    assert sum(1 for t, _ in seen if t == "table") >= 3
    text = page.read_text()
    assert " MB<" in text and "runs with oneDNN on and off" in text  # human numbers, runtime
    az.write_json(str(js), pair)
    assert json.loads(js.read_text())["after"]["op_counts"]["_FusedConv2D"] >= 1
    # the chart draws what appeared (fused kernels) as well as what went, and keeps variable
    # bookkeeping and constants out of the compute panel
    drawn = az.chart_ops(pair)
    assert "_FusedConv2D" in drawn and "FusedBatchNormV3" in drawn
    assert not {"VariableV2", "Const", "Identity", "SaveV2", "Assign"} & set(drawn)
    # the page opens with prose (what changed), then tables; <pre> wraps instead of overflowing
    assert text.index("class='summary'") < text.index("<table>")
    assert "Appeared: _FusedConv2D" in text and "white-space:pre-wrap" in text


def test_op_categories():
    assert az.op_category("DisableCopyOnRead") == "bookkeeping"
    assert az.op_category("VarIsInitializedOp") == "bookkeeping"
    assert az.op_category("SaveV2") == "bookkeeping" and az.op_category("Assign") == "bookkeeping"
    assert az.op_category("Const") == "plumbing" and az.op_category("Identity") == "plumbing"
    assert az.op_category("_FusedConv2D") == "compute" and az.op_category("Mul") == "compute"
    assert az.op_category("Shape") == "shape" and az.op_category("StridedSlice") == "shape"
    assert az.op_category("Enter") == "control flow" and az.op_category("While") == "control flow"


def test_tf2_counts_include_functions(toy_tf2):
    a = az.analyze(toy_tf2)
    assert a.function_counts and a.op_counts.get("ResourceGather", 0) >= 1
    assert "per function" in az.text_report(a, show_functions=True)


def test_per_signature_counts(two_signatures, toy_tf1):
    lengths = az.analyze(two_signatures, signature="lengths").op_counts
    assert lengths.get("StringLength") == 1 and "MatMul" not in lengths
    predict = az.analyze(two_signatures, signature="serving_default").op_counts
    assert predict.get("MatMul") == 1 and "StringLength" not in predict
    whole = az.analyze(toy_tf1, facts=False).op_counts
    served = az.analyze(toy_tf1, signature="serving_default", facts=False).op_counts
    assert whole.get("SaveV2") == 1 and "SaveV2" not in served
    assert served["FusedBatchNormV3"] == 3


def test_cli_errors_are_one_line(tmp_path):
    import subprocess
    import sys

    cases = [["analyze", str(tmp_path / "missing")],
             ["analyze", str(tmp_path), "--chart", str(tmp_path / "no" / "c.png")],
             ["benchmark", str(tmp_path / "missing")],
             ["benchmark", str(tmp_path), "--num-iter", "0"],
             ["optimize", str(tmp_path / "missing"), str(tmp_path / "o"), "--passes", "nope"]]
    for args in cases:
        proc = subprocess.run([sys.executable, "-m", "tfopt.cli.main", *args], capture_output=True,
                              text=True, timeout=120)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode != 0, args
        assert len(lines) == 1 and "Traceback" not in proc.stderr, (args, proc.stderr)


def test_flops_of_a_bert_like_encoder_match_a_hand_count(bert_export):
    """d=32, 4 heads x 8, FFN 64, T=64 (the default for an unknown sequence length):
    Q/K/V 3 x 2*T*d*d, scores and context 2 x 2*T*T*d, output 2*T*d*d, FFN 2 x 2*T*d*64,
    pooler 2*d*d. Einsum and BatchMatMul count, not only MatMul and convolutions."""
    t, d = 64, 32
    want = 3 * 2 * t * d * d + 2 * 2 * t * t * d + 2 * t * d * d + 2 * 2 * t * d * 64 + 2 * d * d
    a = az.analyze(bert_export)
    assert a.flops_per_sample == want == 1_574_912
    assert a.flops_unknown_ops == 0
    assert any("FLOPs counted at" in n and "[1, 64]" in n for n in a.notes)


def test_a_model_frozen_with_its_weights_in_variables_is_counted_alike(bert_export,
                                                                      monkeypatch):
    """Past the threshold (lowered here) freezing leaves the weights in their variables and
    the graph holds stubs: parameters, constant bytes and FLOPs are counted from shapes, the
    same as from inline weights."""
    inline = az.analyze(bert_export)
    monkeypatch.setenv("TFOPT_MAX_GRAPH_MB", "0.25")  # past 11 KiB of variables: frozen in place
    lifted = az.analyze(bert_export)
    assert inline.parameters > 0 and lifted.parameters == inline.parameters
    # (freezing in Python keeps a few scalar constants the frozen function prunes)
    assert abs(lifted.constant_bytes - inline.constant_bytes) < 0.001 * inline.constant_bytes
    assert lifted.flops_per_sample == inline.flops_per_sample
