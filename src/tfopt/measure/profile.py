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


def profile_graph(sig: SignatureGraph, feeds: dict[str, np.ndarray], runs: int = 5,
                  warmup: int = 3) -> OpProfile:
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
    lines.append(f"{'total kernel time'.ljust(width)}  {before.total_ms:>9.2f}  "
                 f"{after.total_ms:>9.2f}  {after.total_ms - before.total_ms:>+8.2f}")
    return "\n".join(lines)


def compare_png(before: OpProfile, after: OpProfile, top: int = 12) -> bytes:
    """Horizontal bars: kernel ms per run per op type, before and after."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = compare_table(before, after, top)
    fig, ax = plt.subplots(figsize=(8, 1.5 + 0.45 * len(rows)))
    y = list(range(len(rows)))[::-1]
    ax.barh([v + 0.2 for v in y], [r[1] for r in rows], height=0.4, color="#9e9e9e",
            label=f"original ({before.total_ms:.1f} ms kernel time per run)")
    ax.barh([v - 0.2 for v in y], [r[2] for r in rows], height=0.4, color="#1f77b4",
            label=f"optimized ({after.total_ms:.1f} ms)")
    ax.set_yticks(y, [r[0] for r in rows], fontsize=8)
    ax.set_xlabel("kernel time per run (ms), by op type as executed")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
