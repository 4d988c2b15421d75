"""``optimize`` as a road of named stages, each handing one :class:`State` to the next.

    check request -> load -> verification inputs -> original's answers -> [int8: calibrate,
    fit the accuracy budget] -> passes (per signature) -> share identical -> [precision auto]
    -> [XLA] -> where it must run
    then, in a temporary directory renamed into place only at the end:
    write -> verify (blame a pass, rewrite, verify again) -> [precision refused?] -> time
    against the original (blame a slow pass, rewrite) -> TF Serving's extras -> report and
    metadata

Each stage is a small function that reads what earlier stages left in the state and adds its
own part; the work itself is done by the module that owns the subject (loading in
:mod:`tfopt.model`, passes in :mod:`tfopt.passes`, verification in :mod:`tfopt.verify`, XLA in
:mod:`tfopt.optimizer.xla`). A new stage (reduced precision, say) is one function and one
entry in :data:`PREPARE` or :data:`WRITE`.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tfopt.errors import TfoptError, VerificationError
from tfopt.graph.flops import dense_dtypes
from tfopt.graph.kernels import KernelSupport, fusion_names, fusions_in
from tfopt.graph.ops import SELECTION_OPS
from tfopt.graph.view import depends_on_op, function_nodes, op_counts
from tfopt.graph.weights import (
    graph_bytes,
    graph_limit,
    release_memory,
    size_text,
    variables_from,
)
from tfopt.model.endpoints import Endpoint
from tfopt.model.formats import check_input_names, load_model, refuse_python_ops
from tfopt.model.loader import mark_identical
from tfopt.model.paths import atomic_output, remove, write_metadata
from tfopt.model.saver import write, write_saved_model
from tfopt.model.signature import LoadedModel, SignatureGraph
from tfopt.optimizer.convert import to_runtime
from tfopt.optimizer.report import Report, SignatureReport, StageCost
from tfopt.optimizer.speed import SpeedCheck
from tfopt.options import RUNTIME_FORMATS, OptimizeOptions
from tfopt.passes.base import PassContext
from tfopt.passes.pipeline import Log, run_checked, run_passes
from tfopt.passes.registry import select
from tfopt.runtime import RUNTIMES, runtime_label
from tfopt.verify import whole
from tfopt.verify.compare import Policy
from tfopt.verify.inputs import load_labels, model_feeds
from tfopt.verify.references import References, SignatureVerifier

Feeds = dict[str, dict[str, np.ndarray]]


@dataclass
class Int8Plan:
    """What quantize_int8 is given for one signature: the calibrated ranges, the graph they
    were observed in (the one the pass will see), and ops kept in float32 for accuracy."""

    ranges: dict
    calibrated: object  # graph_pb2.GraphDef; dropped once the passes have run
    keep_float: frozenset[str] = frozenset()


@dataclass
class State:
    """What the stages know so far; each stage fills in its part and hands it on."""

    options: OptimizeOptions
    say: Log
    started: float = field(default_factory=time.perf_counter)
    enabled: frozenset[str] = frozenset()
    kernels: KernelSupport | None = None
    policy: Policy = field(default_factory=Policy)
    model: LoadedModel | None = None
    feeds: Feeds | None = None          # None: --no-verify
    refs: References | None = None
    optimized: dict[str, SignatureGraph] = field(default_factory=dict)
    reports: dict[str, SignatureReport] = field(default_factory=dict)
    runtimes: list[str] = field(default_factory=lambda: list(RUNTIMES))
    endpoints: list[Endpoint] = field(default_factory=list)  # attribute endpoints to write
    precision: str = "fp32"              # what the passes compute in ("auto" decides later)
    int8: dict[str, Int8Plan] = field(default_factory=dict)  # per signature (--precision int8)
    out: str = ""                        # where WRITE stages write (a temporary path)
    speed: dict[str, SpeedCheck] = field(default_factory=dict)  # per signature timed
    stored: dict[str, dict[str, int]] = field(default_factory=dict)  # weights in variables/
    compiled: bool = False               # the graphs carry an XLA cluster (compile_xla)
    xla_note: str = ""                   # what compile_xla decided, for the report
    report: Report | None = None
    runtime_written: dict = field(default_factory=dict)  # --format litert/openvino: what ran
    candidates: list[dict] = field(default_factory=list)  # runtime formats: every form tried

    def policy_in(self, precision: str) -> Policy:
        """The verification policy for a candidate computing in ``precision`` ("bf16",
        "int8"): its budget (or ``--tolerance``), this model's outputs and task kept."""
        return self.policy.in_precision(precision, self.options.budget_for(precision))

    def write_generic(self, key: str, path: str) -> None:
        """Signature ``key`` through the float32 passes for ``--target generic`` (no
        ``_Fused*`` kernel a converter cannot read), written as a SavedModel at ``path``:
        tfopt's graph as a source for another runtime's converter."""
        sig = self.model.signatures[key]
        result = run_passes(sig.graph_def, pass_context(sig, KernelSupport("generic"),
                                                        self.enabled), self.enabled)
        write_saved_model({key: _signature_from(sig, result)}, path, self.model.tags)


