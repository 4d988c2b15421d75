"""``--format litert|openvino``: the model converted for another runtime, verified in that
runtime and timed against the original, from whichever source gives the faster verified
result.

Two sources are candidates: tfopt's own optimized graph (frozen, cleaned of training and debug
nodes, folded, with no resource variables, and no ``_Fused*`` kernel the converters cannot
read: the passes run with ``--target generic`` for these formats) and the original SavedModel.
Each is converted, run by the runtime in a child process on the verification inputs and
judged by the same :class:`~tfopt.verify.compare.Policy` against the original's answers; the
verified ones are timed against the original (interleaved blocks in fresh processes, as the
SavedModel's speed check) and the fastest is written. Every candidate gets a note: converted
or why not, verified or why not, its speed.
"""

from __future__ import annotations

import dataclasses
import os
import shutil

from tfopt.errors import TfoptError, VerificationError
from tfopt.optimizer.candidates import Candidate
from tfopt.options import RUNTIME_FORMATS
from tfopt.runtime import current_runtime, runtime_label
from tfopt.runtimes import default_threads, require
from tfopt.verify import isolate


def _name(fmt: str, precision: str, source: str) -> str:
    """``openvino bf16 from tfopt's graph``."""
    return f"{fmt}{' ' + precision if precision != 'fp32' else ''} from {source}"


def _hint(precision: str) -> str:
    """The runtime's spelling of a precision (OpenVINO's ``INFERENCE_PRECISION_HINT``)."""
    return "f32" if precision == "fp32" else precision


def _note(cand: Candidate, written: bool = False) -> str:
    head = f"{cand.name}: "
    if cand.why_not:
        return head + cand.why_not
    timed = f", {cand.speed.describe()}" if cand.speed is not None else ""
    cand.measure_size()  # the table's size column, taken at the same moment
    size = f", {cand.size / 1e6:.2f} MB" if cand.size is not None else ""
    return (head + f"verified (worst relative difference {cand.worst:.2e}){timed}{size}"
            + (" (written)" if written else ""))


def only_signature(state) -> str:
    """The one distinct signature a runtime model holds (a SavedModel's others would be lost:
    refused, naming them)."""
    keys = [k for k, s in state.optimized.items() if not s.same_as]
    if len(keys) != 1:
        raise TfoptError(f"--format {state.options.format} holds one signature; this model has "
                         f"{len(keys)} distinct ones ({', '.join(keys)}): choose one with "
                         "--signature")
    # Keras exports "serve" and "serving_default" over one graph: the serving name is kept
    same = [k for k, s in state.optimized.items() if k == keys[0] or s.same_as == keys[0]]
    return "serving_default" if "serving_default" in same else keys[0]


def _verify(cand: Candidate, key: str, state, threads: int) -> None:
    """Run in the runtime on the verification inputs, judged by the precision's budget."""
    got = isolate.run_in_runtime(cand.path, cand.recipe.fmt, {key: state.feeds[key]}, threads)
    if isinstance(got, isolate.ChildFailed):
        cand.drop(f"fails to run in the runtime ({got})")
        return
    cand.judge({key: state.refs.check(key, got[key], cand.policy, current_runtime())})


def _convert_all(state, fmt: str, sources: list[tuple[str, str]], key: str
                 ) -> list[Candidate]:
    """Each source converted for runtime ``fmt`` and verified in it."""
    module = require(fmt)
    threads = default_threads()
    precisions = ["fp32" if p == "f32" else p for p in state.options.runtime_precisions(fmt)]
    tried = []
    for name, src in sources:
        converted = dataclasses.replace(
            state.chosen, name=_name(fmt, "fp32", name), choice="format",
            recipe=dataclasses.replace(state.chosen.recipe, fmt=fmt, source=name,
                                       precision="fp32"),
            policy=state.policy_in("fp32"), runtime=module.label(threads), checks=None,
            worst=None, speed=None, why_not="", notes=[])
        state.say(f"converting {name} for {converted.runtime} ...")
        try:
            slug = "original" if src == state.options.src else "tfopt"
            converted.path = os.path.join(os.path.dirname(state.out), f"{fmt}-{slug}")
            module.convert(src, key, converted.path)
        except TfoptError as err:
            converted.why_not, converted.path = f"not converted: {err}", ""
            tried.append(converted)
            continue
        for precision in precisions:  # one conversion, run in each precision asked for
            cand = dataclasses.replace(
                converted, name=_name(fmt, precision, name),
                recipe=dataclasses.replace(converted.recipe, precision=precision),
                policy=state.policy_in(precision), runtime=module.label(threads, _hint(precision)))
            if precision != "fp32":
                cand.path = f"{converted.path}-{precision}"
                module.with_precision(converted.path, cand.path, precision)
            tried.append(cand)
            if state.feeds is not None:
                _verify(cand, key, state, threads)
        if "fp32" not in precisions:
            shutil.rmtree(converted.path)
    return tried


