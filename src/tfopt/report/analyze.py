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

from tfopt.errors import TfoptError
from tfopt.graph.ops import BATCH_MATMUL_OPS
from tfopt.graph.view import const_value, function_nodes, get_attr
from tfopt.model.formats import ModelFormat, detect, load_model
from tfopt.model.loader import pick_signature
from tfopt.model.paths import read_metadata
from tfopt.model.signature import TensorInfo

CONV_OPS = {"Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "_FusedDepthwiseConv2dNative",
            "MatMul", "_FusedMatMul", "Conv2DBackpropInput"}


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


MATMUL_OPS = {"MatMul", "_FusedMatMul"}
FLOP_OPS = CONV_OPS | BATCH_MATMUL_OPS | {"Einsum"}


def _einsum_flops(equation: str, shapes: list[list[int]]) -> int | None:
    """2 x the product of every index's size: one multiply-add per point of the iteration
    space of a two-operand contraction ("btd,dh->bth": 2*b*t*d*h)."""
    lhs = equation.replace(" ", "").split("->")[0]
    subs = lhs.split(",")
    if len(subs) != len(shapes):
        return None
    sizes: dict[str, int] = {}
    for sub, shape in zip(subs, shapes, strict=True):
        if "..." in sub:
            head, tail = sub.split("...")
            extra = len(shape) - len(head) - len(tail)
            sub = head + "".join(chr(0x100 + i) for i in range(extra)) + tail
        if len(sub) != len(shape):
            return None
        for letter, dim in zip(sub, shape, strict=True):
            sizes[letter] = max(sizes.get(letter, 1), dim)
    return 2 * int(np.prod(list(sizes.values()), dtype=np.int64))


def _node_flops(node, static) -> int | None:
    """Multiply-add FLOPs of one node at the static shapes, or None if a shape is unknown."""
    out = static.shape(node.name + ":0")
    ins = [static.shape(t) for t in node.input if not t.startswith("^")]
    if node.op == "Conv2DBackpropInput":
        ins = ins[1:3]  # (filter, out_backprop); the output is what the transposed conv makes
    shapes = [s.as_list() if s is not None and s.rank is not None else None for s in ins]
    if out is None or out.rank is None or any(s is None or None in s for s in shapes[:2]) \
            or None in out.as_list():
        return None
    size = int(np.prod(out.as_list(), dtype=np.int64))
    if node.op == "Einsum":
        return _einsum_flops(get_attr(node, "equation", ""), shapes)
    if node.op in MATMUL_OPS:
        a = shapes[0]
        return 2 * size * (a[0] if get_attr(node, "transpose_a") else a[1])
    if node.op in BATCH_MATMUL_OPS:
        a = shapes[0]
        return 2 * size * (a[-2] if get_attr(node, "adj_x") else a[-1])
    w = shapes[1] if node.op != "Conv2DBackpropInput" else shapes[0]
    if node.op == "Conv2DBackpropInput":  # every input pixel meets kh*kw*cout weights
        return 2 * int(np.prod(shapes[1], dtype=np.int64)) * w[0] * w[1] * w[2]
    if "Depthwise" in node.op:  # each output channel sees kh*kw inputs
        return 2 * size * w[0] * w[1]
    return 2 * size * w[0] * w[1] * w[2]  # Conv2D (grouped too: w[2] is per group)


def _flops(graph_def, static) -> tuple[int, int]:
    """Total FLOPs of the matmul/conv/einsum nodes, and how many had unknown shapes."""
    total = unknown = 0
    for node in graph_def.node:
        if node.op not in FLOP_OPS:
            continue
        flops = _node_flops(node, static)
        if flops is None:
            unknown += 1
        else:
            total += flops
    return total, unknown


def concrete_inputs(graph_def, inputs: dict) -> tuple[object, str]:
    """A copy of ``graph_def`` whose input placeholders have concrete shapes (batch 1, the
    verification defaults for other unknown dims), and what was assumed: FLOPs need sizes."""
    from tfopt.graph.view import node_of
    from tfopt.verify.inputs import resolve_shape

    graph_def = type(graph_def).FromString(graph_def.SerializeToString())
    by_name = {n.name: n for n in graph_def.node}
    assumed = []
    for key, info in inputs.items():
        node = by_name.get(node_of(info.tensor))
        if node is None or node.op != "Placeholder":
            continue
        try:
            shape, note = resolve_shape(key, info, 1, {})
        except Exception:
            continue
        if note:
            assumed.append(f"{key} {list(shape)}")
        node.attr["shape"].shape.Clear()
        for d in shape:
            node.attr["shape"].shape.dim.add(size=d)
    return graph_def, ", ".join(assumed)


def analyze(path: str, signature: str | None = None, facts: bool = True) -> Analysis:
    """Analyze the model at ``path`` (SavedModel, .pb/.pbtxt or .keras)."""
    from tfopt.graph.shapes import StaticInfo

    fmt = detect(path)
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
        for node in sig.graph_def.node:
            if node.op == "Const":
                value = const_value(node)
                const_bytes += value.nbytes
                if value.dtype.kind == "f" and value.size > 1:
                    params += value.size
        sized, assumed = concrete_inputs(sig.graph_def, sig.inputs)
        flops, unknown = _flops(sig.graph_def, StaticInfo(sized))
        if assumed:
            notes.append(f"FLOPs counted at {assumed} (unknown dims set as for verification)")
    fused, runtimes = _runtime_needs(model)
    frozen = model.signatures[key].graph_def if model is not None else None
    return Analysis(path, fmt.name, dict(counts), functions, sum(counts.values()), params,
                    const_bytes, flops, unknown, inputs, outputs, notes, fused, runtimes,
                    read_metadata(path) if fmt.loads_by_path else None,
                    len(frozen.node) if frozen else 0,
                    function_nodes(frozen) if frozen else 0)


