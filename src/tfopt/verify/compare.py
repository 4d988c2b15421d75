"""Does an output answer like the original's? A policy says how close is close enough.

The float comparison is *relative to the output's scale*:
``rel = max|optimized - original| / max|original|`` per output (NaNs must match NaNs), so one
near-zero element cannot make a correct model look wrong. Integer, bool and string outputs
must match exactly. A :class:`Policy` holds the tolerance, per output where it must differ
(reduced precision will add its own metrics here).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tfopt.options import DEFAULT_TOLERANCE


@dataclass(frozen=True)
class Policy:
    """How close each output must be: ``tolerance`` on the relative difference, or the value
    ``per_output`` gives for that output key."""

    tolerance: float = DEFAULT_TOLERANCE
    per_output: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, value: Policy | float) -> Policy:
        return value if isinstance(value, Policy) else cls(float(value))

    def tolerance_for(self, key: str) -> float:
        return self.per_output.get(key, self.tolerance)


@dataclass
class OutputCheck:
    key: str
    ok: bool
    max_abs: float
    rel: float
    detail: str = ""
    runtime: str = ""  # the CPU runtime the optimized model ran under ("" : this process's)

    def describe(self) -> str:
        from tfopt.runtime import runtime_label

        status = "ok" if self.ok else "DIFFERS"
        where = f" [{runtime_label(self.runtime)}]" if self.runtime else ""
        text = (f"{self.key}{where}: max abs diff {self.max_abs:.3g}, relative {self.rel:.3g} "
                f"[{status}]")
        return text + (f" ({self.detail})" if self.detail else "")

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def compare_output(key: str, ref: np.ndarray, got: np.ndarray, tolerance: float) -> OutputCheck:
    ref, got = np.asarray(ref), np.asarray(got)
    if ref.shape != got.shape:
        return OutputCheck(key, False, float("inf"), float("inf"),
                           f"shape {got.shape} instead of {ref.shape}")
    if ref.dtype.kind in "fc":
        ref64, got64 = ref.astype(np.float64), got.astype(np.float64)
        nan_ref, nan_got = np.isnan(ref64), np.isnan(got64)
        if (nan_ref != nan_got).any():
            return OutputCheck(key, False, float("nan"), float("nan"), "NaNs differ")
        diff = np.abs(np.where(nan_ref, 0.0, ref64 - got64))
        max_abs = float(diff.max()) if diff.size else 0.0
        scale = float(np.abs(np.where(nan_ref, 0.0, ref64)).max()) if diff.size else 0.0
        rel = max_abs / scale if scale > 0 else max_abs
        return OutputCheck(key, rel <= tolerance, max_abs, rel)
    mismatches = int(np.count_nonzero(ref != got))
    if ref.dtype.kind in "iub":
        max_abs = float(np.abs(ref.astype(np.int64) - got.astype(np.int64)).max()) if ref.size else 0.0
    else:
        max_abs = float(mismatches)
    return OutputCheck(key, mismatches == 0, max_abs, 0.0 if mismatches == 0 else 1.0,
                       f"{mismatches} elements differ" if mismatches else "exact")


def compare(ref: dict[str, np.ndarray], got: dict[str, np.ndarray],
            policy: Policy | float = DEFAULT_TOLERANCE) -> list[OutputCheck]:
    """One check per output of ``ref``, each against the policy's tolerance for that output."""
    policy = Policy.of(policy)
    checks = []
    for key in ref:
        if key not in got:
            checks.append(OutputCheck(key, False, float("inf"), float("inf"), "missing output"))
        else:
            checks.append(compare_output(key, ref[key], got[key], policy.tolerance_for(key)))
    return checks