def _auto_candidates(state, original: list[tuple[str, str]], key: str) -> list[Candidate]:
    """``--format auto``: each runtime's converter reads the original (the SavedModel written
    carries fused kernels converters cannot read, and converting from tfopt's generic graph
    instead measured within 1-2% of it, MobileNetV2 on OpenVINO); where the original cannot
    be converted or verified in a runtime (debug ops that need Select TF ops, resource
    variables, a frozen .pb), tfopt's graph for ``--target generic`` is tried in its place."""
    generic = os.path.join(os.path.dirname(state.out), "generic-graph")
    tried = []
    for fmt in [f for f in state.options.runtime_choices if f in RUNTIME_FORMATS]:
        candidates = _convert_all(state, fmt, original, key)
        if all(c.why_not for c in candidates):
            if not os.path.exists(generic):
                state.say("building tfopt's graph for the converters (--target generic) ...")
                state.write_generic(key, generic)
            candidates += _convert_all(state, fmt, [("tfopt's graph", generic)], key)
        tried += candidates
    return tried


def to_runtime(state) -> None:
    """WRITE stage, the format choice (``--format litert|openvino|auto``): the candidates
    converted, verified and timed against the original in one run (``auto``: with the
    SavedModel, already checked for speed, timed beside them); the fastest verified one
    replaces the written SavedModel in the temporary output, unless (``auto``) the SavedModel
    is faster. Every candidate is noted with its verdict."""
    from tfopt.model.formats import detect

    opts = state.options
    if opts.format not in (*RUNTIME_FORMATS, "auto"):
        return
    key = only_signature(state)
    original = [("the original", opts.src)] if detect(opts.src).loads_by_path else []
    if opts.format == "auto":
        tried = _auto_candidates(state, original, key)
    else:
        tried = _convert_all(state, opts.format, [("tfopt's graph", state.out), *original], key)
    good = [c for c in tried if not c.why_not]
    notes = [_note(c) for c in tried if c.why_not]
    # the SavedModel as the speed check timed it (one distinct signature: one entry)
    saved = (_saved(state, next(iter(state.speed.values())))
             if state.speed and opts.format == "auto" and "tf" in opts.runtime_choices
             else None)
    if not good and saved is None:
        reasons = "; ".join(_note(c) for c in tried) or "no runtime installed"
        raise VerificationError(f"no verified {opts.format} model: {reasons}; nothing written")
    if opts.time and state.feeds is not None:
        _time(good, key, state, saved)
    best = max([*good, *([saved] if saved else [])],
               key=lambda c: c.speed.ratio.value if c.speed is not None else 0.0)
    notes += [_note(c, written=c is best and best is not saved) for c in good]
    if saved is not None:
        notes.append(f"format auto: the SavedModel ({saved.speed.describe()}) is the fastest "
                     "verified form (written)" if best is saved
                     else f"format auto: the SavedModel, {saved.speed.describe()}")
    state.chosen = best
    state.note(([saved] if saved else []) + tried, notes)
    for c in good:
        if c is not best and os.path.isdir(c.path):
            shutil.rmtree(c.path)
    if best is not saved and best.speed is not None and best.speed.slower:
        # as for a SavedModel: a slower model is a defect (OpenVINO ran the recurrent zoo
        # models at 0.46-0.65x the original here)
        raise VerificationError(
            f"the fastest verified {best.recipe.fmt} model is slower than the original "
            f"({best.speed.describe()}); nothing written: the original is the faster model to "
            "ship (or --format saved_model / auto)")
    if best is not saved:
        _replace(state, best, key)


def _saved(state, check) -> Candidate:
    """``--format auto``: the SavedModel as a candidate beside the runtimes' (verified and
    timed before)."""
    chosen = state.chosen
    return dataclasses.replace(
        chosen, name=f"SavedModel ({chosen.recipe.precision})", choice="format",
        runtime=f"TensorFlow {runtime_label(current_runtime())}", path=state.out, speed=check,
        against="the original")


def _replace(state, best: Candidate, key: str) -> None:
    """The runtime model takes the SavedModel's place in the temporary output."""
    if best.speed is not None:
        state.speed = {key: best.speed}
    shutil.rmtree(state.out)
    os.rename(best.path, state.out)
    best.path = state.out
    module = require(best.recipe.fmt)
    state.runtime_written = {"format": best.recipe.fmt, "runtime": best.runtime,
                             "version": module.available(), "threads": default_threads(),
                             "source": best.recipe.source, "signature": key,
                             "precision": _hint(best.recipe.precision), "worst": best.worst}


def _time(good: list[Candidate], key: str, state, saved: Candidate | None = None) -> None:
    """All verified candidates against the original in one interleaved run (one set of
    processes and blocks: their ratios are comparable, and it costs one timing); with
    ``saved`` (auto: the SavedModel, checked for speed before) the SavedModel is timed in the
    same run, and its speed taken from that run."""
    from tfopt.optimizer import speed

    timed = good + ([saved] if saved is not None else [])
    if not good:
        return
    state.say(f"timing {', '.join(c.name for c in timed)} against the original ...")
    checks = speed.time_all_against(state.options.src, [c.path for c in timed], key,
                                    state.feeds[key], state.say)
    for cand, check in zip(timed, checks, strict=True):
        cand.speed, cand.against = check, "the original"
        if cand is not saved:
            cand.speed = dataclasses.replace(
                check, runtime=f"{cand.runtime} vs TensorFlow {runtime_label(current_runtime())}")
