"""The pass registry: every pass, in the order the pipeline runs them.

Order matters; each constraint is stated where it applies. ``tfopt passes`` prints this list.
"""

from __future__ import annotations

from tfopt.passes.base import GraphPass, PassContext, PassResult
from tfopt.passes.constant_fold import ConstantFold
from tfopt.passes.cse import MergeDuplicates
from tfopt.passes.debug_ops import RemoveDebugOps
from tfopt.passes.fold_batch_norm import FoldBatchNorm
from tfopt.passes.fuse_kernels import FuseKernels
from tfopt.passes.fuse_pad import FusePad
from tfopt.passes.identity import RemoveIdentities
from tfopt.passes.strip_unused import StripUnused
from tfopt.passes.switch_const import ResolveConstantSwitch
from tfopt.passes.training_nodes import RemoveTrainingNodes
from tfopt.passes.trivial_ops import RemoveTrivialOps

# Passes repeated until none of them changes the graph (a fixed point).
SIMPLIFY: list[GraphPass] = [
    # Training ops first: removing them frees gradient branches for strip_unused.
    RemoveTrainingNodes(),
    # Debug ops before strip_unused: an Assert's condition subgraph becomes unreachable.
    RemoveDebugOps(),
    StripUnused(),
    # Identities last among the clean-ups: the passes above expose new Identity chains.
    RemoveIdentities(),
    # After identity: a folded training flag reaches its Switch only once the Identity
    # between them is gone.
    ResolveConstantSwitch(),
    # Before fold_batch_norm: turns Rsqrt(var + eps) * gamma and friends into the constant
    # vectors that fold_batch_norm recognises.
    ConstantFold(),
    FoldBatchNorm(),
    # After folding: x*1, x+0 and same-shape reshapes appear once constants are known.
    RemoveTrivialOps(),
    # Last: merges the duplicate constants and subexpressions the passes above leave.
    MergeDuplicates(),
]

# Passes run once, after the fixed point: they emit ops the passes above do not look into.
FINALIZE: list[GraphPass] = [
    # Before fuse_kernels: _FusedConv2D keeps explicit padding, so Pad folds in first.
    FusePad(),
    # Last of all: _Fused* ops are opaque to every other pass.
    FuseKernels(),
]

ALL_PASSES: list[GraphPass] = SIMPLIFY + FINALIZE


def pass_names() -> list[str]:
    return [p.name for p in ALL_PASSES]


__all__ = ["ALL_PASSES", "FINALIZE", "SIMPLIFY", "GraphPass", "PassContext", "PassResult",
           "pass_names"]