Stage = Callable[[State], None]


# --- before writing ------------------------------------------------------------------------------


def check_request(state: State) -> None:
    """What can be refused before the model is loaded, past the options' own check (paths,
    names: :meth:`OptimizeOptions.checked`): input names the SavedModel does not declare."""
    opts = state.options
    state.enabled = select(opts.passes, opts.skip)
    state.kernels = KernelSupport(opts.graph_target)
    state.precision = (opts.graph_precision if opts.graph_precision in ("bf16", "int8")
                       else "fp32")
    state.policy = Policy.for_precision(state.precision, opts.budget_for(state.precision))
    check_input_names(opts.src, opts.input_shapes, opts.signatures)


def load(state: State) -> None:
    opts = state.options
    began = time.perf_counter()
    state.model = load_model(opts.src, opts.signatures, opts.inputs, opts.outputs)
    refuse_python_ops(opts.src, state.model)
    state.say(f"loaded and froze {opts.src} ({state.model.kind}; signatures "
              f"{', '.join(state.model.signatures)}) in {time.perf_counter() - began:.1f}s")
    state.policy = dataclasses.replace(state.policy, selections=selected_outputs(state.model))
    judge_native_bf16(state)
    if opts.format == "pb" and len(state.model.signatures) > 1:
        state.say("several signatures go into one GraphDef, each under its own name scope")


def judge_native_bf16(state: State) -> None:
    """A model that computes in bfloat16 itself (Keras ``mixed_bfloat16``) is judged by the
    reduced-precision budget unless ``--tolerance`` says otherwise: bfloat16's own rounding
    (~4e-3) moves its answers past the float32 tolerance when a fused kernel rounds once
    where the original rounded twice (measured: the frozen graph, before any pass, 3.4e-3
    from the original on a small mixed_bfloat16 CNN)."""
    if state.options.tolerance is not None or state.precision != "fp32":
        return
    found = next(((key, dense) for key, sig in state.model.signatures.items()
                  if "bfloat16" in (dense := dense_dtypes(sig.graph_def))), None)
    if found is None:
        return
    key, dense = found
    state.policy = state.policy_in("bf16")
    state.model.notes.append(
        f"the model computes in bfloat16 itself ({dense.count('bfloat16')} of {len(dense)} "
        f"convolutions and matmuls in {key!r}): its answers are judged by the "
        f"reduced-precision budget (relative RMS <= {state.policy.tolerance:g}, top-1 "
        "agreement), not the float32 tolerance; --tolerance sets another")


def selected_outputs(model: LoadedModel) -> frozenset[str]:
    """Output keys a selection computes (non-max suppression, top-k): compared order-free
    under reduced precision (see :mod:`tfopt.verify.compare`)."""
    return frozenset(key for sig in model.signatures.values()
                     for key, info in sig.outputs.items()
                     if depends_on_op(sig.graph_def, info.tensor, SELECTION_OPS))


