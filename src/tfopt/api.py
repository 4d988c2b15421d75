"""``tfopt.optimize``: load, freeze, run the passes, verify against the original, save."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from tfopt import isolate
from tfopt.checking import References, SignatureVerifier
from tfopt.errors import TfoptError, VerificationError, first_line
from tfopt.graph import function_nodes, op_counts
from tfopt.kernels import KernelSupport, fusion_names, fusions_in, runtimes_running
from tfopt.loader import load_model
from tfopt.model import LoadedModel, SignatureGraph
from tfopt.passes import PassContext
from tfopt.pipeline import Log, PassRecord, run_checked, run_passes, select_passes
from tfopt.runtime import RUNTIMES, current_runtime, runtime_label
from tfopt.saver import (
    atomic_output,
    check_output_path,
    write_graph_def,
    write_metadata,
    write_saved_model,
)
from tfopt.verify import (
    DEFAULT_TOLERANCE,
    OutputCheck,
    check_shape_names,
    input_hints,
    load_inputs,
    make_inputs,
    parse_shapes,
)


@dataclass
class SignatureReport:
    key: str
    nodes_before: int
    nodes_after: int
    ops_before: dict[str, int]
    ops_after: dict[str, int]
    passes: list[PassRecord]
    checks: list[OutputCheck] = field(default_factory=list)
    same_as: str | None = None  # optimized once, with this identical signature
    function_nodes_before: int = 0  # nodes inside the function library (If/While bodies...)
    function_nodes_after: int = 0

    def to_dict(self) -> dict:
        return {"key": self.key, "same_as": self.same_as, "nodes_before": self.nodes_before,
                "function_nodes_before": self.function_nodes_before,
                "function_nodes_after": self.function_nodes_after,
                "nodes_after": self.nodes_after, "ops_before": self.ops_before,
                "ops_after": self.ops_after, "passes": [p.to_dict() for p in self.passes],
                "checks": [c.to_dict() for c in self.checks]}


@dataclass
class Report:
    """What ``optimize`` did: per signature, per pass, and the verification verdict."""

    src: str
    dst: str
    kind: str
    signatures: dict[str, SignatureReport]
    verified: bool | None  # None: --no-verify
    tolerance: float
    seconds: float
    notes: list[str] = field(default_factory=list)
    target: str = "portable"
    runtimes: list[str] = field(default_factory=list)  # CPU runtimes the output runs under
    fused_kernels: dict[str, int] = field(default_factory=dict)

    @property
    def worst(self) -> OutputCheck | None:
        checks = [c for s in self.signatures.values() for c in s.checks]
        return max(checks, key=lambda c: c.rel) if checks else None

    def summary(self) -> str:
        """One line: node counts, signatures kept, verification verdict, time."""
        unique = [s for s in self.signatures.values() if not s.same_as]
        before = sum(s.nodes_before for s in unique)
        after = sum(s.nodes_after for s in unique)
        if self.verified is None:
            verdict = "not verified (--no-verify)"
        else:
            worst = self.worst
            where = " and ".join(runtime_label(r) for r in self.runtimes)
            verdict = (f"verified ({where}): worst relative difference {worst.rel:.2e} "
                       f"(tolerance {self.tolerance:g})" if worst else "verified")
        return (f"{self.dst}: {before} -> {after} nodes, signatures "
                f"{', '.join(self.signatures)}; {verdict}; {self.seconds:.1f}s")

    def table(self) -> str:
        """Per signature: what each pass did (pipeline order) and each output's check."""
        lines = []
        for key, sig in self.signatures.items():
            if sig.same_as:
                lines.append(f"signature {key}: same graph as {sig.same_as} (optimized once)")
                continue
            lines.append(f"signature {key}: main graph {sig.nodes_before} -> {sig.nodes_after} "
                         f"nodes, function library {sig.function_nodes_before} -> "
                         f"{sig.function_nodes_after} nodes")
            for rec in sig.passes:
                if rec.changed or rec.skipped:
                    status = (f"SKIPPED ({rec.skipped})" if rec.skipped else
                              rec.delta_text() or "; ".join(rec.notes))
                    lines.append(f"  {rec.name:<18} {rec.node_delta:>+7} nodes  "
                                 f"{rec.seconds:6.2f}s  {status}")
            for check in sig.checks:
                lines.append(f"  output {check.describe()}")
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        worst = self.worst
        return (f"<Report {self.src!r} -> {self.dst!r}: {len(self.signatures)} signature(s), "
                f"verified={self.verified}, worst_rel={worst.rel if worst else None!r}, "
                f"target={self.target!r}>")

    def metadata(self) -> dict:
        """What the model directory's ``tfopt.json`` says: where the model runs, and why."""
        from tfopt import __version__
        from tfopt.runtime import describe

        only = [r for r in RUNTIMES if r not in self.runtimes]
        return {"tfopt": __version__, "target": self.target, "runtimes": self.runtimes,
                "requires": (f"TF_ENABLE_ONEDNN_OPTS={RUNTIMES[self.runtimes[0]]} "
                             f"({runtime_label(self.runtimes[0])})" if only else None),
                "verified": self.verified, "fused_kernels": self.fused_kernels,
                "signatures": sorted(self.signatures), "written_on": describe()}

    def to_dict(self) -> dict:
        return {"src": self.src, "dst": self.dst, "kind": self.kind, "verified": self.verified,
                "tolerance": self.tolerance, "seconds": round(self.seconds, 3),
                "notes": self.notes, "target": self.target, "runtimes": self.runtimes,
                "fused_kernels": self.fused_kernels,
                "signatures": {k: s.to_dict() for k, s in self.signatures.items()}}


