"""``tfopt.optimize``: load, freeze, run the passes, verify against the original, save."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from tfopt import isolate
from tfopt.errors import TfoptError, VerificationError, first_line
from tfopt.graph import op_counts
from tfopt.kernels import KernelSupport
from tfopt.loader import load_model
from tfopt.model import LoadedModel, SignatureGraph
from tfopt.passes import PassContext
from tfopt.pipeline import Log, PassRecord, run_passes, select_passes
from tfopt.saver import atomic_output, check_output_path, write_graph_def, write_saved_model
from tfopt.verify import (
    DEFAULT_INT_RANGE,
    DEFAULT_TOLERANCE,
    OutputCheck,
    compare,
    load_inputs,
    make_inputs,
    parse_shapes,
    run_graph_def,
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

    def to_dict(self) -> dict:
        return {"key": self.key, "nodes_before": self.nodes_before,
                "nodes_after": self.nodes_after, "ops_before": self.ops_before,
                "ops_after": self.ops_after, "passes": [p.to_dict() for p in self.passes],
                "checks": [c.__dict__ for c in self.checks]}


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

    @property
    def worst(self) -> OutputCheck | None:
        checks = [c for s in self.signatures.values() for c in s.checks]
        return max(checks, key=lambda c: c.rel) if checks else None

    def summary(self) -> str:
        before = sum(s.nodes_before for s in self.signatures.values())
        after = sum(s.nodes_after for s in self.signatures.values())
        if self.verified is None:
            verdict = "not verified (--no-verify)"
        else:
            worst = self.worst
            verdict = (f"verified: worst relative difference {worst.rel:.2e} "
                       f"(tolerance {self.tolerance:g})" if worst else "verified")
        return (f"{self.dst}: {before} -> {after} nodes "
                f"({len(self.signatures)} signature{'s' if len(self.signatures) != 1 else ''}), "
                f"{verdict}, {self.seconds:.1f}s")

    def to_dict(self) -> dict:
        return {"src": self.src, "dst": self.dst, "kind": self.kind, "verified": self.verified,
                "tolerance": self.tolerance, "seconds": round(self.seconds, 3),
                "notes": self.notes,
                "signatures": {k: s.to_dict() for k, s in self.signatures.items()}}


def _feeds(model: LoadedModel, inputs_file: str | None, shapes, batch_size: int,
           int_range) -> dict[str, dict[str, np.ndarray]]:
    known = {k for s in model.signatures.values() for k in s.inputs}
    unknown = set(shapes) - known
    if unknown and not inputs_file:
        raise TfoptError(f"--input-shape names unknown input(s) {', '.join(sorted(unknown))} "
                         f"(inputs: {', '.join(sorted(known))})")
    feeds = {}
    for key, sig in model.signatures.items():
        if inputs_file:
            feeds[key] = load_inputs(inputs_file, sig.inputs)
        else:
            relevant = {k: v for k, v in shapes.items() if k in sig.inputs}
            feeds[key] = make_inputs(sig.inputs, batch_size, relevant, int_range)
    return feeds


def _reference(model: LoadedModel, key: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    try:
        return model.reference(key, feeds)
    except Exception as err:
        raise TfoptError(f"the original model fails on the generated inputs of signature "
                         f"{key!r}: {first_line(err)} (give inputs with --inputs-file, --input-shape or "
                         "--int-range)") from None


def _context(sig: SignatureGraph, portable: bool, kernels: KernelSupport) -> PassContext:
    # Only declared shapes are used by passes (never the verification feeds): nothing may be
    # specialised to the batch size that happened to be verified.
    return PassContext(protected=sig.protected_nodes, outputs=sig.output_tensors,
                       inputs=[t.tensor for t in sig.inputs.values()], portable=portable,
                       init_ops=list(sig.init_ops), kernels=kernels)


def _write(sigs: dict[str, SignatureGraph], path: str, fmt: str, tags) -> None:
    if fmt == "pb":
        write_graph_def(sigs, path)
    else:
        write_saved_model(sigs, path, tags)


def _run_output(path: str, fmt: str, sig: SignatureGraph, feeds) -> dict[str, np.ndarray]:
    """Run the written model in a child process (see tfopt.isolate)."""
    if fmt == "pb":
        return isolate.run_graph_def(sig, feeds)
    return isolate.run_saved_model(path, sig.key, feeds)


def optimize(src: str, dst: str, *, signature: str | None = None, all_signatures: bool = False,
             inputs: str | list[str] | None = None, outputs: str | list[str] | None = None,
             passes: list[str] | None = None, skip: list[str] | None = None,
             verify: bool = True, tolerance: float = DEFAULT_TOLERANCE,
             input_shapes: list[str] | None = None, inputs_file: str | None = None,
             batch_size: int = 1, int_range: tuple[int, int] = DEFAULT_INT_RANGE,
             fmt: str = "saved_model", portable: bool = False, overwrite: bool = False,
             log: Log | None = None) -> Report:
    """Optimize the model at ``src`` into ``dst``; see ``tfopt optimize --help``."""
    start = time.perf_counter()
    if fmt not in ("saved_model", "pb"):
        raise TfoptError(f"unknown format {fmt!r} (saved_model or pb)")
    enabled = select_passes(passes, skip)
    check_output_path(dst, overwrite, src)
    shapes = parse_shapes(input_shapes)
    say = log or (lambda _msg: None)
    loaded_at = time.perf_counter()
    model = load_model(src, signature, all_signatures, inputs, outputs)
    say(f"loaded and froze {src} ({model.kind}, {len(model.signatures)} signature"
        f"{'s' if len(model.signatures) != 1 else ''}) in {time.perf_counter() - loaded_at:.1f}s")
    for note in model.notes:
        say(note)
    if fmt == "pb" and len(model.signatures) > 1:
        say("several signatures go into one GraphDef, each under its own name scope")

    feeds = refs = None
    if verify:
        feeds = _feeds(model, inputs_file, shapes, batch_size, int_range)
        refs = {key: _reference(model, key, feeds[key]) for key in model.signatures}

    kernels = KernelSupport()
    optimized: dict[str, SignatureGraph] = {}
    reports: dict[str, SignatureReport] = {}

    def optimize_signature(sig: SignatureGraph, checked: bool) -> None:
        ctx = _context(sig, portable, kernels)
        checker = None
        if checked:
            def checker(candidate):
                try:
                    got = isolate.run_graph_def(sig.with_graph(candidate), feeds[sig.key])
                except isolate.ChildFailed as err:
                    return str(err)
                bad = [c for c in compare(refs[sig.key], got, tolerance) if not c.ok]
                return bad[0].describe() if bad else None
        label = f"[{sig.key}] " if len(model.signatures) > 1 else ""
        graph_def, records = run_passes(sig.graph_def, ctx, enabled, checker, say, label)
        optimized[sig.key] = sig.with_graph(graph_def)
        reports[sig.key] = SignatureReport(sig.key, len(sig.graph_def.node), len(graph_def.node),
                                           op_counts(sig.graph_def), op_counts(graph_def),
                                           records)

    for sig in model.signatures.values():
        optimize_signature(sig, checked=False)

    notes: list[str] = list(model.notes)
    with atomic_output(dst, overwrite) as tmp:
        say("writing and reloading the optimized model ...")
        _write(optimized, tmp, fmt, model.tags)
        if verify:
            failing = _verify(tmp, fmt, optimized, feeds, refs, tolerance, reports)
            if failing:
                say(f"verification failed for {', '.join(failing)}; finding the offending pass")
                for key in failing:
                    _check_baseline(model.signatures[key], feeds[key], refs[key], tolerance)
                    optimize_signature(model.signatures[key], checked=True)
                    skipped = [r for r in reports[key].passes if r.skipped]
                    for rec in skipped:
                        notes.append(f"[{key}] pass {rec.name} skipped: {rec.skipped}")
                _remove_tree(tmp)
                _write(optimized, tmp, fmt, model.tags)
                still = _verify(tmp, fmt, optimized, feeds, refs, tolerance, reports)
                if still:
                    worst = [c.describe() for k in still for c in reports[k].checks if not c.ok]
                    raise VerificationError("optimized model differs from the original and no "
                                            f"pass could be blamed: {worst[0]}; nothing written")
    return Report(src, dst, model.kind, reports, True if verify else None, tolerance,
                  time.perf_counter() - start, notes)


def _check_baseline(sig: SignatureGraph, feeds, ref, tolerance: float) -> None:
    """Passes can only be blamed if the frozen graph, before any pass, still answers like the
    original; if it does not, the difference comes from freezing or the runtime itself."""
    bad = [c for c in compare(ref, run_graph_def(sig, feeds), tolerance) if not c.ok]
    if bad:
        raise VerificationError(
            f"the frozen graph of {sig.key!r}, before any pass, already differs from the "
            f"original: {bad[0].describe()}; the tolerance ({tolerance:g}) is tighter than "
            "float rounding after freezing allows; nothing written")


def _verify(path, fmt, sigs, feeds, refs, tolerance, reports) -> list[str]:
    failing = []
    for key, sig in sigs.items():
        try:
            got = _run_output(path, fmt, sig, feeds[key])
        except isolate.ChildFailed as err:
            reports[key].checks = [OutputCheck("(all outputs)", False, float("inf"),
                                               float("inf"), str(err))]
            failing.append(key)
            continue
        reports[key].checks = compare(refs[key], got, tolerance)
        if not all(c.ok for c in reports[key].checks):
            failing.append(key)
    return failing


def _remove_tree(path: str) -> None:
    import shutil

    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)