def verification_inputs(state: State) -> None:
    opts = state.options
    if opts.verify:
        state.feeds = model_feeds(state.model, opts.inputs_file, opts.input_shapes,
                                  opts.samples, opts.int_range)
        if opts.labels:
            outputs = {k: i for s in state.model.signatures.values() for k, i in s.outputs.items()}
            state.policy = dataclasses.replace(
                state.policy, labels=load_labels(opts.labels, state.feeds, outputs),
                max_accuracy_drop=opts.max_accuracy_drop)
    if opts.calibration_file:  # checked now, not after the original has run
        calibration_samples(state, next(iter(state.model.signatures.values())))


def calibration_samples(state: State, sig: SignatureGraph) -> dict:
    """The calibration file's samples for ``sig``, checked like verification inputs."""
    from tfopt.verify.user_files import read_calibration

    known = {k for s in state.model.signatures.values() for k in s.inputs}
    return read_calibration(state.options.calibration_file, sig.inputs, known,
                            state.model.notes)


def original_answers(state: State) -> None:
    if state.feeds is None:
        return
    state.refs = References.record(state.model, state.feeds, state.options.inputs_file)
    if any(graph_bytes(s.graph_def) > variables_from() for s in state.model.signatures.values()):
        # A large original, as TensorFlow loaded it, holds ~2x its weights (GPT-2 base: 1.1 GB
        # for 0.46 GiB) that nothing needs once its answers are recorded: another runtime's
        # answers come from a child.
        state.model.reference = None


def calibrate(state: State) -> None:
    """``--precision int8``: the activation ranges quantize_int8 quantizes with, observed on
    the calibration samples in the graph the passes leave just before it (see
    :mod:`tfopt.optimizer.calibrate`)."""
    if state.precision != "int8" and not (state.options.graph_precision == "auto"
                                          and state.options.calibration_file):
        return
    from tfopt.optimizer.calibrate import calibrate as observe

    opts = state.options
    before = state.enabled - {"quantize_int8", "fuse_kernels"}
    for sig in state.model.signatures.values():
        if sig.same_as:
            continue
        samples = calibration_samples(state, sig)
        count = len(next(iter(samples.values()), []))
        state.say(f"[{sig.key}] calibrating int8 ranges ({opts.calibration_method}) on "
                  f"{count} samples of {opts.calibration_file} ...")
        graph = run_passes(sig.graph_def, pass_context(sig, state.kernels, before, "int8"),
                           before).graph_def
        ranges = observe(sig.with_graph(graph), samples, opts.calibration_method, state.say)
        state.int8[sig.key] = Int8Plan(ranges, graph)
        state.model.notes.append(f"[{sig.key}] int8 ranges calibrated ({opts.calibration_method}"
                                 f") on {count} samples of {opts.calibration_file}")


def fit_int8_budget(state: State) -> None:
    """int8 that misses the accuracy budget in this process: its most sensitive ops go back
    to float32 one at a time until it holds (see :mod:`tfopt.optimizer.sensitivity`)."""
    if not state.int8 or state.feeds is None:
        return
    from tfopt.optimizer.sensitivity import fit_budget

    policy = state.policy_in("int8")
    for key, plan in list(state.int8.items()):
        sig = state.model.signatures[key]
        ctx = pass_context(sig, state.kernels, state.enabled, "int8", plan)
        fit = fit_budget(sig, plan.calibrated, ctx, state.feeds[key], state.refs.local[key],
                         policy, state.say)
        plan.calibrated = None
        if not fit.ok and state.precision != "int8":  # auto: int8 is no candidate
            state.int8.clear()
            state.model.notes.append(f"precision auto: no int8 (it misses the accuracy budget "
                                     f"in {key!r} even with its most sensitive ops in float32)")
            return
        if fit.keep_float and fit.ok:
            plan.keep_float = frozenset(fit.keep_float)
            state.model.notes.append(
                f"[{key}] int8: {len(fit.keep_float)} most sensitive ops kept in float32 to "
                f"meet the accuracy budget: {', '.join(fit.keep_float)}")
        elif not fit.ok:
            bad = next(c for c in fit.checks if not c.ok)
            raise VerificationError(
                f"--precision int8 misses the accuracy budget in signature {key!r} even with "
                f"its {len(fit.keep_float)} most sensitive ops in float32 ({bad.describe()}); "
                "nothing written (a looser --tolerance / --max-accuracy-drop, more "
                "representative --calibration-file samples, --calibration-method percentile, "
                "or --precision bf16)")


