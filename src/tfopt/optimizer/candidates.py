"""Every choice ``optimize`` makes is a set of candidates handed to one driver.

A :class:`Recipe` says how a form of the model is built: which passes, in which precision,
with an XLA cluster or not, the passes checked application by application for signatures
that failed verification, and which runtime format it is written in, converted from which
source. A :class:`Candidate` is what was built from a recipe and what became of it: verified
or why not, its speed against its set's baseline with an interval, kept or dropped.
:class:`Driver` builds, writes, verifies and times candidates; each choice hands it a set and
keeps one:

    =================  ===========================================  ===========================
    choice             candidates                                   kept
    =================  ===========================================  ===========================
    precision auto     float32, bf16, int8 (optimizer/precision.py)  fastest verified, gain > 1
    xla auto           without, with the compiled cluster (xla.py)   the cluster if gain > 1
    answers            as built, its passes checked (blame)          the checked one
    speed              passes up to a point (bisection), without     without the slow pass
                       the slow pass (optimizer/speed.py); without
                       a pass whose gain depends on the batch        it, if measurably faster
                       (loop_projection), at --batch-size            at that batch
    format             SavedModel, LiteRT/OpenVINO from the          fastest verified
                       original or tfopt's graph (convert.py)
    =================  ===========================================  ===========================

A set's candidates are timed in one interleaved run against its baseline (one set of
processes and blocks serves them all). The report lists every candidate tried
(:meth:`Candidate.row`), the verdict of each and why it was dropped.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tfopt.graph.kernels import KernelSupport
from tfopt.graph.library import function_nodes
from tfopt.graph.walk import op_counts
from tfopt.graph.weights import graph_bytes, variables_from
from tfopt.model.identical import mark_identical
from tfopt.model.paths import size_on_disk
from tfopt.model.saver import write
from tfopt.model.signature import LoadedModel, SignatureGraph
from tfopt.optimizer.report import SignatureReport
from tfopt.optimizer.speed import SpeedCheck
from tfopt.passes.base import PassContext
from tfopt.passes.pipeline import Log, run_checked, run_passes
from tfopt.verify import written
from tfopt.verify.compare import Policy
from tfopt.verify.references import References, SignatureVerifier

Feeds = dict[str, dict[str, np.ndarray]]


@dataclass
class Int8Plan:
    """What quantize_int8 is given for one signature: the calibrated ranges, the graph they
    were observed in (the one the pass will see), and ops kept in float32 for accuracy."""

    ranges: dict
    calibrated: object  # graph_pb2.GraphDef; dropped once the budget is fitted
    keep_float: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Recipe:
    """How a candidate is built."""

    enabled: frozenset[str]              # the passes that run
    precision: str = "fp32"              # what the graph (or the runtime) computes in
    xla: str = "off"                     # "on"/"auto": the XLA cluster outlined
    checked: frozenset[str] = frozenset()  # signatures whose passes run verified one by one
    fmt: str = "saved_model"             # "saved_model", "pb", or a runtime format
    source: str = "tfopt's graph"        # what a runtime's converter read


@dataclass(eq=False)  # one candidate is one object: compared by identity
class Candidate:
    """One form of the model, tried for one choice, and its verdict."""

    name: str
    choice: str                           # "precision", "xla", "answers", "speed", "format"
    recipe: Recipe
    policy: Policy                        # how its answers are judged
    sigs: dict[str, SignatureGraph] = field(default_factory=dict)
    reports: dict[str, SignatureReport] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what building it said
    path: str = ""                        # where it was written ("": not yet)
    runtime: str = ""                     # the runtime that runs it ("": TensorFlow)
    checks: written.Checks | None = None    # its verification (None: not verified)
    why_not: str = ""                     # why it cannot be kept
    worst: float | None = None            # worst difference from the original's answers
    speed: SpeedCheck | None = None       # against ``against``
    against: str = ""
    size: int | None = None               # bytes on disk, taken while its files were its own

    def measure_size(self) -> None:
        """Take its size on disk now: a form not kept is deleted, and the kept one is moved
        to the output (where another form may have been before it)."""
        if self.size is None and self.path and os.path.exists(self.path):
            self.size = size_on_disk(self.path)

    @property
    def verified(self) -> bool:
        """Its answers were checked and are within its policy (it may still be dropped for
        its speed: ``why_not``)."""
        return self.checks is not None and not written.failing(self.checks)

    def drop(self, why: str) -> None:
        self.why_not = self.why_not or why

    def judge(self, checks: written.Checks) -> bool:
        """Record its verification: the checks, the worst difference, and (an output outside
        its policy) why it cannot be kept. Whether it verified."""
        self.checks = checks
        self.worst = max((c.rel for found in checks.values() for c in found), default=0.0)
        bad = [c for key in written.failing(checks) for c in checks[key] if not c.ok]
        if bad:
            self.drop(f"answers differently: {bad[0].describe()}")
        return not bad

    def row(self, written: bool = False) -> dict:
        """The candidate's line in the report's table (and ``tfopt.json``'s candidates);
        ``written``: it is the form the output holds."""
        speed = self.speed
        return {"choice": self.choice, "candidate": self.name, "runtime": self.runtime,
                "verified": self.verified, "why_not": self.why_not,
                "worst": self.worst if self.verified else None,
                "speedup": speed.ratio.value if speed else None,
                "interval": [speed.ratio.low, speed.ratio.high] if speed else None,
                "against": self.against,
                "bytes": self.size, "written": written}


@dataclass
class Driver:
    """Builds, writes, verifies and times candidates of one model. Holds what the choices
    share and nothing they decide: each choice returns the candidate it keeps."""

    model: LoadedModel
    kernels: KernelSupport
    feeds: Feeds | None
    refs: References | None
    target: str                           # --target: where outputs must run
    work: str                             # a directory for written candidates
    say: Log
    int8: dict[str, Int8Plan] = field(default_factory=dict)
    runtimes: list[str] | None = None     # where they run (None: as the target says)
    policy_for: Callable[[str], Policy] = Policy.of  # precision -> its budget's policy

    # --- build ---------------------------------------------------------------------------------

    def build(self, recipe: Recipe, name: str, choice: str) -> Candidate:
        """The passes of ``recipe`` over every distinct signature, identical results stored
        once, and its XLA cluster outlined."""
        cand = Candidate(name, choice, dataclasses.replace(recipe, xla="off"),
                         self.policy_for(recipe.precision))
        unique = [s for s in self.model.signatures.values() if not s.same_as]
        for sig in unique:
            self._passes(cand, sig, label=f"[{sig.key}] " if len(unique) > 1 else "")
        cand.sigs = {key: cand.sigs[key] for key in self.model.signatures}
        before = {k: s.same_as for k, s in cand.sigs.items()}
        mark_identical(cand.sigs)
        for key, sig in cand.sigs.items():
            if sig.same_as and not before[key]:
                cand.reports[key].same_as = sig.same_as
        if recipe.xla == "off":
            return cand
        outlined = self.outlined(cand, recipe.xla)  # rebuilt: no second timing of the cluster
        return cand if outlined.why_not else outlined

    def outlined(self, base: Candidate, mode: str, name: str = "", choice: str = ""
                 ) -> Candidate:
        """``base`` with its XLA cluster outlined (``mode`` "auto": only a cluster holding
        most of the work); ``why_not`` says why there is none."""
        from tfopt.optimizer.xla import MIN_WORK_SHARE, outline

        cand = dataclasses.replace(base, name=name or base.name, choice=choice or base.choice,
                                   recipe=dataclasses.replace(base.recipe, xla=mode),
                                   sigs=dict(base.sigs), notes=list(base.notes), path="")
        outlined, why = [], []
        for key, sig in base.sigs.items():
            if sig.same_as:
                continue
            new = outline(sig, MIN_WORK_SHARE if mode == "auto" else 0.0)
            if isinstance(new, str):
                why.append(new)
            else:
                cand.sigs[key] = new
                outlined.append(key)
        for key, sig in base.sigs.items():
            if sig.same_as in outlined:
                cand.sigs[key] = sig.with_graph(cand.sigs[sig.same_as].graph_def)
        if not outlined:
            cand.drop(why[0] if why else "nothing to compile")
        return cand

    def _passes(self, cand: Candidate, sig: SignatureGraph, label: str) -> None:
        """Run the passes on ``sig`` (checked, when the recipe says so) and record the result
        for it and the signatures sharing its graph."""
        recipe = cand.recipe
        ctx = pass_context(sig, self.kernels, recipe.precision,
                           self.int8.get(sig.key) if recipe.precision == "int8" else None)
        if sig.key in recipe.checked:
            verifier = SignatureVerifier(sig, self.feeds[sig.key], self.refs, cand.policy,
                                         self.runtimes or written.runtimes_for(
                                             self.target, self.model.signatures, self.refs))
            result = run_checked(sig.graph_def, ctx, recipe.enabled, verifier, self.say, label)
            cand.notes.extend(f"[{sig.key}] pass {rec.name} skipped: {rec.skipped}"
                              for rec in result.records if rec.skipped)
        else:
            result = run_passes(sig.graph_def, ctx, recipe.enabled, None, self.say, label)
        if not result.converged:
            cand.notes.append(f"[{sig.key}] the passes found no fixed point in "
                              f"{result.iterations} rounds (the result is still verified)")
        optimized = signature_from(sig, result)
        graph_def = optimized.graph_def
        cand.sigs[sig.key] = optimized
        cand.reports[sig.key] = SignatureReport(
            sig.key, len(sig.graph_def.node), len(graph_def.node), op_counts(sig.graph_def),
            op_counts(graph_def), result.records,
            function_nodes_before=function_nodes(sig.graph_def),
            function_nodes_after=function_nodes(graph_def))
        for twin in self.model.signatures.values():
            if twin.same_as == sig.key:
                cand.sigs[twin.key] = twin.with_lifted(graph_def, optimized.weights)
                cand.reports[twin.key] = dataclasses.replace(cand.reports[sig.key],
                                                             key=twin.key, same_as=sig.key)

    # --- write, verify, time -------------------------------------------------------------------

    def write(self, cand: Candidate) -> str:
        """The candidate written once under the work directory, as the output is."""
        if not cand.path:
            slug = "".join(c if c.isalnum() else "-" for c in f"{cand.choice}-{cand.name}")
            path = os.path.join(self.work, slug)
            while os.path.exists(path) or os.path.exists(path + ".pb"):
                path += "_"
            if cand.recipe.fmt == "pb":
                path += ".pb"
            write(cand.sigs, path, cand.recipe.fmt, self.model.tags)
            cand.path = path
        return cand.path

    def verify(self, cand: Candidate) -> bool:
        """Run the written candidate under every runtime it must run on, judged by its own
        policy against the original's answers."""
        if cand.why_not or self.feeds is None:
            return False
        runtimes = self.runtimes or written.runtimes_for(self.target, cand.sigs, self.refs)
        return cand.judge(written.check_written(self.write(cand), cand.recipe.fmt, cand.sigs,
                                                self.feeds, self.refs, cand.policy, runtimes))

    def time(self, baseline: Candidate | str, cands: list[Candidate], key: str,
             decide: bool = True) -> None:
        """Signature ``key`` of every candidate timed against ``baseline`` (a candidate or a
        model path: the original) in one interleaved run; ``decide``: a promising candidate
        the first run could not decide is timed again (see :func:`speed.time_all_against`)."""
        from tfopt.optimizer import speed

        if not cands:
            return
        base = baseline if isinstance(baseline, str) else self.write(baseline)
        checks = speed.time_all_against(base, [self.write(c) for c in cands], key,
                                        self.feeds[key], self.say, decide=decide)
        for cand, check in zip(cands, checks, strict=True):
            cand.speed = check
            cand.against = "the original" if isinstance(baseline, str) else baseline.name

    def discard(self, cands: list[Candidate]) -> None:
        """Let go of what dropped candidates hold: their graphs, and what they wrote under
        the work directory (a large model's every copy holds its weights)."""
        for cand in cands:
            cand.sigs = {}
            if not cand.path.startswith(self.work + os.sep):
                continue
            if os.path.isdir(cand.path):
                shutil.rmtree(cand.path)
            elif os.path.exists(cand.path):
                os.remove(cand.path)


def faster_than_baseline(baseline: Candidate, cands: list[Candidate]) -> Candidate:
    """The keep rule of the precision choice: the fastest verified candidate whose
    gain's whole interval lies above 1.0, else the baseline."""
    faster = [c for c in cands if not c.why_not and c.speed is not None and c.speed.ratio.faster]
    return max(faster, key=lambda c: c.speed.ratio.value, default=baseline)


def pass_context(sig: SignatureGraph, kernels: KernelSupport | None,
                 precision: str = "fp32", int8: Int8Plan | None = None) -> PassContext:
    """What the passes may know of a signature. Only declared shapes are used by passes
    (never the verification feeds): nothing may be specialised to the batch size that
    happened to be verified."""
    settings = ({"quantize_int8": {"ranges": int8.ranges, "keep_float": int8.keep_float}}
                if int8 else {})
    return PassContext.of_signature(sig, kernels=kernels, precision=precision,
                                    settings=settings)


def signature_from(sig: SignatureGraph, result) -> SignatureGraph:
    """``sig`` over the graph the passes left (``result``: a pipeline result)."""
    if graph_bytes(result.lifted) > variables_from():
        # Kept lifted to the writer, which stores these weights in variables/ anyway: with
        # their values back in the graph a 2.3 GiB model held them twice more.
        return sig.with_lifted(result.lifted, result.weights)
    return sig.with_lifted(result.graph_def, None)
