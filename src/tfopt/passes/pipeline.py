"""Run the registered passes on one signature graph, to a fixed point, accounting for each."""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from tensorflow.core.framework import graph_pb2

from tfopt.errors import VerificationError, first_line
from tfopt.graph.lifted import WeightStore, inline, lift, lift_new, lifted_keys
from tfopt.graph.walk import op_counts
from tfopt.graph.weights import release_memory
from tfopt.passes import registry
from tfopt.passes.base import GraphPass, PassContext, PassRecord, check_graph
from tfopt.passes.registry import FINALIZE, SIMPLIFY, PassSpec

MAX_ITERATIONS = 10

# Returns None when the candidate graph still answers like the original, else why not.
Checker = Callable[[graph_pb2.GraphDef], str | None]


class Verifier(Protocol):
    """What the checked re-run needs: a check of the untouched baseline, and of a candidate."""

    def baseline(self, graph_def: graph_pb2.GraphDef) -> str | None: ...

    def __call__(self, graph_def: graph_pb2.GraphDef) -> str | None: ...
Log = Callable[[str], None]


@dataclass
class PipelineResult:
    lifted: graph_pb2.GraphDef  # the result, its large constants read from ``weights``
    weights: WeightStore
    records: list[PassRecord]  # in pipeline order; inner runs right after the pass that ran them
    iterations: int            # fixed-point iterations of the SIMPLIFY passes
    converged: bool            # False: MAX_ITERATIONS ran out before a fixed point

    @functools.cached_property
    def graph_def(self) -> graph_pb2.GraphDef:
        """The result with every value in place (:func:`~tfopt.graph.lifted.inline`)."""
        return inline(self.lifted, self.weights)


