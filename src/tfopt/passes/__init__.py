"""The pass registry: every pass, in the order the pipeline runs them.

Order matters; each constraint is stated where it applies. ``tfopt passes`` prints this list.
"""

from __future__ import annotations

from tfopt.passes.base import GraphPass, PassContext, PassResult
from tfopt.passes.debug_ops import RemoveDebugOps
from tfopt.passes.identity import RemoveIdentities
from tfopt.passes.strip_unused import StripUnused
from tfopt.passes.training_nodes import RemoveTrainingNodes

# Passes repeated until none of them changes the graph (a fixed point).
SIMPLIFY: list[GraphPass] = [
    # Training ops first: removing them frees gradient branches for strip_unused.
    RemoveTrainingNodes(),
    # Debug ops before strip_unused: an Assert's condition subgraph becomes unreachable.
    RemoveDebugOps(),
    StripUnused(),
    # Identities last among the clean-ups: the passes above expose new Identity chains.
    RemoveIdentities(),
]

# Passes run once, after the fixed point: they emit ops the passes above do not look into.
FINALIZE: list[GraphPass] = []

ALL_PASSES: list[GraphPass] = SIMPLIFY + FINALIZE


def pass_names() -> list[str]:
    return [p.name for p in ALL_PASSES]


__all__ = ["ALL_PASSES", "FINALIZE", "SIMPLIFY", "GraphPass", "PassContext", "PassResult",
           "pass_names"]