def run_signature_passes(state: State) -> None:
    for sig in state.model.signatures.values():
        if not sig.same_as:
            _optimize_signature(state, sig, checked=False)
    state.optimized = {key: state.optimized[key] for key in state.model.signatures}


def share_identical(state: State) -> None:
    """Signatures that froze differently (function names differ per trace) but optimize to
    the same graph are stored once: the later ones are marked ``same_as`` the first."""
    before = {k: s.same_as for k, s in state.optimized.items()}
    mark_identical(state.optimized)
    for key, sig in state.optimized.items():
        if sig.same_as and not before[key]:
            state.reports[key].same_as = sig.same_as


def choose_precision(state: State) -> None:
    """``--precision auto``: bf16 where it is accurate and measurably faster (see
    :mod:`tfopt.optimizer.precision`)."""
    if state.options.graph_precision != "auto":
        return
    from tfopt.optimizer.precision import choose

    def rerun(precision: str) -> None:
        state.precision = precision
        run_signature_passes(state)
        share_identical(state)
        state.precision = "fp32"

    def write_candidate(path: str) -> None:
        write(state.optimized, path, state.options.format, state.model.tags)

    choose(state, rerun, write_candidate)


def compile_xla(state: State) -> None:
    if state.options.xla_mode != "off":
        from tfopt.optimizer.xla import compile_cluster

        outcome = compile_cluster(state.optimized, state.options.xla_mode, state.model.tags,
                                  state.feeds, state.say)
        state.optimized, state.compiled, state.xla_note = (outcome.sigs, outcome.compiled,
                                                           outcome.note)


def keep_endpoints(state: State) -> None:
    """The original's attribute endpoints (``loaded.serve``) go into the output when it is a
    SavedModel without load-time table initializers (which only the v1 format runs)."""
    found = state.model.endpoints
    if not found:
        return
    names = ", ".join(e.name for e in found)
    if state.options.format in ("pb", *RUNTIME_FORMATS):
        state.model.notes.append(f"attribute endpoints ({names}) need a SavedModel; "
                                 f"--format {state.options.format} keeps signatures only")
    elif any(sig.init_ops for sig in state.optimized.values()):
        state.model.notes.append(f"attribute endpoints ({names}) not restated: the model "
                                 "initialises lookup tables at load, which only the v1 "
                                 "SavedModel format does; call it through its signatures")
    else:
        state.endpoints = list(found)


def choose_runtimes(state: State) -> None:
    state.runtimes = whole.runtimes_for(state.options.graph_target, state.optimized,
                                        state.refs)


# --- in the temporary output ---------------------------------------------------------------------


def write_model(state: State) -> None:
    where = " and ".join(runtime_label(r) for r in state.runtimes)
    state.say("writing the optimized model" + (f" and running it ({where}) ..."
                                               if state.feeds is not None else " ..."))
    state.stored = write(state.optimized, state.out, state.options.format, state.model.tags,
                         state.endpoints)


def _stored_notes(stored: dict[str, dict[str, int]]) -> list[str]:
    """What the written model keeps in ``variables/``, per signature graph."""
    return [f"[{key}] {len(outside)} weights ({size_text(sum(outside.values()))}) are "
            f"stored in variables/, read by the graph: past {size_text(variables_from())} "
            "a graph keeps its matmul and embedding weights there (loading inline ones "
            f"costs several times their memory), past {size_text(graph_limit())} "
            "(TFOPT_MAX_GRAPH_MB) its largest too"
            for key, outside in stored.items() if outside]


