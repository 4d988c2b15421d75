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
from dataclasses import dataclass

from tfopt.errors import TfoptError, VerificationError
from tfopt.model.paths import size_on_disk
from tfopt.options import RUNTIME_FORMATS
from tfopt.runtime import current_runtime, runtime_label
from tfopt.runtimes import default_threads, require
from tfopt.verify import isolate


@dataclass
class Converted:
    """One source converted for the runtime, and what became of it."""

    source: str          # "tfopt's graph" or "the original"
    fmt: str = ""        # the runtime format ("litert", "openvino")
    precision: str = "f32"  # what the runtime computes in ("bf16": OpenVINO's bf16 hint)
    label: str = ""      # the runtime that runs it (version, threads)
    path: str = ""       # the runtime's model directory ("" : not converted)
    why_not: str = ""    # why it was not converted or not verified
    worst: float = 0.0   # worst relative difference from the original's answers
    speed: object = None  # SpeedCheck against the original, when timed

    @property
    def name(self) -> str:
        return f"{self.fmt}{' ' + self.precision if self.precision != 'f32' else ''} from " \
               f"{self.source}"

    def row(self, written: bool = False) -> dict:
        """The candidate's line in the report's table (and tfopt.json's ``candidates``)."""
        speed = self.speed
        return {"candidate": self.name, "runtime": self.label, "verified": not self.why_not,
                "why_not": self.why_not, "worst": None if self.why_not else self.worst,
                "speedup": speed.ratio.value if speed else None,
                "interval": [speed.ratio.low, speed.ratio.high] if speed else None,
                "bytes": (size_on_disk(self.path)
                          if self.path and os.path.exists(self.path) else None),
                "written": written}

    def note(self) -> str:
        head = f"{self.name}: "
        if self.why_not:
            return head + self.why_not
        timed = f", {self.speed.describe()}" if self.speed is not None else ""
        size = f", {size_on_disk(self.path) / 1e6:.2f} MB" if os.path.exists(self.path) else ""
        return head + f"verified (worst relative difference {self.worst:.2e}){timed}{size}"


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


def _verify(candidate: Converted, fmt: str, key: str, state, threads: int) -> None:
    """Run in the runtime on the verification inputs, judged by the precision's budget."""
    got = isolate.run_in_runtime(candidate.path, fmt, {key: state.feeds[key]}, threads)
    if isinstance(got, isolate.ChildFailed):
        candidate.why_not = f"fails to run in the runtime ({got})"
        return
    policy = (state.policy if candidate.precision == "f32"
              else state.policy_in(candidate.precision))
    checks = state.refs.check(key, got[key], policy, current_runtime())
    bad = [c for c in checks if not c.ok]
    candidate.worst = max((c.rel for c in checks), default=0.0)
    if bad:
        candidate.why_not = f"answers differently: {bad[0].describe()}"


def _convert_all(state, fmt: str, sources: list[tuple[str, str]], key: str
                 ) -> list[Converted]:
    """Each source converted for runtime ``fmt`` and verified in it."""
    module = require(fmt)
    threads = default_threads()
    precisions = state.options.runtime_precisions(fmt)
    tried = []
    for name, src in sources:
        converted = Converted(name, fmt=fmt, label=module.label(threads))
        state.say(f"converting {name} for {converted.label} ...")
        try:
            slug = "original" if src == state.options.src else "tfopt"
            converted.path = os.path.join(os.path.dirname(state.out), f"{fmt}-{slug}")
            module.convert(src, key, converted.path)
        except TfoptError as err:
            converted.why_not, converted.path = f"not converted: {err}", ""
            tried.append(converted)
            continue
        for precision in precisions:  # one conversion, run in each precision asked for
            candidate = dataclasses.replace(converted, precision=precision,
                                            label=module.label(threads, precision))
            if precision != "f32":
                candidate.path = f"{converted.path}-{precision}"
                module.with_precision(converted.path, candidate.path, precision)
            tried.append(candidate)
            if state.feeds is not None:
                _verify(candidate, fmt, key, state, threads)
        if "f32" not in precisions:
            shutil.rmtree(converted.path)
    return tried


