"""The pipeline: fixed point, records, and the checked re-run it owns."""

import pytest

from tfopt.errors import VerificationError
from tfopt.graph.kernels import KernelSupport
from tfopt.model.formats import load_model
from tfopt.optimizer.candidates import pass_context as _context
from tfopt.passes.pipeline import run_checked
from tfopt.passes.registry import select
from tfopt.verify.inputs import make_inputs
from tfopt.verify.references import References, SignatureVerifier
from tfopt.verify.runners import run_graph_def


def test_checked_rerun_blames_freezing_first(toy_tf1):
    """If the untouched frozen graph already differs (here: a reference it cannot match),
    no pass is blamed: the re-run stops with the baseline's reason."""
    model = load_model(toy_tf1)
    sig = model.signatures["serving_default"]
    feeds = make_inputs(sig.inputs, 2)
    wrong = {k: v + 1.0 for k, v in run_graph_def(sig, feeds).items()}
    refs = References(model, {sig.key: feeds}, {sig.key: wrong})
    verifier = SignatureVerifier(sig, feeds, refs, 1e-4, ["eigen"])
    with pytest.raises(VerificationError, match="before any pass, already differs"):
        run_checked(sig.graph_def, _context(sig, KernelSupport()), select(None, None),
                    verifier)


def test_checked_rerun_keeps_good_passes(toy_tf1):
    model = load_model(toy_tf1)
    sig = model.signatures["serving_default"]
    feeds = make_inputs(sig.inputs, 2)
    refs = References(model, {sig.key: feeds}, {sig.key: run_graph_def(sig, feeds)})
    verifier = SignatureVerifier(sig, feeds, refs, 1e-4, ["onednn"])
    result = run_checked(sig.graph_def, _context(sig, KernelSupport()),
                         {"debug_ops", "identity", "strip_unused"}, verifier)
    assert result.converged and not any(r.skipped for r in result.records)
    assert sum(r.applied for r in result.records) >= 3
