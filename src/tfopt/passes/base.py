"""What a pass is, what it is given, and what it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tensorflow.core.framework import graph_pb2

from tfopt.graph.names import node_of
from tfopt.graph.nodes import WeightSource, get_attr, tensor_bytes
from tfopt.graph.view import GraphView
from tfopt.graph.walk import reachable_from

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tfopt.graph.kernels import KernelSupport


@dataclass
class PassContext:
    """Everything a pass may know beyond the graph itself. Built per run; never global."""

    protected: set[str]                    # signature inputs/outputs: never removed or renamed
    outputs: list[str]                     # output tensors, "node:port"
    inputs: list[str]                      # input tensors, "node:port"
    max_const_bytes: int = 64 << 20        # constant folding will not create bigger tensors
    kernels: KernelSupport | None = None   # which fused kernels the target runs (None: none)
    init_ops: list[str] = field(default_factory=list)  # run at load (table initializers)
    precision: str = "fp32"  # what the graph computes in ("bf16", "int8": the passes that
    #                          convert to it act)
    # Per pass name, the constructor arguments of this run's instance (quantize_int8's
    # calibrated ranges): a pass's own settings travel to it, not through every pass
    settings: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    # Values of the constants the pipeline lifted out of the graph (tfopt.graph.lifted): read
    # through the pass's GraphView
    weights: WeightSource | None = None

    @classmethod
    def of_signature(cls, sig, **settings) -> PassContext:
        """What a signature graph (:class:`tfopt.model.signature.SignatureGraph`) tells the
        passes: nodes to keep, outputs, inputs, load-time initializers, lifted weights;
        ``settings`` are the other fields."""
        return cls(protected=sig.protected_nodes, outputs=sig.output_tensors,
                   inputs=[t.tensor for t in sig.inputs.values()], init_ops=list(sig.init_ops),
                   weights=sig.weights, **settings)


@dataclass
class PassResult:
    graph_def: graph_pb2.GraphDef
    changed: bool
    notes: list[str] = field(default_factory=list)
    # What passes run *by* this pass did (function_bodies runs the body-safe passes in each
    # body): the pipeline lists them in the per-pass table under this pass.
    inner: list[PassRecord] = field(default_factory=list)


class GraphPass:
    """Base class: subclasses implement ``apply``; :mod:`tfopt.passes.registry` names them.

    ``apply`` edits the view in place and returns human-readable notes, one per rewrite kind;
    an empty list means nothing changed. ``run`` wraps that in a pure GraphDef -> GraphDef step.
    """

    def apply(self, view: GraphView, ctx: PassContext) -> list[str]:
        raise NotImplementedError

    def run(self, graph_def: graph_pb2.GraphDef, ctx: PassContext) -> PassResult:
        view = GraphView(graph_def, ctx.weights, ctx.protected)
        notes = self.apply(view, ctx)
        result = view.to_graph_def()
        if not notes and _fingerprint(result) != _fingerprint(graph_def):
            notes = ["edits not described by the pass"]  # never drop an edit silently
        return PassResult(result, bool(notes), notes)


def _fingerprint(graph_def: graph_pb2.GraphDef) -> int:
    """Cheap structural identity: names, ops, inputs and attributes (tensor bytes by size)."""
    parts = []
    for node in graph_def.node:
        attrs = tuple(sorted((k, tensor_bytes(v.tensor)) if v.HasField("tensor") else
                             (k, v.SerializeToString(deterministic=True))
                             for k, v in node.attr.items()))
        parts.append((node.name, node.op, tuple(node.input), attrs))
    return hash(tuple(parts))


def check_graph(graph_def: graph_pb2.GraphDef, ctx: PassContext) -> str | None:
    """Structural invariants every pass must keep; returns a description of the first breach."""
    names: set[str] = set()
    for node in graph_def.node:
        if node.name in names:
            return f"duplicate node name {node.name!r}"
        names.add(node.name)
    for node in graph_def.node:
        for text in node.input:
            if node_of(text) not in names:
                return f"node {node.name!r} reads missing node {text!r}"
    for name in ctx.protected:
        if name not in names:
            return f"signature node {name!r} was removed"
    return None


# The dtype the layout and matmul-form rewrites (einsum_matmul, nchw_layout) are written and
# tested for; they leave other dtypes alone. fuse_kernels instead asks the kernel probe, whose
# table carries each fusion's dtype (tfopt.graph.fusions.DTYPES).
FLOAT32_ONLY = "float32"


def is_float32(node) -> bool:
    """The guard of the float32-only rewrites: the node computes in float32."""
    dtype = get_attr(node, "T")
    return dtype is not None and dtype.name == FLOAT32_ONLY


def unreachable(view: GraphView, ctx: PassContext) -> list[str]:
    """Nodes neither the outputs nor the load-time initializers reach (data or control),
    protected ones aside: what no run of the graph needs."""
    keep = reachable_from(view.nodes.values(), ctx.outputs + ctx.init_ops) | ctx.protected
    return [n.name for n in view if n.name not in keep]


def count_note(count: int, what: str) -> list[str]:
    """``["3 <what>"]`` when count > 0, else [] (so ``changed`` follows from the notes)."""
    return [f"{count} {what}"] if count else []


@dataclass
class PassRecord:
    """What one pass did to one signature graph, summed over all its runs."""

    name: str
    runs: int = 0          # times the pass ran
    applied: int = 0       # runs that changed the graph
    node_delta: int = 0    # this pass's own effect on the node count, summed over its runs
    ops_delta: dict[str, int] = field(default_factory=dict)  # op type -> count change
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None  # why the pass was switched off mid-run
    within: str | None = None   # run by this pass (function_bodies), not by the pipeline

    @property
    def label(self) -> str:
        """The name in the per-pass table: ``function_bodies > constant_fold`` for inner runs."""
        return f"{self.within} > {self.name}" if self.within else self.name

    @property
    def changed(self) -> bool:
        return self.applied > 0

    def merge(self, other: PassRecord) -> None:
        """Add another record of the same pass (inner runs over several bodies)."""
        self.runs += other.runs
        self.applied += other.applied
        self.node_delta += other.node_delta
        self.seconds += other.seconds
        for op, d in other.ops_delta.items():
            self.ops_delta[op] = self.ops_delta.get(op, 0) + d
        self.add_notes(other.notes)
        self.skipped = self.skipped or other.skipped

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
        return {"name": self.name, "runs": self.runs, "applied": self.applied,
                "node_delta": self.node_delta, "ops_delta": self.ops_delta,
                "seconds": round(self.seconds, 4), "notes": self.notes, "skipped": self.skipped,
                "within": self.within}