def _feeds(model: LoadedModel, inputs_file: str | None, shapes, batch_size: int,
           int_range) -> dict[str, dict[str, np.ndarray]]:
    """Verification inputs per signature: from ``inputs_file``, or generated to be valid for
    the graph (see :func:`tfopt.verify.input_hints`). What was assumed goes to model.notes."""
    if not inputs_file:
        check_shape_names(shapes, {k for s in model.signatures.values() for k in s.inputs})
    feeds: dict[str, dict[str, np.ndarray]] = {}
    described: dict[str, str] = {}
    for key, sig in model.signatures.items():
        if sig.same_as in feeds:
            feeds[key] = feeds[sig.same_as]
        elif inputs_file:
            feeds[key] = load_inputs(inputs_file, sig.inputs)
        else:
            relevant = {k: v for k, v in shapes.items() if k in sig.inputs}
            notes: list[str] = []
            feeds[key] = make_inputs(sig.inputs, batch_size, relevant, int_range,
                                     hints=input_hints(sig), notes=notes)
            for note in notes:
                described.setdefault(note.split(" ", 1)[0], note)
    if described:
        model.notes.append("verification inputs: " + "; ".join(described.values()))
    return feeds


def _reference(model: LoadedModel, key: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    try:
        return model.reference(key, feeds)
    except Exception as err:
        raise TfoptError(f"the original model fails on the generated inputs of signature "
                         f"{key!r}: {first_line(err)} (give inputs with --inputs-file, --input-shape or "
                         "--int-range)") from None


def _context(sig: SignatureGraph, kernels: KernelSupport | None) -> PassContext:
    # Only declared shapes are used by passes (never the verification feeds): nothing may be
    # specialised to the batch size that happened to be verified.
    return PassContext(protected=sig.protected_nodes, outputs=sig.output_tensors,
                       inputs=[t.tensor for t in sig.inputs.values()],
                       init_ops=list(sig.init_ops), kernels=kernels)


def _write(sigs: dict[str, SignatureGraph], path: str, fmt: str, tags) -> None:
    if fmt == "pb":
        write_graph_def(sigs, path)
    else:
        write_saved_model(sigs, path, tags)


def _run_output(path: str, fmt: str, sigs: dict[str, SignatureGraph], feeds,
                runtimes: list[str]) -> dict:
    """Run the written model in one child process per runtime (see tfopt.isolate)."""
    feeds = {key: feeds[key] for key in sigs}
    if fmt == "pb":
        return isolate.run_graph_def_under(sigs, feeds, runtimes)
    return isolate.run_saved_model_under(path, feeds, runtimes)


def _normalise_shapes(input_shapes) -> dict[str, tuple[int, ...]]:
    """``{"x": (1, 224, 224, 3)}`` as given, or the CLI's ``["x=1,224,224,3"]``."""
    if not input_shapes:
        return {}
    if isinstance(input_shapes, Mapping):
        try:
            return {str(k): tuple(int(d) for d in v) for k, v in input_shapes.items()}
        except (TypeError, ValueError):
            raise TfoptError("input_shapes: expected {name: (d1, d2, ...)} with integer "
                             "dimensions") from None
    return parse_shapes(list(input_shapes))


def _check_shape_names(src: str, shapes: dict, signatures: list[str] | None) -> None:
    """Input names in ``input_shapes`` must exist; SavedModels say so before loading."""
    from tfopt.loader import detect_kind, read_saved_model_proto, signature_input_keys

    if not shapes or detect_kind(src) != "saved_model":
        return
    per_sig = signature_input_keys(read_saved_model_proto(src))
    known = {k for key, names in per_sig.items() if not signatures or key in signatures
             for k in names}
    if known:
        check_shape_names(shapes, known)


def optimize(src: str, dst: str, *, signatures: str | Sequence[str] | None = None,
             inputs: str | Sequence[str] | None = None,
             outputs: str | Sequence[str] | None = None,
             passes: Sequence[str] | None = None, skip: Sequence[str] | None = None,
             verify: bool = True, tolerance: float = DEFAULT_TOLERANCE,
             input_shapes: Mapping[str, Sequence[int]] | Sequence[str] | None = None,
             inputs_file: str | None = None, batch_size: int = 1,
             int_range: tuple[int, int] | None = None, format: str = "saved_model",
             target: str = "portable", xla: str = "off", overwrite: bool = False,
             log: Log | None = None) -> Report:
    """Optimize the model at ``src`` for inference, verify it, and write it to ``dst``.

    Parameters mirror ``tfopt optimize`` (same names, ``-`` as ``_``):

    src, dst: a SavedModel directory (TF2 or TF1), frozen ``.pb``/``.pbtxt`` or ``.keras``
        file; ``dst`` is written atomically (parent directories are created).
    signatures: signature keys to keep (default: all of them).
    inputs, outputs: node names for a bare GraphDef (default: placeholders / sinks).
    passes, skip: run only / skip these passes (``tfopt passes`` lists them).
    verify: compare the written model with the original on the same inputs (default on),
        under both CPU runtimes (oneDNN on and off).
    tolerance: allowed ``max|optimized - original| / max|original|`` per float output.
    input_shapes: shapes for inputs with unknown dimensions, ``{"images": (1, 224, 224, 3)}``.
    inputs_file: ``.npz`` of real inputs keyed by input name (overrides generated ones).
    batch_size: batch size of generated inputs.
    int_range: ``(low, high)`` for generated integer inputs; default: derived from the graph
        (embedding table sizes, one-hot depths), else ``(0, 10)``.
    format: ``"saved_model"`` or ``"pb"`` (a frozen GraphDef).
    target: ``"portable"`` (runs with oneDNN on and off), ``"native"`` (may use fused
        kernels only this machine's runtime has; recorded in ``tfopt.json``) or ``"generic"``
        (public ops only).
    xla: ``"off"`` (default), ``"auto"`` (compile the convolution-free part with XLA, keep it
        only if the timed model is measurably faster) or ``"on"`` (keep it without timing).
    overwrite: replace ``dst`` if it exists.
    log: called with progress lines (e.g. ``print``).

    Returns a :class:`Report` (``str(report)`` is the CLI's summary, ``report.to_dict()`` the
    JSON). Raises :class:`TfoptError` for bad input, :class:`VerificationError` when no
    correct optimized model could be produced (nothing is written then).

    Example::

        report = tfopt.optimize("resnet50", "resnet50_fast", input_shapes={"x": (1, 224, 224, 3)})
        print(report)
    """
    start = time.perf_counter()
    if format not in ("saved_model", "pb"):
        raise TfoptError(f"unknown format {format!r} (saved_model or pb)")
    if xla not in ("off", "auto", "on"):
        raise TfoptError(f"unknown xla mode {xla!r} (off, auto or on)")
    if xla == "auto" and not verify:
        raise TfoptError("--xla auto times the model on the verification inputs; it cannot "
                         "go with --no-verify (use --xla on)")
    enabled = select_passes(list(passes or []), list(skip or []))
    kernels = KernelSupport(target)  # checks the target name before any work
    check_output_path(dst, overwrite, src)
    shapes = _normalise_shapes(input_shapes)
    if isinstance(signatures, str):
        signatures = [signatures]
    signatures = list(signatures) if signatures else None
    _check_shape_names(src, shapes, signatures)
    say = log or (lambda _msg: None)
    loaded_at = time.perf_counter()
    model = load_model(src, signatures, inputs, outputs)
    feeds = refs = None
    if verify:
        feeds = _feeds(model, inputs_file, shapes, batch_size, int_range)
    say(f"loaded and froze {src} ({model.kind}; signatures {', '.join(model.signatures)}) in "
        f"{time.perf_counter() - loaded_at:.1f}s")
    if verify:
        refs = References(model, feeds, {key: _reference(model, key, feeds[key])
                                         for key in model.signatures})
    if format == "pb" and len(model.signatures) > 1:
        say("several signatures go into one GraphDef, each under its own name scope")

    optimized: dict[str, SignatureGraph] = {}
    reports: dict[str, SignatureReport] = {}
    runtimes = list(RUNTIMES)

    def optimize_signature(sig: SignatureGraph, checked: bool) -> None:
        ctx = _context(sig, kernels)
        unique = [s for s in model.signatures.values() if not s.same_as]
        label = f"[{sig.key}] " if len(unique) > 1 else ""
        if checked:  # after a failed verification: every pass application checked
            verifier = SignatureVerifier(sig, feeds[sig.key], refs, tolerance, runtimes)
            result = run_checked(sig.graph_def, ctx, enabled, verifier, say, label)
        else:
            result = run_passes(sig.graph_def, ctx, enabled, None, say, label)
        graph_def, records = result.graph_def, result.records
        if not result.converged:
            model.notes.append(f"[{sig.key}] the passes found no fixed point in "
                               f"{result.iterations} rounds (the result is still verified)")
        optimized[sig.key] = sig.with_graph(graph_def)
        reports[sig.key] = SignatureReport(sig.key, len(sig.graph_def.node), len(graph_def.node),
                                           op_counts(sig.graph_def), op_counts(graph_def),
                                           records, function_nodes_before=function_nodes(
                                               sig.graph_def),
                                           function_nodes_after=function_nodes(graph_def))
        for twin in model.signatures.values():
            if twin.same_as == sig.key:
                optimized[twin.key] = twin.with_graph(graph_def)
                reports[twin.key] = dataclasses.replace(reports[sig.key], key=twin.key,
                                                        same_as=sig.key)

    for sig in model.signatures.values():
        if not sig.same_as:
            optimize_signature(sig, checked=False)
    optimized = {key: optimized[key] for key in model.signatures}
    _share_identical(optimized, reports)
    if xla != "off":
        optimized = _with_xla(optimized, xla, model, feeds, say, model.notes)
    runtimes = _runtimes_for(target, optimized, refs)

    notes: list[str] = list(model.notes)
    with atomic_output(dst, overwrite) as tmp:
        where = " and ".join(runtime_label(r) for r in runtimes)
        say("writing the optimized model" + (f" and running it ({where}) ..." if verify
                                               else " ..."))
        _write(optimized, tmp, format, model.tags)
        if verify:
            failing = _verify(tmp, format, optimized, feeds, refs, tolerance, reports, runtimes)
            if failing:
                failing = list(dict.fromkeys(model.signatures[k].same_as or k for k in failing))
                say(f"verification failed for {', '.join(failing)}; finding the offending pass")
                for key in failing:
                    optimize_signature(model.signatures[key], checked=True)
                    skipped = [r for r in reports[key].passes if r.skipped]
                    for rec in skipped:
                        notes.append(f"[{key}] pass {rec.name} skipped: {rec.skipped}")
                _remove_tree(tmp)
                optimized = {key: optimized[key] for key in model.signatures}
                runtimes = _runtimes_for(target, optimized, refs)
                _write(optimized, tmp, format, model.tags)
                still = _verify(tmp, format, optimized, feeds, refs, tolerance, reports, runtimes)
                if still:
                    worst = [c.describe() for k in still for c in reports[k].checks if not c.ok]
                    raise VerificationError("optimized model differs from the original and no "
                                            f"pass could be blamed: {worst[0]}; nothing written")
        if verify:
            notes += refs.notes
        report = Report(src, dst, model.kind, reports, True if verify else None, tolerance,
                        time.perf_counter() - start, notes, target, runtimes,
                        fusion_names(fusions_in(
                            s.graph_def for s in optimized.values() if not s.same_as)))
        if format == "saved_model":
            write_metadata(tmp, report.metadata())
    return report


def _with_xla(sigs: dict[str, SignatureGraph], mode: str, model: LoadedModel, feeds, say,
              notes: list[str]) -> dict[str, SignatureGraph]:
    """Outline each signature's XLA cluster; with ``auto`` keep it only if timing the written
    model with and without it shows a gain whose interval excludes 1.0."""
    import tempfile

    from tfopt import xla

    candidate = dict(sigs)
    outlined = []
    for key, sig in sigs.items():
        if sig.same_as:
            continue
        new = xla.outline(sig)
        if new is not None:
            candidate[key] = new
            outlined.append(key)
    for key, sig in sigs.items():
        if sig.same_as in outlined:
            candidate[key] = sig.with_graph(candidate[sig.same_as].graph_def)
    if not outlined:
        notes.append("xla: no cluster worth compiling (convolutions come first, or too small)")
        return sigs
    if mode == "on":
        notes.append(f"xla: compiled cluster in {', '.join(outlined)} (not timed: --xla on)")
        return candidate
    from tfopt.benchmark import Settings, benchmark

    key = outlined[0]
    say(f"xla: timing {key} with and without its compiled cluster ...")
    with tempfile.TemporaryDirectory(prefix="tfopt-xla-") as tmp:
        plain, compiled = os.path.join(tmp, "plain"), os.path.join(tmp, "xla")
        write_saved_model({key: sigs[key]}, plain, model.tags)
        write_saved_model({key: candidate[key]}, compiled, model.tags)
        inputs = os.path.join(tmp, "inputs.npz")
        np.savez(inputs, **feeds[key])
        # 5 rounds: with fewer, one disturbed round decides the interval on a busy machine.
        result = benchmark([plain, compiled], Settings(num_iter=40, num_warmup=3, rounds=5,
                                                       signature=key, inputs_file=inputs))
    timed = result.models[1].interval()
    verdict = timed.short()
    if timed.faster:
        notes.append(f"xla: compiled cluster kept, {verdict} faster than without")
        return candidate
    notes.append(f"xla: compiled cluster not kept ({verdict}: no measurable gain)")
    return sigs


def _share_identical(sigs: dict[str, SignatureGraph], reports: dict[str, SignatureReport]) -> None:
    """Signatures that froze differently (function names differ per trace) but optimize to
    the same graph are stored once: mark the later ones ``same_as`` the first."""
    from tfopt.loader import mark_identical

    before = {k: s.same_as for k, s in sigs.items()}
    mark_identical(sigs)
    for key, sig in sigs.items():
        if sig.same_as and not before[key]:
            reports[key].same_as = sig.same_as


def _runtimes_for(target: str, sigs: dict[str, SignatureGraph],
                  refs: References | None) -> list[str]:
    """Where the output must run: both CPU runtimes, unless ``native`` emitted a fusion only
    this runtime has (then this runtime, and the other only if it runs every fusion too) or
    the original itself cannot run under the other (a GPU-era NCHW pooling under Eigen)."""
    if target != "native":
        return list(RUNTIMES)
    running = runtimes_running(fusions_in(s.graph_def for s in sigs.values()))
    running = running if current_runtime() in running else [current_runtime()]
    kept = []
    for runtime in running:
        why = refs.failure_under(runtime) if refs is not None else None
        if why is None:
            kept.append(runtime)
            continue
        note = (f"the original itself fails under {runtime_label(runtime)} ({why}): the "
                f"output is verified and recorded for {runtime_label(current_runtime())} only")
        if note not in refs.notes:
            refs.notes.append(note)
    return kept


def _verify(path, fmt, sigs, feeds, refs, tolerance, reports, runtimes) -> list[str]:
    """Run the written model under every runtime; per signature, all must answer alike."""
    runs = _run_output(path, fmt, sigs, feeds, runtimes)
    failing = []
    for key in sigs:
        checks = []
        for runtime in runtimes:
            got = runs[runtime]
            if isinstance(got, isolate.ChildFailed):
                if why := refs.failure_under(runtime):
                    raise TfoptError(
                        f"the original model itself fails under {runtime_label(runtime)} "
                        f"({why}), so no optimized form of it can run there; --target native "
                        "optimizes for this machine's runtime "
                        f"({runtime_label(current_runtime())}) only; nothing written")
                checks.append(OutputCheck("(all outputs)", False, float("inf"), float("inf"),
                                          str(got), runtime))
                continue
            for check in refs.check(key, got[key], tolerance, runtime):
                check.runtime = runtime
                checks.append(check)
        reports[key].checks = checks
        if not all(c.ok for c in checks):
            failing.append(key)
    return failing


def _remove_tree(path: str) -> None:
    import shutil

    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)
