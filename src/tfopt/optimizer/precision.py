"""``--precision auto``: bf16 only where it is accurate enough *and* measurably faster.

The float32 result of the passes is the default. Where bf16 can pay at all (a CPU with
AVX512_BF16 or AMX, oneDNN on in this process), the passes run again with bf16 on; the
candidate is written and verified against the bf16 budget under every CPU runtime, then timed
against the float32 result (fresh processes, interleaved, as ``--xla auto`` does). bf16 is kept
only when the budget holds and the gain's interval lies above 1.0; otherwise float32, and the
notes say why either way.
"""

from __future__ import annotations

import dataclasses
import tempfile
from typing import TYPE_CHECKING

from tfopt.runtime import bf16_hardware, current_runtime, runtime_label
from tfopt.verify import whole
from tfopt.verify.compare import Policy

if TYPE_CHECKING:
    from tfopt.optimizer.stages import State


def why_not_bf16() -> str | None:
    """Why bf16 cannot be faster in this process (None: it may be)."""
    if not bf16_hardware():
        return "this CPU has no bfloat16 instructions (AVX512_BF16 or AMX)"
    if current_runtime() != "onednn":
        return f"{runtime_label(current_runtime())}: only oneDNN runs bf16 fast"
    return None


def choose(state: State, optimize_all, write) -> None:
    """Decide ``state.precision`` for ``--precision auto`` (``optimize_all(precision)`` reruns
    the passes into the state, ``write(path)`` writes the state's graphs)."""
    notes = state.model.notes
    if (why := why_not_bf16()) is not None:
        notes.append(f"precision auto: float32 ({why})")
        return
    fp32 = (dict(state.optimized), dict(state.reports))
    optimize_all("bf16")
    policy = dataclasses.replace(Policy.for_precision("bf16", state.options.budget_for("bf16")),
                                 selections=state.policy.selections, labels=state.policy.labels)
    with tempfile.TemporaryDirectory(prefix="tfopt-bf16-") as tmp:
        path = f"{tmp}/candidate"
        write(path)
        checks = whole.check_written(path, state.options.format, state.optimized,
                                     state.feeds, state.refs, policy, state.runtimes)
    bad = [c for key in whole.failing(checks) for c in checks[key] if not c.ok]
    bf16 = (dict(state.optimized), dict(state.reports))
    state.optimized, state.reports = fp32
    if bad:
        notes.append(f"precision auto: float32 (bf16 misses the accuracy budget: "
                     f"{bad[0].describe()})")
        return
    from tfopt.measure.benchmark import time_candidate

    key = next(k for k, s in state.optimized.items() if not s.same_as)
    state.say(f"precision auto: timing {key} in bf16 against float32 ...")
    timed = time_candidate(state.optimized[key], bf16[0][key], key, state.model.tags,
                           state.feeds[key], state.say)
    if not timed.faster:
        notes.append(f"precision auto: float32 (bf16 {timed.short()} against float32: no "
                     "measurable gain)")
        return
    state.optimized, state.reports = bf16
    state.precision, state.policy = "bf16", policy
    notes.append(f"precision auto: bf16, {timed.short()} faster than float32")
