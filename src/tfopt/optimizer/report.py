"""What ``optimize`` did, per signature and per pass, and the verification verdict.

:class:`Report` is what :func:`tfopt.optimize` returns: ``str(report)`` is the CLI's summary
line, ``report.table()`` the per-pass table, ``report.to_dict()`` the ``--json`` document, and
``report.metadata()`` the ``tfopt.json`` written beside the model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from tfopt.optimizer.speed import SpeedCheck
from tfopt.passes.base import PassRecord
from tfopt.runtime import RUNTIMES, runtime_label
from tfopt.verify.compare import OutputCheck


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
class StageCost:
    """One stage of ``optimize``: its wall time, and the peak resident memory of this process
    and of the largest verification child when it ended. Peaks are high-water marks since
    the start: the stage that raised one is where memory went."""

    stage: str
    seconds: float
    peak_mb: float
    children_peak_mb: float

    @classmethod
    def measure(cls, stage: str, began: float) -> StageCost:
        import resource
        import time

        from tfopt.process import CHILD_PEAK

        # ru_maxrss is in KiB on Linux
        return cls(stage, round(time.perf_counter() - began, 3),
                   round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                   round(CHILD_PEAK.kib / 1024, 1))


# Where a reduced-precision model is fast (tfopt.json's "fast_with").
FAST_WITH = {
    "bf16": "oneDNN on (TF_ENABLE_ONEDNN_OPTS=1) and a CPU with AVX512_BF16 or AMX; it runs "
            "with oneDNN off too, slower than float32",
    "int8": "a CPU with int8 dot-product instructions (AVX512_VNNI, AVX_VNNI or AMX); its int8 "
            "kernels are oneDNN's, run with TF_ENABLE_ONEDNN_OPTS on or off",
}


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
    endpoints: list[dict] = field(default_factory=list)  # TF2 attribute endpoints restated
    precision: str = "fp32"
    speed: dict[str, SpeedCheck] = field(default_factory=dict)  # timed against the original
    stages: list[StageCost] = field(default_factory=list)  # what each stage of optimize took
    # --format litert/openvino: the runtime that runs the written model, its version, threads,
    # precision, the signature it holds and the source it was converted from
    output: dict = field(default_factory=dict)
    # --format litert/openvino/auto: every form tried, verified or why not, its speed and size
    candidates: list[dict] = field(default_factory=list)

    @property
    def worst(self) -> OutputCheck | None:
        checks = [c for s in self.signatures.values() for c in s.checks]
        return max(checks, key=lambda c: c.rel) if checks else None

    def node_totals(self) -> tuple[int, int]:
        """Nodes before and after the passes over the distinct signature graphs: main graph
        and function bodies (If/While branches), as `tfopt analyze` counts a frozen
        signature (lowering a loop moves its body into the main graph)."""
        unique = [s for s in self.signatures.values() if not s.same_as]
        return (sum(s.nodes_before + s.function_nodes_before for s in unique),
                sum(s.nodes_after + s.function_nodes_after for s in unique))

    def summary(self) -> str:
        """One line: node counts, signatures kept, verification verdict, time."""
        before, after = self.node_totals()
        if self.verified is None:
            verdict = "not verified (--no-verify)"
        else:
            worst = self.worst
            where = " and ".join(runtime_label(r) for r in self.runtimes)
            metric = "relative RMS" if worst and worst.metric == "rms" else "relative"
            verdict = (f"verified ({where}): worst {metric} difference {worst.rel:.2e} "
                       f"(tolerance {self.tolerance:g})" if worst else "verified")
            if self.output:  # the file written is the runtime's, checked in that runtime
                verdict = (f"verified in {self.output['runtime']}: worst {metric} difference "
                           f"{self.output['worst']:.2e} (tolerance {self.tolerance:g})")
            agreements = [c for s in self.signatures.values() for c in s.checks
                          if c.top1 is not None]
            if agreements:
                low = min(agreements, key=lambda c: c.top1)
                verdict += (f", top-1 agreement {low.top1:.1%} over {low.samples} samples "
                            "(lowest)")
            tasks = [c for c in agreements if c.accuracy is not None]
            if tasks:
                task = min(tasks, key=lambda c: c.accuracy[1] - c.accuracy[0])
                verdict += (f", task accuracy {task.accuracy[0]:.2%} -> "
                            f"{task.accuracy[1]:.2%}")
            constant = sorted({c.key for s in self.signatures.values() for c in s.checks
                               if c.constant})
            if constant:
                verdict += (f"; VACUOUS for {', '.join(constant)}: the original answers the "
                            "same on every verification input (give real ones: --inputs-file)")
        precision = "" if self.precision == "fp32" else f"{self.precision}, "
        speed = "".join(f"; {check.describe()}" + (f" ({key})" if len(self.speed) > 1 else "")
                        for key, check in self.speed.items())
        kept = [self.output["signature"]] if self.output else list(self.signatures)
        # a runtime's model holds the converter's ops, not the TensorFlow graph's nodes
        form = (f"{self.output['format']} model converted from {self.output['source']}"
                if self.output else f"{before} -> {after} nodes")
        return (f"{self.dst}: {precision}{form}, signatures {', '.join(kept)}; {verdict}{speed}; "
                f"{self.seconds:.1f}s")

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
                    lines.append(f"  {rec.label:<18} {rec.node_delta:>+7} nodes  "
                                 f"{rec.seconds:6.2f}s  {status}")
            for check in sig.checks:
                lines.append(f"  output {check.describe()}")
        if self.candidates:
            lines.append(candidates_table(self.candidates))
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
        from tfopt.runtime import describe
        from tfopt.version import __version__

        only = [r for r in RUNTIMES if r not in self.runtimes]
        if self.output:  # runs in its own runtime, not TensorFlow's
            only, runtimes = [], [self.output["format"]]
        else:
            runtimes = self.runtimes
        return {"tfopt": __version__, "target": self.target, "runtimes": runtimes,
                "requires": (f"TF_ENABLE_ONEDNN_OPTS={RUNTIMES[self.runtimes[0]]} "
                             f"({runtime_label(self.runtimes[0])})" if only else None),
                "verified": self.verified, "fused_kernels": self.fused_kernels,
                "signatures": ([self.output["signature"]] if self.output
                               else sorted(self.signatures)), "endpoints": self.endpoints,
                "precision": self.precision, "tolerance": self.tolerance,
                "nodes": dict(zip(("before", "after"), self.node_totals(), strict=True)),
                "format": self.output.get("format", "saved_model"), "runtime_model": self.output,
                "fast_with": FAST_WITH.get(self.precision),
                "speed": {k: c.to_dict() for k, c in self.speed.items()},
                "candidates": self.candidates, "written_on": describe()}

    def to_dict(self) -> dict:
        return {"src": self.src, "dst": self.dst, "kind": self.kind, "verified": self.verified,
                "tolerance": self.tolerance, "seconds": round(self.seconds, 3),
                "notes": self.notes, "target": self.target, "runtimes": self.runtimes,
                "endpoints": self.endpoints, "precision": self.precision,
                "fused_kernels": self.fused_kernels,
                "speed": {k: c.to_dict() for k, c in self.speed.items()},
                "stages": [dataclasses.asdict(c) for c in self.stages], "output": self.output,
                "candidates": self.candidates,
                "signatures": {k: s.to_dict() for k, s in self.signatures.items()}}


def candidates_table(rows: list[dict]) -> str:
    """The candidates every choice tried, one line each: the choice, verified or why not,
    worst difference, speedup over what it was timed against with its interval, size; the
    written one marked."""
    width = max(len(r["candidate"]) for r in rows) + 2
    lines = [f"{'choice':<10}{'candidate'.ljust(width)}{'verified':<10}{'worst diff':>11}  "
             f"{'speed (95% CI)':<20}{'against':<24}{'size':>9}"]
    for r in rows:
        head = f"{r.get('choice', ''):<10}{r['candidate'].ljust(width)}"
        if not r["verified"]:
            lines.append(f"{head}{'no':<10}{'-':>11}  {r['why_not']}")
            continue
        speed = (f"{r['speedup']:.2f}x [{r['interval'][0]:.2f}-{r['interval'][1]:.2f}]"
                 if r["speedup"] is not None else "not timed")
        worst = f"{r['worst']:.2e}" if r["worst"] is not None else "-"
        size = _size(r["bytes"]) if r["bytes"] is not None else "-"
        mark = "  <- written" if r["written"] else (f"  dropped: {r['why_not']}"
                                                     if r["why_not"] else "")
        lines.append(f"{head}{'yes':<10}{worst:>11}  {speed:<20}{r.get('against', ''):<24}"
                     f"{size:>9}{mark}")
    return "\n".join(lines)


def _size(count: int) -> str:
    return f"{count / 1e6:.2f} MB" if count >= 1e5 else f"{count / 1e3:.1f} kB"
