"""Does an output answer like the original's? A policy says how close is close enough.

The float comparison is *relative to the output's scale*:
``rel = max|optimized - original| / max|original|`` per output (NaNs must match NaNs), so one
near-zero element cannot make a correct model look wrong. Reduced precision is judged by the
root-mean-square instead (``rms(optimized - original) / rms(original)``): bf16 moves a few
boundary samples' probabilities by several percent while the model's answers stay the same,
so the worst element says little about it (measured: see options.BF16_TOLERANCE). Integer,
bool and string outputs must match exactly. A :class:`Policy` holds the tolerance, per output where it must differ,
and for reduced precision a top-1 agreement: an output that looks like class scores
(``[samples, classes]``, float) must pick the original's class on that share of samples.

Outputs a selection computes (a detector's boxes after non-max suppression, top-k) are
compared order-free under reduced precision: with scores rounded to bf16, two near-tied boxes
swap places or the last one kept changes, though each box is where it was. Each of the
original's rows must then be found among the optimized rows of its sample within the budget,
on at least ``selection_match`` of the rows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from tfopt.options import BF16_SELECTION_MATCH, BF16_TOP1_AGREEMENT, DEFAULT_TOLERANCE


@dataclass(frozen=True)
class Policy:
    """How close each output must be: ``tolerance`` on the relative difference, or the value
    ``per_output`` gives for that output key."""

    tolerance: float = DEFAULT_TOLERANCE
    per_output: dict[str, float] = field(default_factory=dict)
    top1: float | None = None  # required top-1 agreement on class-score outputs (None: none)
    metric: str = "max"        # "max": worst element; "rms": root-mean-square (both relative)
    # True classes of the verification samples (--labels): class-score outputs then report
    # the task accuracy of the original and of the optimized model side by side.
    labels: np.ndarray | None = None
    # With labels: the most the task accuracy may drop (0.01: one percentage point; None: the
    # accuracy is reported, not judged).
    max_accuracy_drop: float | None = None
    # Output keys computed by a selection (graph.ops.SELECTION_OPS), and the share of their
    # rows that must be found order-free (None: compared element by element like the rest).
    selections: frozenset[str] = frozenset()
    selection_match: float | None = None

    @classmethod
    def of(cls, value: Policy | float) -> Policy:
        return value if isinstance(value, Policy) else cls(float(value))

    @classmethod
    def for_precision(cls, precision: str, tolerance: float) -> Policy:
        """float32: the worst element within ``tolerance``; reduced precision: the relative
        RMS within it, and top-1 agreement on class scores (see options.BF16_TOLERANCE)."""
        if precision == "fp32":
            return cls(tolerance)
        return cls(tolerance, top1=BF16_TOP1_AGREEMENT, metric="rms",
                   selection_match=BF16_SELECTION_MATCH)

    def in_precision(self, precision: str, tolerance: float) -> Policy:
        """The policy for a candidate in ``precision`` judged on this policy's outputs and task
        (its selections, labels and accuracy bound kept)."""
        return dataclasses.replace(Policy.for_precision(precision, tolerance),
                                   selections=self.selections, labels=self.labels,
                                   max_accuracy_drop=self.max_accuracy_drop)

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
    top1: float | None = None  # share of samples with the original's class (class scores)
    samples: int = 0
    accuracy: tuple[float, float] | None = None  # task accuracy: (original, optimized)
    metric: str = "max"  # what ``rel`` is: relative max difference, or relative RMS ("rms")
    matched: float | None = None  # order-free: share of the original's rows found
    # The original answers this output the same on every verification input: the check is
    # vacuous (it shows the value kept, not the computation).
    constant: bool = False

    def describe(self) -> str:
        from tfopt.runtime import runtime_label

        status = "ok" if self.ok else "DIFFERS"
        where = f" [{runtime_label(self.runtime)}]" if self.runtime else ""
        agreement = ("" if self.top1 is None else
                     f", top-1 agreement {self.top1:.1%} of {self.samples}")
        if self.accuracy is not None:
            agreement += (f", task accuracy {self.accuracy[0]:.2%} -> {self.accuracy[1]:.2%} "
                          "(original -> optimized)")
        metric = "" if self.metric == "max" else f" ({self.metric})"
        if self.matched is not None:
            return (f"{self.key}{where}: {self.matched:.1%} of {self.samples} rows found "
                    f"in any order, relative {self.rel:.3g} for those found (a selection's "
                    f"output) [{status}]")
        text = (f"{self.key}{where}: max abs diff {self.max_abs:.3g}, relative {self.rel:.3g}"
                f"{metric}{agreement} [{status}]")
        if self.constant:
            text += " (vacuous: the same on every verification input)"
        return text + (f" ({self.detail})" if self.detail else "")

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def looks_like_class_scores(value: np.ndarray) -> bool:
    """``[samples, classes]`` floats with at least two classes."""
    return value.ndim == 2 and value.dtype.kind == "f" and value.shape[1] >= 2 and value.size > 0


def compare_output(key: str, ref: np.ndarray, got: np.ndarray, tolerance: float,
                   top1: float | None = None, labels: np.ndarray | None = None,
                   metric: str = "max", max_drop: float | None = None) -> OutputCheck:
    ref, got = np.asarray(ref), np.asarray(got)
    if ref.shape != got.shape:
        return OutputCheck(key, False, float("inf"), float("inf"),
                           f"shape {got.shape} instead of {ref.shape}")
    if ref.dtype.kind in "fc":
        ref64, got64 = ref.astype(np.float64), got.astype(np.float64)
        nan_ref, nan_got = np.isnan(ref64), np.isnan(got64)
        if (nan_ref != nan_got).any():
            return OutputCheck(key, False, float("nan"), float("nan"), "NaNs differ")
        inf_ref = np.isinf(ref64)
        if (inf_ref != np.isinf(got64)).any() or (ref64[inf_ref] != got64[inf_ref]).any():
            return OutputCheck(key, False, float("inf"), float("inf"), "Infs differ")
        nan_ref = nan_ref | inf_ref  # non-finite values that match: compared as equal
        with np.errstate(invalid="ignore"):  # inf - inf where both are the same Inf
            diff = np.abs(np.where(nan_ref, 0.0, ref64 - got64))
        max_abs = float(diff.max()) if diff.size else 0.0
        scale = float(np.abs(np.where(nan_ref, 0.0, ref64)).max()) if diff.size else 0.0
        rel = max_abs / scale if scale > 0 else max_abs
        if metric == "rms" and diff.size:
            rms = float(np.sqrt(np.mean(np.where(nan_ref, 0.0, ref64) ** 2)))
            err = float(np.sqrt(np.mean(diff ** 2)))
            rel = err / rms if rms > 0 else err
        if not looks_like_class_scores(ref) or (top1 is None and labels is None):
            return OutputCheck(key, rel <= tolerance, max_abs, rel, metric=metric)
        agreement = float(np.mean(ref.argmax(1) == got.argmax(1)))
        accuracy = None
        if labels is not None and len(labels) == ref.shape[0]:
            accuracy = (float(np.mean(ref.argmax(1) == labels)),
                        float(np.mean(got.argmax(1) == labels)))
        kept = (accuracy is None or max_drop is None
                or accuracy[0] - accuracy[1] <= max_drop + 1e-12)
        return OutputCheck(key, rel <= tolerance and agreement >= (top1 or 0.0) and kept,
                           max_abs, rel, top1=agreement, samples=ref.shape[0],
                           accuracy=accuracy, metric=metric)
    mismatches = int(np.count_nonzero(ref != got))
    if ref.dtype.kind in "iub":
        max_abs = float(np.abs(ref.astype(np.int64) - got.astype(np.int64)).max()) if ref.size else 0.0
    else:
        max_abs = float(mismatches)
    return OutputCheck(key, mismatches == 0, max_abs, 0.0 if mismatches == 0 else 1.0,
                       f"{mismatches} elements differ" if mismatches else "exact")


def compare_selection(key: str, ref: np.ndarray, got: np.ndarray, tolerance: float,
                      need: float) -> OutputCheck:
    """Order-free: the share of the original's rows (per sample: ``[samples, rows, ...]``,
    or one value per sample) found among the optimized rows of the same sample, each within
    ``tolerance`` of the output's scale elementwise; ok when it reaches ``need``."""
    ref, got = np.asarray(ref), np.asarray(got)
    if ref.shape != got.shape:
        return OutputCheck(key, False, float("inf"), float("inf"),
                           f"shape {got.shape} instead of {ref.shape}")
    # [samples, rows, elements]: a box is a row of 4, a score a row of 1, a count one row
    shape = (ref.shape[0], ref.shape[1] if ref.ndim > 1 else 1, -1)
    r, g = ref.astype(np.float64).reshape(shape), got.astype(np.float64).reshape(shape)
    scale = float(np.abs(r).max()) if r.size else 0.0
    allowed = tolerance * scale if ref.dtype.kind in "fc" else 0.0
    found, rows, worst = 0, 0, 0.0
    for want, have in zip(r, g, strict=True):
        # distance of every original row to its nearest optimized row (max over elements)
        nearest = np.abs(want[:, None, :] - have[None, :, :]).max(-1).min(1)
        hit = nearest <= allowed
        found += int(np.count_nonzero(hit))
        rows += want.shape[0]
        worst = max(worst, float(nearest[hit].max()) if hit.any() else 0.0)
    share = found / rows if rows else 1.0
    max_abs = float(np.abs(r - g).max()) if r.size else 0.0
    rel = worst / scale if scale > 0 else worst
    return OutputCheck(key, share >= need, max_abs, rel, samples=rows, matched=share)


def compare(ref: dict[str, np.ndarray], got: dict[str, np.ndarray],
            policy: Policy | float = DEFAULT_TOLERANCE) -> list[OutputCheck]:
    """One check per output of ``ref``, each against the policy's tolerance for that output."""
    policy = Policy.of(policy)
    checks = []
    for key in ref:
        if key not in got:
            checks.append(OutputCheck(key, False, float("inf"), float("inf"), "missing output"))
        elif key in policy.selections and policy.selection_match is not None:
            checks.append(compare_selection(key, ref[key], got[key], policy.tolerance_for(key),
                                            policy.selection_match))
        else:
            checks.append(compare_output(key, ref[key], got[key], policy.tolerance_for(key),
                                         policy.top1, policy.labels, policy.metric,
                                         policy.max_accuracy_drop))
    return checks