def verify_written(state: State) -> None:
    """Run the written model under each runtime; on a difference, blame and switch off the
    pass responsible (per signature), write again and verify again."""
    if state.feeds is None:
        return

    def check() -> whole.Checks:
        return whole.check_written(state.out, state.options.format, state.optimized,
                                   state.feeds, state.refs, state.policy, state.runtimes,
                                   state.say)

    def blame(keys: list[str]) -> None:
        for key in dict.fromkeys(state.model.signatures[k].same_as or k for k in keys):
            _optimize_signature(state, state.model.signatures[key], checked=True)
            state.model.notes.extend(f"[{key}] pass {rec.name} skipped: {rec.skipped}"
                                     for rec in state.reports[key].passes if rec.skipped)
        state.optimized = {key: state.optimized[key] for key in state.model.signatures}
        # The re-run passes have no compiled cluster (compile_xla is not run again).
        if state.compiled:
            state.compiled = False
            state.xla_note = ("xla: compiled cluster dropped: the model written with it did "
                              "not verify; written without it")

    def rewrite() -> None:
        remove(state.out)
        choose_runtimes(state)
        write_model(state)

    for key, checks in whole.verify_with_blame(check, blame, rewrite, state.say).items():
        state.reports[key].checks = checks


def check_precision(state: State) -> None:
    """An explicit reduced precision that verification had to switch off is refused: the
    user asked for bf16 or int8, and a float32 model written under that name would mislead."""
    precision = state.options.graph_precision
    if precision not in PRECISION_PASS:
        return
    for key, report in state.reports.items():
        if report.same_as:
            continue
        rec = next((r for r in report.passes if r.name == PRECISION_PASS[precision]), None)
        if rec is None or not (rec.changed or rec.skipped):
            raise TfoptError(f"--precision {precision}: nothing in signature {key!r} could run "
                             f"in {precision} (pass {PRECISION_PASS[precision]} "
                             f"{'not enabled' if rec is None else 'found nothing to convert'}: "
                             "every convolution and matmul stays float32, for want of constant "
                             "weights or a calibrated range, or too small for int8 to pay for "
                             "converting its input and output); nothing written")
        if rec.skipped:
            raise VerificationError(
                f"--precision {precision} misses the accuracy budget in signature {key!r} "
                f"({rec.skipped}); nothing written (a looser --tolerance, or --precision "
                "fp32)")


def check_speed(state: State) -> None:
    """Time the written model against the original (see :mod:`tfopt.optimizer.speed`); when it
    is measurably slower, switch off the pass responsible and write again, or refuse."""
    opts = state.options
    if not opts.time or opts.format in RUNTIME_FORMATS:  # (to_runtime times what it writes)
        return
    if state.feeds is None:
        state.model.notes.append("speed not checked: it is timed on the verification inputs "
                                 "(--no-verify)")
        return
    from tfopt.optimizer import speed

    keys = [key for key, sig in state.optimized.items() if not sig.same_as]
    if opts.format == "pb":  # one GraphDef: timed as its default signature, if it has one
        if len(keys) > 1 or "serving_default" not in state.optimized:
            state.model.notes.append("speed not checked: a frozen GraphDef holding several "
                                     "signatures is not timed per signature")
            return
        keys = ["serving_default"]
    for key in keys:
        state.say(f"timing {key}: the original against the optimized model "
                  f"(in alternating blocks, {speed.PROCESSES} fresh processes) ...")
        try:
            check = speed.time_against(opts.src, state.out, key, state.feeds[key], state.say)
        except TfoptError as err:
            state.model.notes.append(f"[{key}] speed not checked: {err}")
            continue
        if check.slower:
            check = _recover_speed(state, key, check)
        state.speed[key] = check


