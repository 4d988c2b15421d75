"""Which op types take the time: per-op step statistics from TensorFlow's own tracer.

The graph is run in a ``Session`` (Grappler on, as in serving) with ``FULL_TRACE``; kernel
times are summed per op type *as executed*, so the runtime's own fusions show under their
kernel names (``_MklNativeFusedConv2D``...). That is what tells whether a graph rewrite can
still help: time already spent in fused conv kernels is beyond any rewrite that keeps fp32.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from tfopt.model.signature import SignatureGraph
from tfopt.verify.runners import feed_dict, open_session

# Kernels that do a model's multiply-adds, under any runtime's name for them (_MklEinsum,
# _MklNativeFusedMatMul, _FusedConv2D, DepthwiseConv2dNative...).
DENSE_KERNELS = ("MatMul", "Einsum", "Conv2D", "Conv3D", "Depthwise")


@dataclass
class OpProfile:
    total_ms: float                       # summed kernel time per run
    by_op: list[tuple[str, float, int]]   # (op type, ms per run, nodes), most expensive first

    def share(self, op_prefixes: tuple[str, ...]) -> float:
        part = sum(ms for op, ms, _ in self.by_op if op.lstrip("_").startswith(op_prefixes))
        return part / self.total_ms if self.total_ms else 0.0

    def fused_share(self) -> float:
        """Share of kernel time in fused kernels (tfopt's or the runtime's own)."""
        return self.share(("Fused", "MklNativeFused", "MklFused", "MklNativeConv", "MklConv"))

    def dense_share(self) -> float:
        """Share of kernel time in matmul, einsum and convolution kernels. Its inverse bounds
        what a float32 rewrite can gain when those kernels already run near the CPU's peak:
        the rest of the time is all a graph rewrite can take away."""
        part = sum(ms for op, ms, _ in self.by_op if any(k in op for k in DENSE_KERNELS))
        return part / self.total_ms if self.total_ms else 0.0

    def ms(self, op: str) -> float:
        return next((ms for name, ms, _ in self.by_op if name == op), 0.0)

    def table(self, top: int = 10) -> str:
        lines = [f"{'op type (as executed)':<34} {'ms/run':>8} {'share':>6} {'nodes':>6}"]
        for op, ms, n in self.by_op[:top]:
            lines.append(f"{op:<34} {ms:>8.2f} {ms / self.total_ms:>6.1%} {n:>6}")
        lines.append(f"{'total kernel time':<34} {self.total_ms:>8.2f}")
        return "\n".join(lines)


def _op_type(label: str, fallback: str) -> str:
    # timeline_label looks like "name = OpType(inputs)"
    if "=" in label:
        return label.split("=", 1)[1].split("(", 1)[0].strip()
    return fallback


def _calls_inlined(sig: SignatureGraph) -> SignatureGraph:
    """``sig`` with its function calls inlined: a graph whose lowered loops sit in a called
    function (tfopt's TF2 SavedModels) otherwise profiles as one ``PartitionedCall`` op
    timed across the whole loop, hiding every kernel in it."""
    from tfopt.passes.base import PassContext
    from tfopt.passes.inline_calls import InlineCalls

    result = InlineCalls().run(sig.graph_def, PassContext.of_signature(sig))
    return sig.with_graph(result.graph_def) if result.changed else sig


def profile_graph(sig: SignatureGraph, feeds: dict[str, np.ndarray], runs: int = 5,
                  warmup: int = 3) -> OpProfile:
    sig = _calls_inlined(sig)
    fetches = [t.tensor for t in sig.outputs.values()]
    fed = feed_dict(sig, feeds)
    times: Counter = Counter()
    nodes: Counter = Counter()
    options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
    with open_session(sig) as sess:
        for _ in range(warmup):
            sess.run(fetches, fed)
        for _ in range(runs):
            meta = tf.compat.v1.RunMetadata()
            sess.run(fetches, fed, options=options, run_metadata=meta)
            for dev in meta.step_stats.dev_stats:
                for ns in dev.node_stats:
                    op = _op_type(ns.timeline_label, ns.node_name)
                    times[op] += ns.op_end_rel_micros - ns.op_start_rel_micros
                    nodes[op] += 1
    total = sum(times.values()) / runs / 1000
    by_op = [(op, t / runs / 1000, nodes[op] // runs) for op, t in times.most_common()]
    return OpProfile(total, by_op)


def compare_table(before: OpProfile, after: OpProfile, top: int = 12) -> list[tuple[str, float,
                                                                                     float]]:
    """(op type, ms before, ms after) for the op types that take the most time in either."""
    ops = {op for op, _, _ in before.by_op} | {op for op, _, _ in after.by_op}
    rows = [(op, before.ms(op), after.ms(op)) for op in ops]
    rows.sort(key=lambda r: (-max(r[1], r[2]), r[0]))
    return rows[:top]


def compare_text(before: OpProfile, after: OpProfile, top: int = 12) -> str:
    rows = compare_table(before, after, top)
    width = max([len(r[0]) for r in rows] + [20])
    lines = [f"{'op type (as executed)'.ljust(width)}  {'before ms':>9}  {'after ms':>9}  "
             f"{'diff':>8}"]
    for op, b, a in rows:
        lines.append(f"{op.ljust(width)}  {b:>9.2f}  {a:>9.2f}  {a - b:>+8.2f}")
    every = compare_table(before, after, top=10_000)
    if len(every) > len(rows):  # the rows add up to the total
        rest = every[len(rows):]
        b, a = sum(r[1] for r in rest), sum(r[2] for r in rest)
        label = f"other {len(rest)} op types".ljust(width)
        lines.append(f"{label}  {b:>9.2f}  {a:>9.2f}  {a - b:>+8.2f}")
    lines.append(f"{'total kernel time'.ljust(width)}  {before.total_ms:>9.2f}  "
                 f"{after.total_ms:>9.2f}  {after.total_ms - before.total_ms:>+8.2f}")
    return "\n".join(lines)


def compare_png(before: OpProfile, after: OpProfile, top: int = 10) -> bytes:
    """Horizontal bars: kernel ms per run per op type, original and optimized, values on the
    bars. Op types under 1% of the larger total are summed into one "other" row rather than
    drawn as rows too short to see."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    floor = 0.01 * max(before.total_ms, after.total_ms)
    every = compare_table(before, after, top=10_000)
    rows = [r for r in every if max(r[1], r[2]) >= floor][:top]
    shown = {r[0] for r in rows}
    others = [r for r in every if r[0] not in shown]
    if others:
        rows.append((f"other ({len(others)} op types)", sum(r[1] for r in others),
                     sum(r[2] for r in others)))
    fig, ax = plt.subplots(figsize=(8, 1.8 + 0.5 * len(rows)))
    y = list(range(len(rows)))[::-1]
    for offset, values, color, label in (
            (0.2, [r[1] for r in rows], "#9e9e9e", f"original: {before.total_ms:.1f} ms"),
            (-0.2, [r[2] for r in rows], "#1f77b4", f"optimized: {after.total_ms:.1f} ms")):
        bars = ax.barh([v + offset for v in y], values, height=0.4, color=color, label=label)
        ax.bar_label(bars, labels=[f"{v:.1f}" if v >= 0.1 else f"{v:.2f}" for v in values],
                     padding=2, fontsize=7)
    ax.set_yticks(y, [r[0] for r in rows], fontsize=8)
    ax.margins(x=0.12)
    ax.set_title("Kernel time per op type, per run (summed over threads: may exceed latency)",
                 fontsize=10)
    ax.set_xlabel("ms per run, op types as executed (after the runtime's own fusions)",
                  fontsize=8)
    ax.legend(fontsize=8, loc="lower right", title="total kernel time", title_fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
