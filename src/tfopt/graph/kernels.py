"""May tfopt emit this kernel form here? The policy over the probe's answers.

One TensorFlow CPU build has two runtimes: with oneDNN (on by default on AVX-512 machines, or
``TF_ENABLE_ONEDNN_OPTS=1``) and without it (Eigen; the default elsewhere, or ``=0``). They
implement different ``fused_ops`` lists for ``_FusedConv2D`` and friends, and a graph holding a
fusion only one of them implements fails on the other at its first call ("Fusion is not
implemented"). So:

* :data:`tfopt.graph.fusions.FUSION_TABLE` lists every fusion tfopt can emit.
* :mod:`tfopt.graph.probe` asks each runtime which it runs (a child per runtime, cached).
* A :class:`KernelSupport` answers for a *target*: ``portable`` (default) admits only fusions
  both runtimes run, ``native`` whatever this process's runtime runs, ``generic`` nothing
  (public ops only, for other TensorFlow builds).
"""

from __future__ import annotations

from collections.abc import Iterable

from tfopt.errors import TfoptError
from tfopt.graph.fusions import TARGETS, Fusion
from tfopt.graph.probe import probe_runtimes
from tfopt.runtime import RUNTIMES, current_runtime


class KernelSupport:
    """Answers "may tfopt emit this fused kernel?" for one target. Probes lazily, once."""

    def __init__(self, target: str = "portable") -> None:
        if target not in TARGETS:
            raise TfoptError(f"unknown target {target!r} (choose {', '.join(TARGETS)})")
        self.target = target
        self._per_runtime: dict[str, frozenset[Fusion]] | None = None

    @property
    def per_runtime(self) -> dict[str, frozenset[Fusion]]:
        if self._per_runtime is None:
            wanted = RUNTIMES if self.target == "portable" else (current_runtime(),)
            self._per_runtime = {} if self.target == "generic" else probe_runtimes(wanted)
        return self._per_runtime

    @property
    def allowed(self) -> frozenset[Fusion]:
        sets = list(self.per_runtime.values())
        return frozenset.intersection(*sets) if sets else frozenset()

    def supports(self, op: str, fused_ops: Iterable[str], dtype: str = "float32") -> bool:
        return Fusion(op, tuple(fused_ops), dtype) in self.allowed

    def accurate(self, op: str, dtype: str) -> bool:
        """Whether plain ``op`` runs accurately in reduced ``dtype`` (:data:`REDUCED_OPS`) on
        the target's runtimes; ``generic`` (no fused kernels) still runs on both."""
        per_runtime = (probe_runtimes(RUNTIMES) if self.target == "generic"
                       else self.per_runtime)
        return all(Fusion(op, (), dtype) in found for found in per_runtime.values())


def runtimes_running(fusions: Iterable[Fusion]) -> list[str]:
    """The CPU runtimes that run every one of ``fusions`` (probing both if needed)."""
    fusions = set(fusions)
    if not fusions:
        return list(RUNTIMES)
    support = probe_runtimes(RUNTIMES)
    return [r for r in RUNTIMES if fusions <= support[r]]
