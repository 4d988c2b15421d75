"""What a model is made of: op-type counts and shares, model facts, before/after, charts.

Op counts are taken over the graph as stored (a TF1 SavedModel's MetaGraph, a GraphDef, a TF2
SavedModel's main graph *and* its function library, where TF2 keeps the real work); with a
signature, over what that signature runs (TF1: the nodes its outputs reach; TF2: its traced
function and the functions it calls). Facts that
need values and shapes (parameters, constant bytes, FLOPs) come from the frozen graph.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from tensorflow.python.framework import dtypes

from tfopt.errors import TfoptError, first_line
from tfopt.graph.flops import FLOP_OPS, concrete_inputs, graph_flops
from tfopt.graph.library import all_nodes, function_nodes
from tfopt.graph.nodes import const_shape
from tfopt.graph.ops import is_training_op
from tfopt.model.format import ModelFormat, pick_signature
from tfopt.model.formats import detect, load_model
from tfopt.model.paths import read_metadata
from tfopt.model.runtime_model import RuntimeModel
from tfopt.model.signature import TensorInfo
from tfopt.options import RUNTIME_FORMATS


@dataclass
class Analysis:
    path: str
    kind: str
    op_counts: dict[str, int]
    function_counts: dict[str, dict[str, int]]
    nodes: int
    parameters: int
    constant_bytes: int
    flops_per_sample: int
    flops_unknown_ops: int
    inputs: dict[str, str]
    outputs: dict[str, str]
    notes: list[str] = field(default_factory=list)
    fused_kernels: dict[str, int] = field(default_factory=dict)  # "_FusedConv2D[BiasAdd]": n
    runtimes: list[str] = field(default_factory=list)  # CPU runtimes that run every one
    metadata: dict | None = None  # the model's tfopt.json, when tfopt wrote it
    # What `tfopt optimize` counts: the signature's frozen graph, main graph and functions.
    frozen_nodes: int = 0
    frozen_function_nodes: int = 0
    flops_in_functions: int = 0  # matmul/conv ops inside function bodies (not in FLOPs)

    def shares(self) -> list[tuple[str, int, float]]:
        total = sum(self.op_counts.values()) or 1
        return [(op, n, n / total) for op, n in
                sorted(self.op_counts.items(), key=lambda x: (-x[1], x[0]))]

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["shares"] = [{"op": op, "count": n, "share": round(s, 5)} for op, n, s in self.shares()]
        return d


def _stored_graph_counts(fmt: ModelFormat, signature: str | None = None
                         ) -> tuple[Counter, dict[str, dict[str, int]]]:
    """Op counts of the stored graph: whole, or what ``signature`` runs (with its functions)."""
    functions: dict[str, dict[str, int]] = {}
    graph_def, used = fmt.stored_graph(signature)
    if graph_def is None:
        return Counter(), functions
    counts = Counter(n.op for n in graph_def.node)
    for fn in graph_def.library.function:
        if used is not None and fn.signature.name not in used:
            continue
        fn_counts = Counter(n.op for n in fn.node_def)
        functions[fn.signature.name] = dict(fn_counts)
        counts.update(fn_counts)
    return counts, functions


def analyze(path: str, signature: str | None = None, facts: bool = True) -> Analysis:
    """Analyze the model at ``path`` (SavedModel, .pb/.pbtxt or .keras)."""
    from tfopt.graph.shapes import StaticInfo

    fmt = detect(path)
    if isinstance(fmt, RuntimeModel):
        return _runtime_analysis(fmt, signature)
    counts, functions = _stored_graph_counts(fmt, signature)
    notes = []
    model = key = None
    if facts or not counts:
        key = pick_signature(fmt.signature_keys(), signature, path)
        model = load_model(path, [key])
    inputs: dict[str, str] = {}
    outputs: dict[str, str] = {}
    params = const_bytes = flops = unknown = 0
    if model is not None:
        sig = model.signatures[key]
        inputs = {k: v.describe() for k, v in sig.inputs.items()}
        outputs = {k: v.describe() for k, v in sig.outputs.items()}
        if not counts:  # Keras files have no stored graph: count the traced one
            counts = Counter(n.op for n in sig.graph_def.node)
            for fn in sig.graph_def.library.function:
                c = Counter(n.op for n in fn.node_def)
                functions[fn.signature.name] = dict(c)
                counts.update(c)
            notes.append("op counts are of the traced and frozen Keras model")
        for node in all_nodes(sig.graph_def):  # weights in loop and call bodies count too
            if node.op == "Const":  # from shape and dtype: a large model's weights are lifted
                size = int(np.prod(const_shape(node), dtype=np.int64))
                dtype = dtypes.as_dtype(node.attr["dtype"].type)
                const_bytes += size * np.dtype(dtype.as_numpy_dtype).itemsize
                if dtype.is_floating and size > 1:
                    params += size
        sized, assumed = concrete_inputs(sig.graph_def, sig.inputs)
        try:
            flops, unknown = graph_flops(sig.graph_def, StaticInfo(sized))
        except Exception as err:  # TensorFlow's shape inference refused the graph
            notes.append(f"FLOPs not counted: static shapes could not be inferred "
                         f"({first_line(err)})")
        else:
            if assumed:
                notes.append(f"FLOPs counted at {assumed} (unknown dims set as for "
                             "verification)")
    fused, runtimes = _runtime_needs(model)
    frozen = model.signatures[key].graph_def if model is not None else None
    return Analysis(path, fmt.name, dict(counts), functions, sum(counts.values()), params,
                    const_bytes, flops, unknown, inputs, outputs, notes, fused, runtimes,
                    read_metadata(path) if fmt.loads_by_path else None,
                    len(frozen.node) if frozen else 0,
                    function_nodes(frozen) if frozen else 0,
                    sum(n.op in FLOP_OPS for f in frozen.library.function for n in f.node_def)
                    if frozen else 0)


def _runtime_analysis(fmt: RuntimeModel, signature: str | None) -> Analysis:
    """A LiteRT or OpenVINO model: its op types (the runtime's own names), inputs and
    outputs; parameters and FLOPs are TensorFlow-graph facts and stay 0."""
    from tfopt.runtimes import default_threads

    counts = fmt.runtime.op_counts(fmt.path)
    inputs, outputs, _, _ = fmt.runtime.open_signature(fmt.path, signature, default_threads())

    def describe(spec) -> str:
        dtype, shape = spec
        return f"{dtype}[{', '.join('?' if d < 0 else str(d) for d in shape)}]"

    return Analysis(fmt.path, fmt.name, counts, {}, sum(counts.values()), 0, 0, 0, 0,
                    {k: describe(v) for k, v in inputs.items()},
                    {k: describe(v) for k, v in outputs.items()},
                    [f"op types as {fmt.runtime.label(default_threads()).split(',')[0]} names "
                     "them; parameters and FLOPs are counted on TensorFlow graphs only"],
                    metadata=read_metadata(fmt.path))


def _runtime_needs(model) -> tuple[dict[str, int], list[str]]:
    """The model's fused kernels and the CPU runtimes (oneDNN on/off) that run them all."""
    from tfopt.graph.fusions import fusion_names, fusions_in
    from tfopt.graph.kernels import runtimes_running

    if model is None:
        return {}, []
    fusions = fusions_in(s.graph_def for s in model.signatures.values())
    return fusion_names(fusions), runtimes_running(fusions)


def runtime_line(a: Analysis) -> str:
    """One line: where the model runs, from its own fused kernels (and tfopt.json if any)."""
    from tfopt.runtime import RUNTIMES, runtime_label

    if not a.runtimes and not a.fused_kernels:
        return ""
    if set(a.runtimes) == set(RUNTIMES):
        where = "runs with oneDNN on and off"
    elif a.runtimes:
        where = (f"NEEDS {runtime_label(a.runtimes[0])} "
                 f"(TF_ENABLE_ONEDNN_OPTS={RUNTIMES[a.runtimes[0]]})")
    else:
        where = "runs under NEITHER CPU runtime of this TensorFlow"
    kernels = ", ".join(f"{k} x{n}" for k, n in a.fused_kernels.items()) or "none"
    target = f"; written by tfopt --target {a.metadata['target']}" if a.metadata else ""
    return f"  runtime: {where}{target}; fused kernels: {kernels}"


# --- rendering -----------------------------------------------------------------------------------


def _fmt_count(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.2f}{unit}"
    return str(int(n))


def _written_counts_line(a: Analysis) -> str:
    """For a model tfopt wrote: the counts its optimize reported, beside the frozen count
    above (a SavedModel adds a call wrapper: input and output identities, and for lowered
    loops a function call around the graph)."""
    nodes = (a.metadata or {}).get("nodes")
    if not nodes or not a.frozen_nodes:
        return ""
    frozen = a.frozen_nodes + a.frozen_function_nodes
    extra = frozen - nodes["after"]
    return (f"  tfopt optimize: {nodes['before']} -> {nodes['after']} nodes after its passes"
            + (f"; loaded back from the SavedModel, {frozen} ({extra:+d}: the signature's "
               "call wrapper)" if extra else ""))


def _flops_caveat(a: Analysis) -> str:
    parts = []
    if a.flops_unknown_ops:
        parts.append(f"{a.flops_unknown_ops} ops with unknown shapes")
    if a.flops_in_functions:
        parts.append(f"{a.flops_in_functions} matmul/conv ops inside loop or call bodies")
    return f" ({' and '.join(parts)} not counted)" if parts else ""


def text_report(a: Analysis, top: int | None = None, show_functions: bool = False) -> str:
    main = sum(a.op_counts.values()) - sum(sum(c.values()) for c in a.function_counts.values())
    lines = [f"{a.path} ({a.kind})",
             f"  stored graph: {a.nodes} nodes (main graph {main}, {len(a.function_counts)} "
             f"functions {a.nodes - main})"
             + (f"; frozen signature (what tfopt optimize starts from): "
                f"{a.frozen_nodes + a.frozen_function_nodes} nodes (main graph "
                f"{a.frozen_nodes}, function library {a.frozen_function_nodes})"
                if a.frozen_nodes else "")]
    if line := _written_counts_line(a):
        lines.append(line)
    if a.kind not in RUNTIME_FORMATS:  # (facts of TensorFlow graphs)
        lines.append(f"  parameters {_fmt_count(a.parameters)}, constants "
                     f"{a.constant_bytes / 1e6:.2f} MB, FLOPs/sample "
                     f"{_fmt_count(a.flops_per_sample)}" + _flops_caveat(a))
    for title, specs in (("inputs", a.inputs), ("outputs", a.outputs)):
        if specs:
            lines.append(f"  {title}: " + ", ".join(f"{k} {v}" for k, v in specs.items()))
    if line := runtime_line(a):
        lines.append(line)
    lines.append("")
    shares = a.shares()[:top] if top else a.shares()
    width = max([len(op) for op, _, _ in shares] + [7])
    lines.append(f"  {'op type'.ljust(width)}  {'count':>6}  {'share':>6}")
    for op, n, share in shares:
        lines.append(f"  {op.ljust(width)}  {n:>6}  {share:>6.1%}")
    if show_functions and a.function_counts:
        lines.append("")
        lines.append("  per function:")
        for name, counts in sorted(a.function_counts.items()):
            top_ops = ", ".join(f"{op} {n}" for op, n in
                                sorted(counts.items(), key=lambda x: -x[1])[:6])
            lines.append(f"    {name} ({sum(counts.values())} nodes): {top_ops}")
    for note in a.notes:
        lines.append(f"  note: {note}")
    return "\n".join(lines)


def compare_rows(before: Analysis, after: Analysis) -> list[tuple[str, int, int, int]]:
    ops = set(before.op_counts) | set(after.op_counts)
    rows = [(op, before.op_counts.get(op, 0), after.op_counts.get(op, 0)) for op in ops]
    rows = [(op, b, c, c - b) for op, b, c in rows]
    return sorted(rows, key=lambda r: (-max(r[1], r[2]), r[0]))


def compare_report(before: Analysis, after: Analysis) -> str:
    rows = compare_rows(before, after)
    width = max([len(r[0]) for r in rows] + [7])
    lines = [f"before: {before.path}", f"after:  {after.path}", "",
             f"  {'op type'.ljust(width)}  {'before':>7}  {'after':>7}  {'diff':>7}"]
    for op, b, c, d in rows:
        lines.append(f"  {op.ljust(width)}  {b:>7}  {c:>7}  {d:>+7}")
    lines.append(f"  {'total'.ljust(width)}  {before.nodes:>7}  {after.nodes:>7}  "
                 f"{after.nodes - before.nodes:>+7}  (stored graph)")
    frozen = (before.frozen_nodes + before.frozen_function_nodes,
              after.frozen_nodes + after.frozen_function_nodes)
    if frozen[0] and frozen[0] != before.nodes:
        lines.append(f"  frozen signature (what the runtime executes, what tfopt optimize "
                     f"counts): {frozen[0]} -> {frozen[1]} nodes")
    gone = [f"{op} {b} -> 0" for op, b, c, _ in rows if b and not c]
    new = [f"{op} 0 -> {c}" for op, b, c, _ in rows if c and not b]
    if gone:
        lines.append("  disappeared: " + ", ".join(gone))
    if new:
        lines.append("  appeared:    " + ", ".join(new))
    lines.append(f"  parameters {_fmt_count(before.parameters)} -> "
                 f"{_fmt_count(after.parameters)}, FLOPs/sample "
                 f"{_fmt_count(before.flops_per_sample)} -> {_fmt_count(after.flops_per_sample)}")
    return "\n".join(lines)


# Nodes that are not compute, counted apart in the charts: they say how a model is stored,
# not what it computes.
PLUMBING_OPS = {"Const", "Identity", "IdentityN", "Placeholder", "PlaceholderWithDefault",
                "NoOp", "StatefulPartitionedCall", "PartitionedCall"}
VARIABLE_OPS = {"VariableV2", "VarHandleOp", "ReadVariableOp", "VarIsInitializedOp",
                "DisableCopyOnRead", "DestroyResourceOp", "StaticRegexFullMatch", "StringJoin"}
# Ops that compute shapes and indices (on a handful of integers) more than data.
SHAPE_OPS = {"Shape", "ShapeN", "Size", "Rank", "Pack", "Unpack", "StridedSlice",
             "BroadcastArgs", "BroadcastGradientArgs", "Range", "TensorListReserve",
             "TensorListLength", "TensorListElementShape"}
# Control flow: lowered loops' frames (Enter/Exit...) and functional If/While.
CONTROL_FLOW_OPS = {"Enter", "Exit", "Merge", "Switch", "NextIteration", "LoopCond",
                    "RefEnter", "RefExit", "RefMerge", "RefSwitch", "RefNextIteration",
                    "While", "StatelessWhile", "If", "StatelessIf", "ControlTrigger"}
CATEGORIES = {"plumbing": "constants, identities, placeholders, calls",
              "shape": "shape arithmetic: Shape, Pack, StridedSlice, Range",
              "control flow": "loop frames (Enter, Merge, Switch...), If, While",
              "bookkeeping": "variables, checkpoint save/restore, initializers"}


def op_category(op: str) -> str:
    """"compute", "plumbing", "shape" (shape and index arithmetic), "control flow" or
    "bookkeeping" (variable, checkpoint and training nodes)."""
    if op in PLUMBING_OPS:
        return "plumbing"
    if op in SHAPE_OPS:
        return "shape"
    if op in CONTROL_FLOW_OPS:
        return "control flow"
    if op in VARIABLE_OPS or is_training_op(op):
        return "bookkeeping"
    return "compute"


def chart_ops(analyses: list[tuple[str, Analysis]], top: int = 15) -> list[str]:
    """The compute op types to draw. One model: the most frequent. Several: the ones that
    appeared (fused kernels), then those that changed most (ops that went), then the most
    frequent; drawn most frequent first."""
    counts = [a.op_counts for _, a in analyses]
    ops = {op for c in counts for op, n in c.items() if n and op_category(op) == "compute"}

    def most(op: str) -> int:
        return max(c.get(op, 0) for c in counts)

    def change(op: str) -> int:
        return max(c.get(op, 0) for c in counts) - min(c.get(op, 0) for c in counts)

    def appeared(op: str) -> bool:  # a later model has it, the first has not: new kernels
        return len(counts) > 1 and not counts[0].get(op)

    chosen = sorted(ops, key=lambda op: (not appeared(op), -change(op), -most(op), op))[:top]
    return sorted(chosen, key=lambda op: (-most(op), op))


def chart_png(analyses: list[tuple[str, Analysis]], top: int = 15) -> bytes:
    """Two panels of horizontal bars, one bar per model, values written on them: compute op
    types (those that changed most, then the most frequent; an op type a later model has and
    the first has not is marked "new"), and below, the nodes that are not compute:
    constants/plumbing and variable/checkpoint bookkeeping."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    ops = chart_ops(analyses, top)
    first = analyses[0][1].op_counts if analyses else {}
    labels = [op + (" (new)" if len(analyses) > 1 and not first.get(op) else "")
              for op in ops]
    rest = list(CATEGORIES)
    rows = max(len(ops), 1)
    height_in = 2.2 + 0.3 * (rows + len(rest)) * len(analyses) + 0.2 * len(analyses)
    fig, (ax, ax2) = plt.subplots(
        2, 1, figsize=(8, height_in),
        gridspec_kw={"height_ratios": [rows, len(rest) + 0.5]})
    colors = ["#9e9e9e", "#1f77b4", "#ff7f0e", "#2ca02c"]
    height = 0.8 / max(len(analyses), 1)
    for i, (title, a) in enumerate(analyses):
        by_kind = Counter()
        for op, n in a.op_counts.items():
            by_kind[op_category(op)] += n
        legend = (f"{title}: {a.nodes} nodes stored" +
                  (f" ({a.frozen_nodes + a.frozen_function_nodes} in the frozen signature)"
                   if a.frozen_nodes and a.frozen_nodes + a.frozen_function_nodes != a.nodes
                   else ""))
        for axis, names, values in ((ax, labels, [a.op_counts.get(op, 0) for op in ops]),
                                    (ax2, rest, [by_kind[k] for k in rest])):
            y = [len(names) - 1 - j - i * height + 0.4 - height / 2 for j in range(len(names))]
            bars = axis.barh(y, values, height=height, color=colors[i % len(colors)],
                             label=legend)
            axis.bar_label(bars, padding=2, fontsize=7)
    ax.set_yticks(range(len(labels)), labels[::-1], fontsize=8)
    ax.set_title("Compute op types" + (" (new kernels and largest changes)" if len(analyses) > 1
                                       else ""), fontsize=10)
    ax.set_xlabel("nodes (main graph and function library)", fontsize=8)
    ax2.set_yticks(range(len(rest)), [f"{k}: {CATEGORIES[k]}" for k in rest][::-1],
                   fontsize=8)
    ax2.set_title("Not compute: storage, shape arithmetic, control flow", fontsize=10)
    ax2.set_xlabel("nodes (main graph and function library)", fontsize=8)
    for axis in (ax, ax2):
        axis.margins(x=0.15)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # counts: whole ticks
    # Below the panels, where it covers no bar.
    handles, names = ax.get_legend_handles_labels()
    fig.legend(handles, names, fontsize=7, loc="lower center", ncol=1, frameon=False)
    fig.tight_layout(rect=(0, (0.2 * len(analyses) + 0.1) / height_in, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def write_chart(path: str, analyses: list[tuple[str, Analysis]]) -> None:
    with open(path, "wb") as f:
        f.write(chart_png(analyses))


def _html_table(headers: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def summary_text(analyses: list[tuple[str, Analysis]]) -> str:
    """What changed between two models, in a sentence or three (one model: what it is)."""
    if len(analyses) != 2:
        a = analyses[0][1]
        return (f"{a.path}: {a.nodes} nodes stored, {_fmt_count(a.parameters)} parameters, "
                f"{_fmt_count(a.flops_per_sample)} FLOPs per sample.")
    (nb, before), (na, after) = analyses
    rows = compare_rows(before, after)
    new = [f"{op} ({c})" for op, b, c, _ in rows if c and not b and op_category(op) == "compute"]
    gone = [op for op, b, c, _ in rows if b and not c and op_category(op) == "compute"]
    frozen = before.frozen_nodes + before.frozen_function_nodes
    text = (f"The {na} model has {after.nodes} nodes where the {nb} one stores {before.nodes}"
            + (f" ({frozen} of them in the frozen signature, the graph the runtime executes; "
               "the rest are variables, checkpoint and initializer nodes)"
               if frozen and frozen != before.nodes else "") + ". ")
    if new:
        text += f"Appeared: {', '.join(new[:6])}. "
    if gone:
        text += f"Gone: {', '.join(gone[:8])}. "
    text += (f"Parameters {_fmt_count(before.parameters)} -> {_fmt_count(after.parameters)}, "
             f"FLOPs per sample {_fmt_count(before.flops_per_sample)} -> "
             f"{_fmt_count(after.flops_per_sample)}.")
    return text


STYLE = ("body{font-family:sans-serif;margin:2em;max-width:1100px;line-height:1.4}"
         "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
         "padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
         "pre{background:#f5f5f5;padding:1em;white-space:pre-wrap;overflow-x:auto}"
         "img{max-width:100%;height:auto}.summary{font-size:1.1em;background:#eef5fb;"
         "padding:0.8em 1.2em;border-left:4px solid #1f77b4}")


def html_page(title: str, analyses: list[tuple[str, Analysis]],
              extra_sections: list[tuple[str, str]] | None = None,
              summary: str | None = None) -> str:
    """One self-contained page: a prose summary first (``summary``, else what changed), then
    the sections, the chart (embedded as a data: URI), facts and op tables."""
    png = base64.b64encode(chart_png(analyses)).decode()
    lead = summary if summary is not None else html.escape(summary_text(analyses))
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title><style>{STYLE}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>", f"<div class='summary'>{lead}</div>"]
    for heading, body in extra_sections or []:
        parts.append(f"<h2>{html.escape(heading)}</h2>{body}")
    parts.append(f"<h2>Op-type breakdown</h2><img alt='op-type chart' "
                 f"src='data:image/png;base64,{png}'>")
    for name, a in analyses:
        parts.append(f"<h2>{html.escape(name)}: {html.escape(a.path)}</h2>")
        parts.append(_html_table(["fact", "value"], [
            ["kind", a.kind], ["nodes stored (every signature, variables, checkpoint ops)",
                               a.nodes],
            ["nodes in the frozen signature (what tfopt optimize counts)",
             f"{a.frozen_nodes} + {a.frozen_function_nodes} in functions"
             if a.frozen_function_nodes else a.frozen_nodes],
            ["parameters", _fmt_count(a.parameters)],
            ["constants", f"{a.constant_bytes / 1e6:.1f} MB"],
            ["FLOPs per sample", _fmt_count(a.flops_per_sample)],
            ["runtime", runtime_line(a).strip().removeprefix("runtime: ") or "any"],
            ["inputs", ", ".join(f"{k} {v}" for k, v in a.inputs.items())],
            ["outputs", ", ".join(f"{k} {v}" for k, v in a.outputs.items())]]))
        parts.append(_html_table(["op type", "count", "share"],
                                 [[op, n, f"{s:.1%}"] for op, n, s in a.shares()]))
    if len(analyses) == 2:
        before, after = analyses[0][1], analyses[1][1]
        parts.append("<h2>Before / after</h2>")
        parts.append(_html_table(["op type", "before", "after", "diff"],
                                 [[op, b, c, f"{d:+d}"] for op, b, c, d in
                                  compare_rows(before, after)]))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html(path: str, title: str, analyses: list[tuple[str, Analysis]],
               extra_sections: list[tuple[str, str]] | None = None,
               summary: str | None = None) -> None:
    with open(path, "w") as f:
        f.write(html_page(title, analyses, extra_sections, summary))


def write_json(path: str, analyses: list[tuple[str, Analysis]]) -> None:
    with open(path, "w") as f:
        json.dump({name: a.to_dict() for name, a in analyses}, f, indent=2)


def check_writable(path: str | None) -> None:
    if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise TfoptError(f"{path}: parent directory does not exist")


__all__ = ["Analysis", "TensorInfo", "analyze", "compare_report", "text_report", "write_chart",
           "write_html", "write_json"]