def _runtime_needs(model) -> tuple[dict[str, int], list[str]]:
    """The model's fused kernels and the CPU runtimes (oneDNN on/off) that run them all."""
    from tfopt.graph.kernels import fusion_names, fusions_in, runtimes_running

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


def text_report(a: Analysis, top: int | None = None, show_functions: bool = False) -> str:
    main = sum(a.op_counts.values()) - sum(sum(c.values()) for c in a.function_counts.values())
    lines = [f"{a.path} ({a.kind})",
             f"  stored graph: {a.nodes} nodes (main graph {main}, {len(a.function_counts)} "
             f"functions {a.nodes - main})"
             + (f"; frozen signature (what tfopt optimize counts): main graph "
                f"{a.frozen_nodes}, function library {a.frozen_function_nodes}"
                if a.frozen_nodes else ""),
             f"  parameters {_fmt_count(a.parameters)}, constants "
             f"{a.constant_bytes / 1e6:.2f} MB, FLOPs/sample {_fmt_count(a.flops_per_sample)}"
             + (f" ({a.flops_unknown_ops} ops with unknown shapes not counted)"
                if a.flops_unknown_ops else "")]
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
                 f"{after.nodes - before.nodes:>+7}")
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


# Ops that hold or pass data rather than compute: counted apart in the charts.
STRUCTURAL_OPS = {"Const", "Identity", "Placeholder", "PlaceholderWithDefault", "NoOp",
                  "VariableV2", "VarHandleOp", "ReadVariableOp", "Assign", "AssignVariableOp",
                  "RestoreV2", "SaveV2", "StringJoin", "ShardedFilename", "MergeV2Checkpoints",
                  "StatefulPartitionedCall", "PartitionedCall"}


def chart_png(analyses: list[tuple[str, Analysis]], top: int = 15) -> bytes:
    """Horizontal bars of compute-op counts, one bar per model and op type, most frequent
    first; constants, variables and other data-holding nodes are summed in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    totals: Counter = Counter()
    for _, a in analyses:
        totals.update({op: n for op, n in a.op_counts.items() if op not in STRUCTURAL_OPS})
    ops = [op for op, _ in sorted(totals.items(), key=lambda x: (-x[1], x[0]))[:top]]
    height = 0.8 / max(len(analyses), 1)
    fig, ax = plt.subplots(figsize=(8, 1.5 + 0.32 * max(len(ops), 1) * len(analyses)))
    colors = ["#9e9e9e", "#1f77b4", "#ff7f0e", "#2ca02c"]
    for i, (title, a) in enumerate(analyses):
        y = [len(ops) - 1 - j - i * height + 0.4 - height / 2 for j in range(len(ops))]
        values = [a.op_counts.get(op, 0) for op in ops]
        structural = sum(n for op, n in a.op_counts.items() if op in STRUCTURAL_OPS)
        bars = ax.barh(y, values, height=height, color=colors[i % len(colors)],
                       label=f"{title}: {a.nodes} nodes ({structural} constants/variables/"
                             "identities not drawn)")
        ax.bar_label(bars, padding=2, fontsize=7)
    ax.set_yticks(range(len(ops)), ops[::-1], fontsize=8)
    ax.set_xlabel("nodes (main graph and function library)")
    ax.margins(x=0.12)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("compute op types", fontsize=10)
    fig.tight_layout()
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


def html_page(title: str, analyses: list[tuple[str, Analysis]],
              extra_sections: list[tuple[str, str]] | None = None) -> str:
    """One self-contained page: facts, op tables, the chart embedded as a data: URI."""
    png = base64.b64encode(chart_png(analyses)).decode()
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             "</title><style>body{font-family:sans-serif;margin:2em;max-width:1100px}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
             "padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
             "pre{background:#f5f5f5;padding:1em}img{max-width:100%;height:auto}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    for heading, body in extra_sections or []:
        parts.append(f"<h2>{html.escape(heading)}</h2>{body}")
    parts.append(f"<h2>Op-type breakdown</h2><img alt='op-type chart' "
                 f"src='data:image/png;base64,{png}'>")
    for name, a in analyses:
        parts.append(f"<h2>{html.escape(name)}: {html.escape(a.path)}</h2>")
        parts.append(_html_table(["fact", "value"], [
            ["kind", a.kind], ["nodes", a.nodes], ["parameters", _fmt_count(a.parameters)],
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
               extra_sections: list[tuple[str, str]] | None = None) -> None:
    with open(path, "w") as f:
        f.write(html_page(title, analyses, extra_sections))


def write_json(path: str, analyses: list[tuple[str, Analysis]]) -> None:
    with open(path, "w") as f:
        json.dump({name: a.to_dict() for name, a in analyses}, f, indent=2)


def check_writable(path: str | None) -> None:
    if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise TfoptError(f"{path}: parent directory does not exist")


__all__ = ["Analysis", "TensorInfo", "analyze", "compare_report", "text_report", "write_chart",
           "write_html", "write_json"]