def _diff(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {op: after.get(op, 0) - before.get(op, 0) for op in set(before) | set(after)
            if after.get(op, 0) != before.get(op, 0)}


def run_passes(graph_def: graph_pb2.GraphDef, ctx: PassContext, enabled: frozenset[str],
               checker: Checker | None = None, log: Log | None = None,
               label: str = "", only: Callable[[PassSpec], bool] | None = None
               ) -> PipelineResult:
    """Apply SIMPLIFY passes until none changes anything, then FINALIZE passes once.

    ``enabled`` names the passes switched on (:func:`tfopt.passes.registry.select`); ``only``
    narrows the registry further (function bodies: the rows marked ``in_bodies``). With a
    ``checker``, every pass application is verified and one that breaks the outputs is undone
    and switched off for the rest of the run (its record says why). ``log`` gets one line per
    fixed-point iteration (progress), not per pass: the records are the table.

    The passes see ``graph_def`` with its large constants lifted into a
    :class:`~tfopt.graph.lifted.WeightStore` (``ctx.weights``, over the store the given graph's
    own stubs read from, if any), so their copies of the graph copy no weight; the result is
    lifted too, with its values in place in ``result.graph_def``.
    """
    return _Run(instances(enabled, only, ctx.settings), ctx, checker, log, label).run(
        graph_def)


def instances(enabled: frozenset[str], only: Callable[[PassSpec], bool] | None = None,
              settings: Mapping[str, Mapping[str, object]] | None = None
              ) -> list[tuple[PassSpec, GraphPass]]:
    """The enabled passes with their rows, in table order, each built with its row's and this
    run's ``settings`` (passes hold no state: a fresh set per run). A row that walks function
    bodies is given the pipeline's own run over the rows marked ``in_bodies``: the pipeline
    walks the bodies, no pass re-enters it."""
    def run_body(body: graph_pb2.GraphDef, ctx: PassContext) -> PipelineResult:
        return run_passes(body, ctx, enabled, only=lambda spec: spec.in_bodies)

    settings = settings or {}
    return [(spec, spec.load(**settings.get(spec.name, {}),
                             **({"run_body": run_body} if spec.walks_bodies else {})))
            for spec in registry.REGISTRY
            if spec.name in enabled and (only is None or only(spec))]


class _Run:
    """One run of the pipeline: the passes still switched on and what each did."""

    def __init__(self, passes: list[tuple[PassSpec, GraphPass]], ctx: PassContext,
                 checker: Checker | None, log: Log | None, label: str):
        self.store = WeightStore(parent=ctx.weights)
        self.ctx = dataclasses.replace(ctx, weights=self.store)
        self.passes, self.checker, self.log, self.label = passes, checker, log, label
        self.records = {spec.name: PassRecord(spec.name) for spec, _ in passes}
        self.inner: dict[str, dict[str, PassRecord]] = {spec.name: {} for spec, _ in passes}
        self.active = dict.fromkeys(self.records, True)

    def run(self, graph_def: graph_pb2.GraphDef) -> PipelineResult:
        current = lift(graph_def, self.store)
        iterations, converged = 0, False
        while iterations < MAX_ITERATIONS:
            iterations += 1
            size = len(current.node)
            current, changed = self.phase(SIMPLIFY, current)
            self.progress(f"simplify round {iterations}", size, current, changed)
            if not changed:
                converged = True
                break
        if not converged:
            self.say(f"no fixed point after {MAX_ITERATIONS} rounds; going on with the graph "
                     "as it is (it is still verified)")
        size = len(current.node)
        current, changed = self.phase(FINALIZE, current)
        if any(spec.phase == FINALIZE for spec, _ in self.passes):
            self.progress("finalize", size, current, changed)
        ordered = [rec for spec, _ in self.passes
                   for rec in (self.records[spec.name], *self.inner[spec.name].values())]
        return PipelineResult(current, self.store, ordered, iterations, converged)

    def phase(self, phase: str, current: graph_pb2.GraphDef
              ) -> tuple[graph_pb2.GraphDef, list[str]]:
        changed = []
        for spec, p in self.passes:
            if spec.phase == phase:
                current, did = self.step(spec, p, current)
                if did:
                    changed.append(spec.name)
        return current, changed

    def step(self, spec: PassSpec, p: GraphPass,
             current: graph_pb2.GraphDef) -> tuple[graph_pb2.GraphDef, bool]:
        """One application of pass ``p``: kept (recorded) or, when it fails or breaks the
        graph, undone and the pass switched off for the rest of the run."""
        if not self.active[spec.name]:
            return current, False
        rec = self.records[spec.name]
        before = op_counts(current)
        start = time.perf_counter()
        try:
            result = p.run(current, self.ctx)
        except Exception as err:  # a pass bug must not cost the user a model: skip and say
            why = f"failed: {type(err).__name__}: {first_line(err, '')}"
            self.switch_off(spec, why, f"skipped, {why}")
            return current, False
        rec.seconds += time.perf_counter() - start
        rec.runs += 1
        release_memory(current)
        if not result.changed:
            return current, False
        lift_new(result.graph_def, self.store)
        problem = check_graph(result.graph_def, self.ctx)
        if problem is None and self.checker is not None:
            problem = self.checker(inline(result.graph_def, self.store))
        if problem is not None:
            self.switch_off(spec, problem, f"undone and switched off: {problem}")
            return current, False
        self.record(spec, result, before, len(current.node))
        self.store.keep_only(lifted_keys(result.graph_def))
        return result.graph_def, True

    def record(self, spec: PassSpec, result, before: dict[str, int], nodes_before: int
               ) -> None:
        rec = self.records[spec.name]
        for op, d in _diff(before, op_counts(result.graph_def)).items():
            rec.ops_delta[op] = rec.ops_delta.get(op, 0) + d
        rec.add_notes(result.notes)
        rec.applied += 1
        rec.node_delta += len(result.graph_def.node) - nodes_before
        for sub in result.inner:
            mine = self.inner[spec.name].setdefault(sub.name,
                                                    PassRecord(sub.name, within=spec.name))
            mine.merge(sub)

    def switch_off(self, spec: PassSpec, why: str, said: str) -> None:
        """The pass is off for the rest of the run; its record says ``why``, the log ``said``."""
        self.records[spec.name].skipped = why
        self.active[spec.name] = False
        self.say(f"{spec.name}: {said}")

    def say(self, text: str) -> None:
        if self.log:
            self.log(f"  {self.label}{text}")

    def progress(self, what: str, before: int, after: graph_pb2.GraphDef,
                 names: list[str]) -> None:
        self.say(f"{what}: {before} -> {len(after.node)} nodes"
                 + (f" ({', '.join(names)})" if names else ""))


def run_checked(graph_def: graph_pb2.GraphDef, ctx: PassContext, enabled: frozenset[str],
                verifier: Verifier, log: Log | None = None, label: str = "") -> PipelineResult:
    """The re-run after a failed verification. Passes can only be blamed if the frozen graph,
    before any pass, answers like the original; then every pass application is checked, and
    one that breaks the outputs is undone and switched off (its record says why)."""
    problem = verifier.baseline(inline(graph_def, ctx.weights))
    if problem is not None:
        raise VerificationError(problem)
    return run_passes(graph_def, ctx, enabled, verifier, log, label)
