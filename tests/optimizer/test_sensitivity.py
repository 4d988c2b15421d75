"""int8 that misses its budget: the most sensitive op goes back to float32 first, until the
budget holds; or a refusal when it cannot."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tests.passes.helpers import context, graph_of, rand
from tests.passes.test_quantize_int8 import X, _cnn
from tfopt.model.signature import SignatureGraph, TensorInfo
from tfopt.optimizer.calibrate import calibrate
from tfopt.optimizer.sensitivity import fit_budget
from tfopt.passes.quantize_int8 import Range
from tfopt.verify.compare import Policy
from tfopt.verify.runners import run_graph_def


def _setup():
    gd = graph_of(_cnn)
    sig = SignatureGraph("s", gd, {"x": TensorInfo("x:0", tf.float32, (None, 8, 8, 3))},
                         {"out": TensorInfo("out:0", tf.float32, (None, 128))})
    ranges = calibrate(sig, {"x": np.abs(rand(32, 8, 8, 3, seed=9))})
    # one op made sensitive on purpose: its output range cut to a tenth (it saturates)
    conv2 = [n.name for n in gd.node if n.op == "Conv2D"][1]
    relu6 = next(n.name for n in gd.node if n.op == "Relu6")
    ranges[f"{relu6}:0"] = Range(0.0, ranges[f"{relu6}:0"].high / 10)
    ctx = dataclasses.replace(context(["out"], ["x:0"]), precision="int8",
                              settings={"quantize_int8": {"ranges": ranges}})
    feeds = {"x": X["x:0"]}
    return sig, gd, ctx, feeds, run_graph_def(sig, feeds), conv2


@pytest.mark.int8_cpu
def test_the_sensitive_op_goes_back_to_float32_first():
    sig, gd, ctx, feeds, reference, conv2 = _setup()
    fit = fit_budget(sig, gd, ctx, feeds, reference, Policy.for_precision("int8", 3e-2))
    assert fit.ok and fit.keep_float == (conv2,)
    assert all(c.rel <= 3e-2 for c in fit.checks)


@pytest.mark.int8_cpu
def test_a_budget_nothing_meets_is_reported_not_met():
    sig, gd, ctx, feeds, reference, _ = _setup()
    fit = fit_budget(sig, gd, ctx, feeds, reference, Policy.for_precision("int8", 1e-7))
    assert not fit.ok and fit.keep_float  # it tried, within its bound, and says it failed
