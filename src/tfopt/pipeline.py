"""Run the registered passes on one signature graph, to a fixed point, accounting for each."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tensorflow.core.framework import graph_pb2

from tfopt.errors import first_line
from tfopt.graph import op_counts
from tfopt.passes import ALL_PASSES, FINALIZE, SIMPLIFY, GraphPass, PassContext

MAX_ITERATIONS = 10

# Returns None when the candidate graph still answers like the original, else why not.
Checker = Callable[[graph_pb2.GraphDef], str | None]
Log = Callable[[str], None]


@dataclass
class PassRecord:
    """What one pass did to one signature graph, summed over its runs."""

    name: str
    runs: int = 0
    nodes_before: int = 0
    nodes_after: int = 0
    ops_delta: dict[str, int] = field(default_factory=dict)
    node_delta: int = 0  # this pass's own effect on the node count, summed over its runs
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None  # why the pass was switched off mid-run

    @property
    def changed(self) -> bool:
        return bool(self.notes)

    def add_notes(self, notes: list[str]) -> None:
        """Merge "<count> <what>" notes across fixed-point runs: "3 x" + "2 x" -> "5 x"."""
        for note in notes:
            count, _, what = note.partition(" ")
            for i, old in enumerate(self.notes):
                old_count, _, old_what = old.partition(" ")
                if count.isdigit() and old_count.isdigit() and what == old_what:
                    self.notes[i] = f"{int(old_count) + int(count)} {what}"
                    break
            else:
                self.notes.append(note)

    def delta_text(self) -> str:
        parts = [f"{op} {d:+d}" for op, d in sorted(self.ops_delta.items(), key=lambda x: x[1])
                 if d]
        return ", ".join(parts)

    def to_dict(self) -> dict:
        return {"name": self.name, "runs": self.runs, "nodes_before": self.nodes_before,
                "nodes_after": self.nodes_after, "node_delta": self.node_delta,
                "ops_delta": self.ops_delta,
                "seconds": round(self.seconds, 4), "notes": self.notes, "skipped": self.skipped}


def select_passes(passes: list[str] | None, skip: list[str] | None) -> set[str]:
    from tfopt.pass_catalog import check_names

    names = [p.name for p in ALL_PASSES]
    check_names((passes or []) + (skip or []))
    enabled = set(passes) if passes else set(names)
    return enabled - set(skip or [])


def _diff(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {op: after.get(op, 0) - before.get(op, 0) for op in set(before) | set(after)
            if after.get(op, 0) != before.get(op, 0)}


def run_passes(graph_def: graph_pb2.GraphDef, ctx: PassContext, enabled: set[str],
               checker: Checker | None = None, log: Log | None = None,
               label: str = "") -> tuple[graph_pb2.GraphDef, list[PassRecord]]:
    """Apply SIMPLIFY passes until none changes anything, then FINALIZE passes once.

    With a ``checker``, every pass application is verified and one that breaks the outputs is
    undone and switched off for the rest of the run (its record says why).
    """
    from tfopt.passes.base import check_graph

    records = {p.name: PassRecord(p.name) for p in ALL_PASSES if p.name in enabled}
    active = dict.fromkeys(records, True)

    def step(p: GraphPass, current: graph_pb2.GraphDef) -> tuple[graph_pb2.GraphDef, bool]:
        if not active.get(p.name):
            return current, False
        rec = records[p.name]
        before = op_counts(current)
        start = time.perf_counter()
        try:
            result = p.run(current, ctx)
        except Exception as err:  # a pass bug must not cost the user a model: skip and say
            rec.skipped = f"failed: {type(err).__name__}: {first_line(err, '')}"
            active[p.name] = False
            if log:
                log(f"  {label}{p.name}: skipped, {rec.skipped}")
            return current, False
        rec.seconds += time.perf_counter() - start
        if rec.runs == 0:
            rec.nodes_before = len(current.node)
        rec.runs += 1
        if not result.changed:
            rec.nodes_after = len(current.node)
            return current, False
        problem = check_graph(result.graph_def, ctx)
        if problem is None and checker is not None:
            problem = checker(result.graph_def)
        if problem is not None:
            rec.skipped = problem
            active[p.name] = False
            if log:
                log(f"  {label}{p.name}: undone and switched off: {problem}")
            rec.nodes_after = len(current.node)
            return current, False
        after = op_counts(result.graph_def)
        for op, d in _diff(before, after).items():
            rec.ops_delta[op] = rec.ops_delta.get(op, 0) + d
        rec.add_notes(result.notes)
        rec.nodes_after = len(result.graph_def.node)
        rec.node_delta += len(result.graph_def.node) - len(current.node)
        if log:
            log(f"  {label}{p.name:<18} {len(current.node):>6} -> {len(result.graph_def.node):<6}"
                f" {'; '.join(result.notes)}")
        return result.graph_def, True

    current = graph_def
    for _ in range(MAX_ITERATIONS):
        changed = False
        for p in SIMPLIFY:
            current, did = step(p, current)
            changed |= did
        if not changed:
            break
    for p in FINALIZE:
        current, _ = step(p, current)
    return current, [records[p.name] for p in ALL_PASSES if p.name in records]
