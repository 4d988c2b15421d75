"""Kernel time per op type, as executed: a loop inside a called function is profiled by its
kernels, not as one PartitionedCall."""

import tfopt
from tfopt.measure.profile import profile_graph
from tfopt.model.formats import load_model
from tfopt.verify.inputs import make_inputs
from tfopt.zoo.builders import build_recurrent


def test_lowered_loops_in_a_tf2_savedmodel_profile_by_their_kernels(tmp_path):
    src, out = str(tmp_path / "gru"), str(tmp_path / "opt")
    build_recurrent("stacked_gru", src)
    tfopt.optimize(src, out, time=False, verify=False)
    sig = load_model(out, ["serving_default"]).signatures["serving_default"]
    assert any(n.op.endswith("PartitionedCall") for n in sig.graph_def.node)  # as written
    profile = profile_graph(sig, make_inputs(sig.inputs, 1, {}), runs=2, warmup=1)
    ops = {op for op, _, _ in profile.by_op}
    assert not any(op.endswith("PartitionedCall") for op in ops), profile.table()
    assert any("MatMul" in op for op in ops) and profile.total_ms > 0
