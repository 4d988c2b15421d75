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

from tfopt.model import SignatureGraph
from tfopt.verify import open_session


@dataclass
class OpProfile:
    total_ms: float                       # summed kernel time per run
    by_op: list[tuple[str, float, int]]   # (op type, ms per run, nodes), most expensive first

    def share(self, op_prefixes: tuple[str, ...]) -> float:
        part = sum(ms for op, ms, _ in self.by_op if op.lstrip("_").startswith(op_prefixes))
        return part / self.total_ms if self.total_ms else 0.0

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
    feed_dict = {sig.inputs[k].tensor: v for k, v in feeds.items()}
    times: Counter = Counter()
    nodes: Counter = Counter()
    options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
    with open_session(sig) as sess:
        for _ in range(warmup):
            sess.run(fetches, feed_dict)
        for _ in range(runs):
            meta = tf.compat.v1.RunMetadata()
            sess.run(fetches, feed_dict, options=options, run_metadata=meta)
            for dev in meta.step_stats.dev_stats:
                for ns in dev.node_stats:
                    op = _op_type(ns.timeline_label, ns.node_name)
                    times[op] += ns.op_end_rel_micros - ns.op_start_rel_micros
                    nodes[op] += 1
    total = sum(times.values()) / runs / 1000
    by_op = [(op, t / runs / 1000, nodes[op] // runs) for op, t in times.most_common()]
    return OpProfile(total, by_op)