def _recover_speed(state: State, key: str, check: SpeedCheck) -> SpeedCheck:
    """The output of ``key`` is measurably slower than the original: find the pass by timed
    bisection, switch it off, write and verify again; refuse if the frozen graph alone is
    slower (confirmed by a second timing)."""
    import tempfile

    from tfopt.optimizer import speed
    from tfopt.passes.registry import NAMES

    opts, sig = state.options, state.model.signatures[key]
    state.say(f"[{key}] the optimized model is slower than the original ({check.describe()}); "
              "timing the passes to find why ...")

    def slower_with(prefix: list[str]) -> bool:
        enabled = frozenset(prefix)
        result = run_passes(sig.graph_def, pass_context(sig, state.kernels, enabled,
                                                        state.precision,
                                                        state.int8.get(key)), enabled)
        with tempfile.TemporaryDirectory(prefix="tfopt-probe-") as tmp:
            write_saved_model({key: sig.with_graph(result.graph_def)}, f"{tmp}/m",
                              state.model.tags)
            probe = speed.time_against(opts.src, f"{tmp}/m", key, state.feeds[key])
        state.say(f"  passes {', '.join(prefix) or '(none: frozen graph only)'}: "
                  f"{probe.describe()}")
        return probe.slower

    changed = {rec.within or rec.name for rec in state.reports[key].passes if rec.changed}
    culprit = speed.first_slow([n for n in NAMES if n in changed], slower_with)
    if culprit is None:
        again = speed.time_against(opts.src, state.out, key, state.feeds[key], state.say)
        if again.slower:
            raise TfoptError(f"[{key}] the optimized model is slower than the original "
                             f"({check.describe()}; again {again.ratio.short()}), and so is "
                             "the frozen graph without any pass: nothing written, the original "
                             "is the faster model here (--no-time writes it anyway)")
        return again
    state.enabled = state.enabled - {culprit}
    state.model.notes.append(f"[{key}] pass {culprit} switched off: with it the model ran "
                             f"slower than the original ({check.describe()})")
    run_signature_passes(state)
    share_identical(state)
    compile_xla(state)
    remove(state.out)
    write_model(state)
    verify_written(state)
    return speed.time_against(opts.src, state.out, key, state.feeds[key], state.say)


SERVING_EXTRAS = "assets.extra"  # TF Serving's own directory (warm-up requests), not the graph's


def keep_serving_extras(state: State) -> None:
    """TF Serving reads ``assets.extra/`` beside the graph (``tf_serving_warmup_requests``):
    the output keeps the original's, since its signatures and inputs are the same."""
    src = os.path.join(state.options.src, SERVING_EXTRAS)
    if state.options.format == "pb" or state.runtime_written or not os.path.isdir(src):
        return
    if state.options.signatures:
        state.model.notes.append(f"{SERVING_EXTRAS}/ not copied: --signature kept only some "
                                 "signatures, and a warm-up request for another fails the load")
        return
    shutil.copytree(src, os.path.join(state.out, SERVING_EXTRAS))
    state.model.notes.append(f"{SERVING_EXTRAS}/ copied from the original (TF Serving's "
                             "warm-up requests; the signatures they name are kept)")


def report_and_metadata(state: State) -> None:
    opts = state.options
    verified = state.feeds is not None
    notes = (list(state.model.notes) + ([state.xla_note] if state.xla_note else [])
             + _stored_notes(state.stored)
             + (state.refs.notes if state.refs else []))
    fused = fusion_names(fusions_in(s.graph_def for s in state.optimized.values()
                                    if not s.same_as))
    state.report = Report(opts.src, opts.dst, state.model.kind, state.reports,
                          True if verified else None, state.policy.tolerance,
                          time.perf_counter() - state.started, notes, opts.target,
                          state.runtimes, fused, [e.to_dict() for e in state.endpoints],
                          state.precision, dict(state.speed))
    state.report.output = dict(state.runtime_written)
    state.report.candidates = list(state.candidates)
    if opts.format == "saved_model" and verified:
        from tfopt.runtimes import installed

        if others := installed():
            notes.append(f"--format auto would also try {', '.join(others)} (installed here), "
                         "each verified and timed, and write the fastest verified form")
    if opts.format != "pb":
        write_metadata(state.out, state.report.metadata())


