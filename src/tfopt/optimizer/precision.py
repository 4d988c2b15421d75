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

import dataclasses

from tfopt.optimizer.candidates import Candidate, Driver, faster_than_baseline
from tfopt.runtime import bf16_hardware, current_runtime, int8_hardware, runtime_label


def why_not_bf16() -> str | None:
    """Why bf16 cannot be faster in this process (None: it may be)."""
    if not bf16_hardware():
        return "this CPU has no bfloat16 instructions (AVX512_BF16 or AMX)"
    if current_runtime() != "onednn":
        return f"{runtime_label(current_runtime())}: only oneDNN runs bf16 fast"
    return None


def why_not_int8(calibrated: bool) -> str | None:
    """Why int8 is no candidate here (None: it is)."""
    if not int8_hardware():
        return "this CPU has no int8 dot-product instructions (VNNI or AMX)"
    if not calibrated:
        return "no --calibration-file to calibrate it on"
    return None


def choose(driver: Driver, fp32: Candidate) -> tuple[Candidate, list[Candidate], list[str]]:
    """``--precision auto``: the candidates in each reduced precision that can pay here,
    built, verified against their budgets and timed against ``fp32`` in one run. Returns the
    kept candidate, those tried, and a note for each."""
    notes: list[str] = []
    tried: list[Candidate] = []
    for precision, why in (("bf16", why_not_bf16()), ("int8", why_not_int8(bool(driver.int8)))):
        if why is not None:
            notes.append(f"precision auto: no {precision} ({why})")
            continue
        cand = driver.build(dataclasses.replace(fp32.recipe, precision=precision), precision,
                            "precision")
        tried.append(cand)
        if not driver.verify(cand):
            notes.append(f"precision auto: no {precision} (it misses the accuracy budget: "
                         f"{cand.why_not.removeprefix('answers differently: ')})")
    good = [c for c in tried if not c.why_not]
    key = next(k for k, s in fp32.sigs.items() if not s.same_as)
    if good:
        driver.say(f"precision auto: timing {key} in {', '.join(c.name for c in good)} "
                   "against float32 ...")
    driver.time(fp32, good, key)
    for cand in good:
        if not cand.speed.ratio.faster:
            why = "slower" if cand.speed.ratio.measurable else "no measurable gain"
            cand.drop(f"{cand.speed.ratio.short()} against float32: {why}")
            notes.append(f"precision auto: no {cand.name} ({cand.why_not})")
    best = faster_than_baseline(fp32, tried)
    if best is fp32:
        notes.append("precision auto: float32")
        return fp32, tried, notes
    notes.append(f"precision auto: {best.name}, {best.speed.ratio.short()} faster than float32")
    for cand in good:
        if cand is not best and not cand.why_not:
            cand.drop(f"{cand.speed.ratio.short()} faster than float32, less than {best.name}")
            notes.append(f"precision auto: no {cand.name} ({cand.why_not})")
    return best, tried, notes
