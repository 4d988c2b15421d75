"""``--precision auto``: a reduced precision only where it is accurate enough *and* measurably
faster.

The float32 result of the passes is the default. Each reduced precision that can pay here is
a candidate: bf16 where the CPU has AVX512_BF16 or AMX and oneDNN is on in this process; int8
where the CPU has VNNI or AMX and ``--calibration-file`` gave samples to calibrate on (the
ranges and the ops kept in float32 were fitted before the passes, like ``--precision int8``).
For each, the passes run again in that precision; the candidate is written and verified
against its own budget under every CPU runtime, then timed against the float32 result (fresh
processes, interleaved, as ``--xla auto`` does). The fastest candidate whose budget holds and
whose gain's interval lies above 1.0 is kept; otherwise float32. The notes say why for every
candidate, the runner-up included.
"""

from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING

from tfopt.runtime import bf16_hardware, current_runtime, int8_hardware, runtime_label
from tfopt.verify import whole
from tfopt.verify.compare import Policy

if TYPE_CHECKING:
    from tfopt.measure.stats import Ratio
    from tfopt.optimizer.stages import State


def why_not_bf16() -> str | None:
    """Why bf16 cannot be faster in this process (None: it may be)."""
    if not bf16_hardware():
        return "this CPU has no bfloat16 instructions (AVX512_BF16 or AMX)"
    if current_runtime() != "onednn":
        return f"{runtime_label(current_runtime())}: only oneDNN runs bf16 fast"
    return None


def why_not_int8(state: State) -> str | None:
    """Why int8 is no candidate here (None: it is)."""
    if not int8_hardware():
        return "this CPU has no int8 dot-product instructions (VNNI or AMX)"
    if not state.int8:
        return "no --calibration-file to calibrate it on"
    return None


def choose(state: State, optimize_all, write) -> None:
    """Decide ``state.precision`` for ``--precision auto`` (``optimize_all(precision)`` reruns
    the passes into the state, ``write(path)`` writes the state's graphs)."""
    notes = state.model.notes
    fp32 = (dict(state.optimized), dict(state.reports))
    kept: dict[str, tuple[tuple, Policy, Ratio]] = {}
    for precision, why in (("bf16", why_not_bf16()), ("int8", why_not_int8(state))):
        if why is not None:
            notes.append(f"precision auto: no {precision} ({why})")
            continue
        tried = _try(state, precision, optimize_all, write, fp32)
        state.optimized, state.reports = fp32
        if tried is not None:
            kept[precision] = tried
    if not kept:
        notes.append("precision auto: float32")
        return
    best = max(kept, key=lambda p: kept[p][2].value)
    (state.optimized, state.reports), state.policy, timed = kept[best]
    state.precision = best
    notes.append(f"precision auto: {best}, {timed.short()} faster than float32")
    for precision in kept.keys() - {best}:
        notes.append(f"precision auto: no {precision} ({kept[precision][2].short()} faster "
                     f"than float32, less than {best})")


def _try(state: State, precision: str, optimize_all, write, fp32
         ) -> tuple[tuple, Policy, Ratio] | None:
    """Passes, write, verify and time one candidate precision; None (with a note) when it
    misses its budget or is not measurably faster than float32."""
    notes = state.model.notes
    optimize_all(precision)
    policy = state.policy_in(precision)
    with tempfile.TemporaryDirectory(prefix=f"tfopt-{precision}-") as tmp:
        path = f"{tmp}/candidate"
        write(path)
        checks = whole.check_written(path, state.options.format, state.optimized,
                                     state.feeds, state.refs, policy, state.runtimes)
    bad = [c for key in whole.failing(checks) for c in checks[key] if not c.ok]
    if bad:
        notes.append(f"precision auto: no {precision} (it misses the accuracy budget: "
                     f"{bad[0].describe()})")
        return None
    from tfopt.measure.benchmark import time_candidate

    key = next(k for k, s in state.optimized.items() if not s.same_as)
    state.say(f"precision auto: timing {key} in {precision} against float32 ...")
    timed = time_candidate(fp32[0][key], state.optimized[key], key, state.model.tags,
                           state.feeds[key], state.say)
    if not timed.faster:
        why = "slower" if timed.measurable else "no measurable gain"
        notes.append(f"precision auto: no {precision} ({timed.short()} against float32: {why})")
        return None
    return (dict(state.optimized), dict(state.reports)), policy, timed
