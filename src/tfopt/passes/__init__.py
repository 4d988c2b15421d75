"""The pass registry: every pass, in the order the pipeline runs them.

The order, with the reason for each position, and the descriptions live in
:mod:`tfopt.pass_catalog` (importable without TensorFlow); this module maps each name there
to its class. ``tfopt passes`` prints the list.
"""

from __future__ import annotations

from tfopt import pass_catalog as catalog
from tfopt.passes.base import GraphPass, PassContext, PassResult
from tfopt.passes.constant_fold import ConstantFold
from tfopt.passes.cse import MergeDuplicates
from tfopt.passes.debug_ops import RemoveDebugOps
from tfopt.passes.dense_reshape import DenseReshape
from tfopt.passes.dilated_conv import DilatedConv
from tfopt.passes.einsum_matmul import EinsumToMatMul
from tfopt.passes.fold_batch_norm import FoldBatchNorm
from tfopt.passes.function_bodies import CleanFunctionBodies
from tfopt.passes.fuse_kernels import FuseKernels
from tfopt.passes.fuse_pad import FusePad
from tfopt.passes.grouped_conv import GroupedConvToDepthwise
from tfopt.passes.identity import RemoveIdentities
from tfopt.passes.inline_calls import InlineCalls
from tfopt.passes.nchw_layout import NchwToNhwc
from tfopt.passes.squeeze_sink import SqueezeSink
from tfopt.passes.strip_unused import StripUnused
from tfopt.passes.switch_const import ResolveConstantSwitch
from tfopt.passes.training_nodes import RemoveTrainingNodes
from tfopt.passes.transpose_matmul import TransposeIntoMatMul
from tfopt.passes.trivial_ops import RemoveTrivialOps

_CLASSES: dict[str, type[GraphPass]] = {cls.name: cls for cls in (
    RemoveTrainingNodes, RemoveDebugOps, CleanFunctionBodies, InlineCalls, StripUnused, RemoveIdentities,
    ResolveConstantSwitch, ConstantFold, NchwToNhwc, DilatedConv, SqueezeSink,
    GroupedConvToDepthwise, EinsumToMatMul,
    DenseReshape, TransposeIntoMatMul, FoldBatchNorm, RemoveTrivialOps,
    MergeDuplicates, FusePad, FuseKernels)}

# Passes repeated until none of them changes the graph (a fixed point).
SIMPLIFY: list[GraphPass] = [_CLASSES[name]() for name, _ in catalog.SIMPLIFY]
# Passes run once, after the fixed point.
FINALIZE: list[GraphPass] = [_CLASSES[name]() for name, _ in catalog.FINALIZE]
ALL_PASSES: list[GraphPass] = SIMPLIFY + FINALIZE


def pass_names() -> list[str]:
    return [p.name for p in ALL_PASSES]


__all__ = ["ALL_PASSES", "FINALIZE", "SIMPLIFY", "GraphPass", "PassContext", "PassResult",
           "pass_names"]
