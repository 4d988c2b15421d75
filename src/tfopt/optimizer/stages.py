"""``optimize`` as a road of named stages, each handing one :class:`State` to the next.

    check request -> load -> verification inputs -> original's answers -> [int8: calibrate,
    fit the accuracy budget] -> build the passes' candidate -> [precision auto: choose]
    -> [XLA: choose] -> where it must run
    then, in a temporary directory renamed into place only at the end:
    write -> verify (answers: the checked candidate if it fails) -> [precision refused?]
    -> time against the original (speed: the candidate without a slow pass) -> [format:
    choose a runtime] -> TF Serving's extras -> report and metadata

Each stage is a small function that reads what earlier stages left in the state and adds its
own part; the work itself is done by the module that owns the subject (loading in
:mod:`tfopt.model`, passes in :mod:`tfopt.passes`, verification in :mod:`tfopt.verify`).
Every choice (precision, XLA, answers, speed, format) is a set of candidates handed to one
:class:`~tfopt.optimizer.candidates.Driver`, which builds, writes, verifies and times them;
the stage keeps the one its rule picks as ``state.chosen`` and adds the set to
``state.tried``, which the report lists. A new stage is one function and one entry in
:data:`PREPARE` or :data:`WRITE`; a new choice is one more set handed to the driver.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tfopt.errors import TfoptError, VerificationError
from tfopt.graph.flops import dense_dtypes
from tfopt.graph.fusions import fusion_names, fusions_in
from tfopt.graph.kernels import KernelSupport
from tfopt.graph.ops import SELECTION_OPS
from tfopt.graph.walk import depends_on_op
from tfopt.graph.weights import (
    graph_bytes,
    graph_limit,
    release_memory,
    size_text,
    variables_from,
)
from tfopt.model.endpoints import Endpoint
from tfopt.model.formats import check_input_names, load_model, refuse_python_ops
from tfopt.model.paths import atomic_output, remove, write_metadata
from tfopt.model.saver import write, write_saved_model
from tfopt.model.signature import LoadedModel, SignatureGraph
from tfopt.optimizer.candidates import Candidate, Driver, Feeds, Int8Plan, Recipe, pass_context
from tfopt.optimizer.convert import to_runtime
from tfopt.optimizer.report import Report, StageCost
from tfopt.optimizer.speed import SpeedCheck
from tfopt.options import RUNTIME_FORMATS, OptimizeOptions
from tfopt.passes.pipeline import Log, run_passes
from tfopt.passes.registry import select
from tfopt.runtime import RUNTIMES, runtime_label
from tfopt.verify import written
from tfopt.verify.compare import Policy
from tfopt.verify.inputs import load_labels, model_feeds
from tfopt.verify.references import References


@dataclass
class State:
    """What the stages know so far; each stage fills in its part and hands it on."""

    options: OptimizeOptions
    say: Log
    started: float = field(default_factory=time.perf_counter)
    enabled: frozenset[str] = frozenset()  # the passes selected (--passes, --skip)
    kernels: KernelSupport | None = None
    policy: Policy = field(default_factory=Policy)  # how the requested precision is judged
    model: LoadedModel | None = None
    feeds: Feeds | None = None          # None: --no-verify
    refs: References | None = None
    runtimes: list[str] = field(default_factory=lambda: list(RUNTIMES))
    endpoints: list[Endpoint] = field(default_factory=list)  # attribute endpoints to write
    precision: str = "fp32"              # requested for the passes ("auto": fp32, chosen later)
    int8: dict[str, Int8Plan] = field(default_factory=dict)  # per signature (--precision int8)
    work: str = ""                       # where candidates are written (a temporary path)
    chosen: Candidate | None = None      # the form kept so far (each choice may replace it)
    tried: list[Candidate] = field(default_factory=list)  # every candidate of every choice
    out: str = ""                        # where WRITE stages write (a temporary path)
    speed: dict[str, SpeedCheck] = field(default_factory=dict)  # per signature timed
    stored: dict[str, dict[str, int]] = field(default_factory=dict)  # weights in variables/
    xla_note: str = ""                   # what the XLA choice decided, for the report
    report: Report | None = None
    runtime_written: dict = field(default_factory=dict)  # --format litert/openvino: what ran

    def policy_in(self, precision: str) -> Policy:
        """The verification policy for a candidate computing in ``precision``: the
        requested precision's own (this model's), or its budget (or ``--tolerance``) with this
        model's outputs and task kept."""
        if precision == self.precision:
            return self.policy
        return self.policy.in_precision(precision, self.options.budget_for(precision))

    def driver(self, runtimes: list[str] | None = None) -> Driver:
        """The candidate driver over what the stages so far know (``runtimes``: where the
        candidates must run; None: as the target says)."""
        return Driver(self.model, self.kernels, self.feeds, self.refs,
                      self.options.graph_target, self.work, self.say, self.int8, runtimes,
                      self.policy_in)

    def note(self, tried: list[Candidate], notes: list[str]) -> None:
        """A choice's candidates and what it said, for the report; those not kept let go of
        their graphs and files."""
        for c in tried:
            c.measure_size()
        self.tried.extend(c for c in tried if all(c is not t for t in self.tried))
        self.model.notes.extend(n for n in notes if n not in self.model.notes)
        self.driver().discard([c for c in tried if c is not self.chosen])

    @property
    def optimized(self) -> dict[str, SignatureGraph]:
        """The kept candidate's signature graphs."""
        return self.chosen.sigs

    def write_generic(self, key: str, path: str) -> None:
        """Signature ``key`` through the float32 passes for ``--target generic`` (no
        ``_Fused*`` kernel a converter cannot read), written as a SavedModel at ``path``:
        tfopt's graph as a source for another runtime's converter."""
        drv = dataclasses.replace(self.driver(), kernels=KernelSupport("generic"))
        generic = drv.build(Recipe(self.chosen.recipe.enabled), "generic", "format")
        write_saved_model({key: generic.sigs[key]}, path, self.model.tags)


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
        graph = run_passes(sig.graph_def, pass_context(sig, state.kernels, "int8"),
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
        ctx = pass_context(sig, state.kernels, "int8", plan)
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


def build_passes(state: State) -> None:
    """The first candidate: the selected passes in the requested precision (``auto``:
    float32), over every distinct signature, identical results stored once."""
    recipe = Recipe(state.enabled, state.precision, fmt=_graph_format(state.options))
    state.chosen = state.driver().build(recipe, PRECISION_NAME[state.precision], "passes")
    state.note([], state.chosen.notes)


def choose_precision(state: State) -> None:
    """``--precision auto``: bf16 or int8 where accurate and measurably faster (see
    :mod:`tfopt.optimizer.precision`)."""
    if state.options.graph_precision != "auto":
        return
    from tfopt.optimizer import precision

    state.chosen, tried, notes = precision.choose(state.driver(), state.chosen)
    state.note(tried, notes)


def compile_xla(state: State) -> None:
    """``--xla on|auto``: the candidate with a compiled cluster (see
    :mod:`tfopt.optimizer.xla`)."""
    if state.options.xla_mode != "off":
        from tfopt.optimizer import xla

        state.chosen, tried, state.xla_note = xla.choose(state.driver(), state.chosen,
                                                         state.options.xla_mode)
        state.note(tried, [])


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
    state.runtimes = written.runtimes_for(state.options.graph_target, state.optimized,
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
    """Run the written model under each runtime; when a signature answers differently, the
    answers choice: the candidate whose passes for it run checked one application at a time
    (the culprit switched off) is built, written and verified in its place."""
    if state.feeds is None:
        return

    def check() -> written.Checks:
        return written.check_written(state.out, state.options.format, state.optimized,
                                   state.feeds, state.refs, state.chosen.policy,
                                   state.runtimes, state.say)

    def blame(keys: list[str]) -> None:
        failed = state.chosen  # listed under the choice that dropped it
        failed.choice = "answers"
        failed.drop("answers differently")
        recipe = dataclasses.replace(failed.recipe, xla="off", checked=frozenset(
            state.model.signatures[k].same_as or k for k in keys))
        state.chosen = state.driver(state.runtimes).build(
            recipe, f"{failed.name}, passes checked one by one", "answers")
        state.note([failed, state.chosen], state.chosen.notes)
        # The checked candidate has no compiled cluster (XLA is not chosen again).
        if failed.recipe.xla != "off":
            state.xla_note = ("xla: compiled cluster dropped: the model written with it did "
                              "not verify; written without it")

    def rewrite() -> None:
        remove(state.out)
        choose_runtimes(state)
        write_model(state)

    for key, checks in written.verify_with_blame(check, blame, rewrite, state.say).items():
        state.chosen.reports[key].checks = checks
    state.chosen.judge({k: r.checks for k, r in state.chosen.reports.items()})


def check_precision(state: State) -> None:
    """An explicit reduced precision that verification had to switch off is refused: the
    user asked for bf16 or int8, and a float32 model written under that name would mislead."""
    precision = state.options.graph_precision
    if precision not in PRECISION_PASS:
        return
    for key, report in state.chosen.reports.items():
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
        else:
            check = _batch_dependent(state, key, check)
        state.speed[key] = check


# Passes whose gain depends on the batch: kept only if the output without them is not
# measurably faster at the batch timed (--batch-size). loop_projection: one matmul over every
# step before the loop is 1.4x at batch 1; at batch 8 on 2 cores without oneDNN the per-step
# products it replaces had overlapped the recurrence on the idle core (0.91-0.95x).
BATCH_DEPENDENT = ("loop_projection",)


def _batch_dependent(state: State, key: str, check: SpeedCheck) -> SpeedCheck:
    """The speed choice's other half: the written model without each batch-dependent pass it
    used, timed against it at the batch timed; kept (written, verified, timed against the
    original) if measurably faster."""
    chosen = state.chosen
    passes = [name for name in BATCH_DEPENDENT if name in _passes_changed(chosen, key)]
    if not passes:
        return check
    drv = state.driver(state.runtimes)
    recipe = dataclasses.replace(chosen.recipe, enabled=chosen.recipe.enabled - set(passes),
                                 checked=frozenset())
    other = drv.build(recipe, f"{chosen.name} without {', '.join(passes)}", "speed")
    state.say(f"[{key}] timing the model without {', '.join(passes)} (its gain depends on "
              f"the batch) ...")
    chosen.path = chosen.path or state.out  # timed where it is written, not written again
    drv.time(chosen, [other], key)
    if not other.speed.ratio.faster:
        other.drop(f"not faster than with {', '.join(passes)} at this batch "
                   f"({other.speed.describe()})")
        state.note([other], [])
        return check
    chosen.choice, chosen.speed, chosen.against = "speed", check, "the original"
    chosen.drop(f"slower than without {', '.join(passes)} at this batch")
    state.chosen = other
    state.note([chosen, other], [*other.notes, f"[{key}] {', '.join(passes)} switched off: "
                                 f"without it the model ran {other.speed.describe()}"])
    return _write_chosen_again(state, key)


def _passes_changed(cand: Candidate, key: str) -> set[str]:
    """The passes that changed signature ``key``'s graph (a pass run inside bodies under the
    pass that ran it)."""
    return {rec.within or rec.name for rec in cand.reports[key].passes if rec.changed}


def _write_chosen_again(state: State, key: str) -> SpeedCheck:
    """The output rewritten from the chosen candidate, verified (the answers choice may put
    another in its place) and timed against the original again."""
    from tfopt.optimizer import speed

    remove(state.out)
    write_model(state)
    verify_written(state)
    again = speed.time_against(state.options.src, state.out, key, state.feeds[key], state.say)
    state.chosen.speed, state.chosen.against = again, "the original"
    return again


def _recover_speed(state: State, key: str, check: SpeedCheck) -> SpeedCheck:
    """The speed choice: the output of ``key`` is measurably slower than the original. The
    candidates are the passes up to a point (timed bisection finds the pass that makes it
    slower) and, kept, the chosen one without that pass, written and verified again; refused
    if the frozen graph alone is slower (confirmed by a second timing)."""
    from tfopt.optimizer import speed
    from tfopt.passes.registry import NAMES

    opts, slow = state.options, state.chosen
    drv = state.driver(state.runtimes)
    state.say(f"[{key}] the optimized model is slower than the original ({check.describe()}); "
              "timing the passes to find why ...")

    def slower_with(prefix: list[str]) -> bool:
        recipe = dataclasses.replace(slow.recipe, enabled=frozenset(prefix), xla="off",
                                     checked=frozenset())
        probe = drv.build(recipe, f"passes {', '.join(prefix) or '(none)'}", "speed")
        drv.time(opts.src, [probe], key, decide=False)
        state.say(f"  passes {', '.join(prefix) or '(none: frozen graph only)'}: "
                  f"{probe.speed.describe()}")
        probe.drop("a probe of the bisection (not verified)")
        state.note([probe], [])
        return probe.speed.slower

    changed = _passes_changed(slow, key)
    culprit = speed.first_slow([n for n in NAMES if n in changed], slower_with)
    if culprit is None:
        again = speed.time_against(opts.src, state.out, key, state.feeds[key], state.say)
        if again.slower:
            raise TfoptError(f"[{key}] the optimized model is slower than the original "
                             f"({check.describe()}; again {again.ratio.short()}), and so is "
                             "the frozen graph without any pass: nothing written, the original "
                             "is the faster model here (--no-time writes it anyway)")
        return again
    slow.choice, slow.speed, slow.against = "speed", check, "the original"
    slow.drop(f"slower than the original with pass {culprit}")
    recipe = dataclasses.replace(slow.recipe, enabled=slow.recipe.enabled - {culprit},
                                 checked=frozenset())
    state.chosen = drv.build(recipe, f"{slow.name} without {culprit}", "speed")
    state.note([slow, state.chosen],
               [*state.chosen.notes, f"[{key}] pass {culprit} switched off: with it the model "
                f"ran slower than the original ({check.describe()})"])
    return _write_chosen_again(state, key)


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
    chosen = state.chosen
    fused = fusion_names(fusions_in(s.graph_def for s in chosen.sigs.values()
                                    if not s.same_as))
    state.report = Report(opts.src, opts.dst, state.model.kind, chosen.reports,
                          True if verified else None, chosen.policy.tolerance,
                          time.perf_counter() - state.started, notes, opts.target,
                          state.runtimes, fused, [e.to_dict() for e in state.endpoints],
                          chosen.recipe.precision, dict(state.speed))
    state.report.output = dict(state.runtime_written)
    for c in state.tried:  # the kept form, written after its choice was made
        c.measure_size()
    state.report.candidates = [c.row(written=c is chosen) for c in state.tried]
    if opts.format == "saved_model" and verified:
        from tfopt.runtimes import installed

        if others := installed():
            notes.append(f"--format auto would also try {', '.join(others)} (installed here), "
                         "each verified and timed, and write the fastest verified form")
    if opts.format != "pb":
        write_metadata(state.out, state.report.metadata())


PRECISION_PASS = {"bf16": "reduced_precision", "int8": "quantize_int8"}
PRECISION_NAME = {"fp32": "float32", "bf16": "bf16", "int8": "int8"}

PREPARE: list[Stage] = [check_request, load, verification_inputs, original_answers, calibrate,
                        fit_int8_budget, build_passes, choose_precision, compile_xla,
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

    with tempfile.TemporaryDirectory(prefix="tfopt-candidates-") as state.work:
        for stage in PREPARE:
            step(stage)
        with atomic_output(options.dst, options.overwrite) as state.out:
            for stage in WRITE:
                step(stage)
    state.report.stages = costs
    return state.report


def _graph_format(options: OptimizeOptions) -> str:
    """How the graph candidates are written: as the output is ("pb"), else SavedModels (a
    runtime format converts from one)."""
    return "pb" if options.format == "pb" else "saved_model"