def _auto_candidates(state, original: list[tuple[str, str]], key: str) -> list[Converted]:
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
    """WRITE stage, ``--format litert|openvino|auto``: the candidates converted, verified and
    timed against the original in one run (``auto``: with the SavedModel, already checked
    for speed, timed beside them); the fastest verified one replaces the written SavedModel
    in the temporary output, unless (``auto``) the SavedModel is faster. Every candidate is
    noted with its verdict."""
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
    state.model.notes.extend(c.note() for c in tried if c.why_not)
    # the speed check's timing of the SavedModel (one distinct signature: one entry)
    saved = (next(iter(state.speed.values()), None)
             if opts.format == "auto" and "tf" in opts.runtime_choices else None)
    if not good and saved is None:
        reasons = "; ".join(c.note() for c in tried) or "no runtime installed"
        raise VerificationError(f"no verified {opts.format} model: {reasons}; nothing written")
    if opts.time and state.feeds is not None:
        saved = _time(good, key, state, saved)
    best = max(good, key=lambda c: c.speed.ratio.value if c.speed is not None else 0.0,
               default=None)
    if saved is not None and (best is None or best.speed is None
                              or best.speed.ratio.value <= saved.ratio.value):
        state.model.notes.extend(c.note() for c in good)
        state.model.notes.append(f"format auto: the SavedModel ({saved.describe()}) is the "
                                 "fastest verified form (written)")
        best = None
    else:
        state.model.notes.extend(c.note() + (" (written)" if c is best else "") for c in good)
        if saved is not None:
            state.model.notes.append(f"format auto: the SavedModel, {saved.describe()}")
    state.candidates = [c.row(written=c is best) for c in tried]
    if saved is not None:
        state.candidates.insert(0, _saved_row(state, saved, written=best is None))
    for c in good:
        if c is not best and os.path.isdir(c.path):
            shutil.rmtree(c.path)
    if best is not None and best.speed is not None and best.speed.slower:
        # as for a SavedModel: a slower model is a defect (OpenVINO ran the recurrent zoo
        # models at 0.46-0.65x the original here)
        raise VerificationError(
            f"the fastest verified {best.fmt} model is slower than the original "
            f"({best.speed.describe()}); nothing written: the original is the faster model to "
            "ship (or --format saved_model / auto)")
    if best is not None:
        _replace(state, best, key)


def _saved_row(state, saved, written: bool) -> dict:
    """``--format auto``: the SavedModel's line beside the runtimes' (verified before)."""
    worst = max((c.rel for r in state.reports.values() for c in r.checks), default=0.0)
    return {"candidate": f"SavedModel ({state.precision})",
            "runtime": f"TensorFlow {runtime_label(current_runtime())}", "verified": True,
            "why_not": "", "worst": worst, "speedup": saved.ratio.value,
            "interval": [saved.ratio.low, saved.ratio.high],
            "bytes": size_on_disk(state.out), "written": written}


def _replace(state, best: Converted, key: str) -> None:
    """The runtime model takes the SavedModel's place in the temporary output."""
    if best.speed is not None:
        state.speed = {key: best.speed}
    if best.precision != "f32":  # said as a reduced-precision SavedModel is, with its budget
        state.precision = best.precision
        state.policy = state.policy_in(best.precision)
    shutil.rmtree(state.out)
    os.rename(best.path, state.out)
    module = require(best.fmt)
    threads = default_threads()
    state.runtime_written = {"format": best.fmt, "runtime": best.label,
                             "version": module.available(), "threads": threads,
                             "source": best.source, "signature": key,
                             "precision": best.precision,
                             "worst": best.worst}


def _time(good: list[Converted], key: str, state, saved=None):
    """All verified candidates against the original in one interleaved run (one set of
    processes and blocks: their ratios are comparable, and it costs one timing); with
    ``saved`` (auto: the SavedModel's speed check) the SavedModel is timed in the same run,
    and its check from that run is returned."""
    from tfopt.optimizer import speed

    if not good:
        return saved
    paths = [c.path for c in good] + ([state.out] if saved is not None else [])
    names = [c.name for c in good] + (["the SavedModel"] if saved else [])
    state.say(f"timing {', '.join(names)} against the original ...")
    checks = speed.time_all_against(state.options.src, paths, key, state.feeds[key], state.say)
    for candidate, check in zip(good, checks[:len(good)], strict=True):
        candidate.speed = dataclasses.replace(
            check, runtime=f"{candidate.label} vs TensorFlow {runtime_label(current_runtime())}")
    return checks[-1] if saved is not None else None
