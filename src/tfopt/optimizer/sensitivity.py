"""int8 that misses its accuracy budget: return the most sensitive layers to float32, one at a
time, until the budget holds.

Each quantizable op's sensitivity is the output error of the model with *only* that op in
int8 (on the verification samples, in this process). Ops leave int8 in that order, most
sensitive first, and after each the whole int8 model is checked against the budget (relative
RMS, top-1 agreement, and with ``--max-accuracy-drop`` the task accuracy); the first set that
holds is kept. The final model is then verified under every runtime like any other. Neither
step runs the pipeline again: the quantization is applied to the graph calibration saw.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from tensorflow.core.framework import graph_pb2

from tfopt.model.signature import SignatureGraph
from tfopt.passes.base import PassContext, PassResult
from tfopt.passes.quantize_int8 import QuantizeInt8, candidates
from tfopt.verify.compare import OutputCheck, Policy, compare
from tfopt.verify.runners import run_graph_def

# Beyond this share of the quantizable ops returned to float32, int8 is refused: what is left
# would not be an int8 model.
MAX_FLOAT_SHARE = 0.5


@dataclasses.dataclass(frozen=True)
class Fit:
    """The outcome: ops kept in float32 (most sensitive first) and the checks of the result."""

    keep_float: tuple[str, ...]
    checks: list[OutputCheck]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def fit_budget(sig: SignatureGraph, calibrated: graph_pb2.GraphDef, ctx: PassContext,
               feeds: dict, reference: dict, policy: Policy,
               say: Callable[[str], None] = lambda _m: None) -> Fit:
    """The smallest prefix of the sensitivity order that meets ``policy`` (see module doc).
    ``calibrated``: the graph quantize_int8 sees; ``reference``: the original's answers."""

    def quantized(keep: frozenset[str], alone: bool = False) -> PassResult:
        given = dict(ctx.settings.get("quantize_int8", {}), keep_float=keep,
                     quantize_isolated=alone)
        return QuantizeInt8(**given).run(calibrated, ctx)

    def checked(result: PassResult) -> list[OutputCheck] | None:
        """The checks of a quantized graph (None: nothing in it is int8)."""
        if not result.changed:
            return None
        return compare(reference, run_graph_def(sig.with_graph(result.graph_def), feeds),
                       policy)

    whole = quantized(frozenset())
    first = checked(whole)
    if first is None or all(c.ok for c in first):
        return Fit((), first or [])
    # the ops int8 actually converts (the rest stay float32 anyway: too small to pay)
    left = set(candidates(whole.graph_def))
    ops = [op for op in candidates(calibrated) if op not in left]
    say(f"[{sig.key}] int8 misses the budget ({next(c for c in first if not c.ok).describe()}); "
        f"measuring the sensitivity of its {len(ops)} int8 ops ...")
    every = frozenset(ops)
    error = {op: max((c.rel for c in checked(quantized(every - {op}, alone=True)) or []),
                     default=0.0) for op in ops}
    order = sorted(ops, key=lambda op: -error[op])
    keep: list[str] = []
    checks = first
    for op in order:
        if len(keep) >= max(2, int(len(ops) * MAX_FLOAT_SHARE)):
            break
        now = checked(quantized(frozenset(keep + [op])))
        if now is None:  # without it nothing would stay int8: try the next one
            continue
        keep.append(op)
        checks = now
        say(f"  {op} back to float32 (alone in int8: relative error {error[op]:.2g}): "
            f"{'meets' if all(c.ok for c in checks) else 'still misses'} the budget")
        if all(c.ok for c in checks):
            break
    return Fit(tuple(keep), checks)