PRECISION_PASS = {"bf16": "reduced_precision", "int8": "quantize_int8"}

PREPARE: list[Stage] = [check_request, load, verification_inputs, original_answers, calibrate,
                        fit_int8_budget, run_signature_passes, share_identical, choose_precision, compile_xla,
                        keep_endpoints, choose_runtimes]
WRITE: list[Stage] = [write_model, verify_written, check_precision, check_speed, to_runtime,
                      keep_serving_extras, report_and_metadata]


def run(options: OptimizeOptions, log: Log | None = None) -> Report:
    """The road: PREPARE's stages, then WRITE's in a temporary path renamed into place."""
    state = State(options, log or (lambda _msg: None))
    costs: list[StageCost] = []

    def step(stage: Stage) -> None:
        began = time.perf_counter()
        stage(state)
        if state.model is not None:  # large models: what the stage dropped, freed now
            release_memory(next(iter(state.model.signatures.values())).graph_def)
        costs.append(StageCost.measure(stage.__name__, began))

    for stage in PREPARE:
        step(stage)
    with atomic_output(options.dst, options.overwrite) as state.out:
        for stage in WRITE:
            step(stage)
    state.report.stages = costs
    return state.report


# --- the passes on one signature -----------------------------------------------------------------


def pass_context(sig: SignatureGraph, kernels: KernelSupport | None,
                 enabled: frozenset[str] | None = None, precision: str = "fp32",
                 int8: Int8Plan | None = None) -> PassContext:
    """What the passes may know of a signature. Only declared shapes are used by passes
    (never the verification feeds): nothing may be specialised to the batch size that
    happened to be verified."""
    return PassContext.of_signature(sig, kernels=kernels, enabled=enabled, precision=precision,
                                    ranges=int8.ranges if int8 else None,
                                    keep_float=int8.keep_float if int8 else frozenset())


def _optimize_signature(state: State, sig: SignatureGraph, checked: bool) -> None:
    """Run the passes on ``sig`` (``checked``: every application verified, after a failed
    verification) and record the result for it and the signatures sharing its graph."""
    unique = [s for s in state.model.signatures.values() if not s.same_as]
    label = f"[{sig.key}] " if len(unique) > 1 else ""
    ctx = pass_context(sig, state.kernels, state.enabled, state.precision,
                       state.int8.get(sig.key))
    if checked:
        verifier = SignatureVerifier(sig, state.feeds[sig.key], state.refs, state.policy,
                                     state.runtimes)
        result = run_checked(sig.graph_def, ctx, state.enabled, verifier, state.say, label)
    else:
        result = run_passes(sig.graph_def, ctx, state.enabled, None, state.say, label)
    if not result.converged:
        state.model.notes.append(f"[{sig.key}] the passes found no fixed point in "
                                 f"{result.iterations} rounds (the result is still verified)")
    optimized = _signature_from(sig, result)
    graph_def = optimized.graph_def
    state.optimized[sig.key] = optimized
    state.reports[sig.key] = SignatureReport(
        sig.key, len(sig.graph_def.node), len(graph_def.node), op_counts(sig.graph_def),
        op_counts(graph_def), result.records,
        function_nodes_before=function_nodes(sig.graph_def),
        function_nodes_after=function_nodes(graph_def))
    for twin in state.model.signatures.values():
        if twin.same_as == sig.key:
            state.optimized[twin.key] = twin.with_lifted(graph_def, optimized.weights)
            state.reports[twin.key] = dataclasses.replace(state.reports[sig.key], key=twin.key,
                                                          same_as=sig.key)


def _signature_from(sig: SignatureGraph, result) -> SignatureGraph:
    """``sig`` over the graph the passes left (``result``: a pipeline result)."""
    if graph_bytes(result.lifted) > variables_from():
        # Kept lifted to the writer, which stores these weights in variables/ anyway: with
        # their values back in the graph a 2.3 GiB model held them twice more.
        return sig.with_lifted(result.lifted, result.weights)
    return sig.with_lifted(result.graph_def, None)
