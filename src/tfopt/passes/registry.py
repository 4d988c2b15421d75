"""The pass registry: one table of every pass, in the order the pipeline runs them.

Each row says what the pass is called, where its class lives, when it runs, what it does, why
it stands where it stands, and whether it may also run inside function bodies (``If``/``While``
branches, loop bodies). Nothing else names or orders passes: ``tfopt passes``, ``--passes`` /
``--skip`` checks, the pipeline and :mod:`tfopt.passes.function_bodies` all read this table.
It is importable without TensorFlow (classes are imported when the pipeline first runs), so
flag errors and ``tfopt passes`` answer at once.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tfopt.errors import TfoptError

if TYPE_CHECKING:
    from tfopt.passes.base import GraphPass

SIMPLIFY = "simplify"  # repeated until none of them changes the graph (a fixed point)
FINALIZE = "finalize"  # run once after the fixed point: they emit ops the others do not read


@dataclass(frozen=True)
class PassSpec:
    """One row of the registry."""

    name: str
    impl: str        # "module:Class" under tfopt.passes
    phase: str       # SIMPLIFY or FINALIZE
    summary: str     # what it does (``tfopt passes``, the report)
    reason: str      # why it stands at this position
    in_bodies: bool = False  # also safe inside function bodies (no signature, no fusions)
    walks_bodies: bool = False  # runs the in_bodies rows in each body (the pipeline gives it
    #                             the means: ``run_body``)
    settings: tuple[tuple[str, object], ...] = ()  # the pass's constructor arguments

    def load(self, **given) -> GraphPass:
        """The pass, built with the row's settings and what the pipeline ``given``s it."""
        module, _, cls = self.impl.partition(":")
        return getattr(importlib.import_module(f"tfopt.passes.{module}"), cls)(
            **dict(self.settings), **given)


REGISTRY: tuple[PassSpec, ...] = (
    PassSpec("training_nodes", "training_nodes:RemoveTrainingNodes", SIMPLIFY,
             "remove Save/Restore, initializers, optimizer updates and gradient branches; "
             "fold PlaceholderWithDefault flags to their defaults",
             "first: removing training ops frees gradient branches for strip_unused"),
    PassSpec("debug_ops", "debug_ops:RemoveDebugOps", SIMPLIFY,
             "remove CheckNumerics, Print, PrintV2, Assert and If nodes whose branches only "
             "check (with the control edges to them)",
             "before strip_unused: an Assert's condition subgraph becomes unreachable",
             in_bodies=True),
    PassSpec("function_bodies", "function_bodies:CleanFunctionBodies", SIMPLIFY,
             "run the passes marked safe inside bodies (debug_ops, identity, constant_fold, "
             "trivial_ops, slices_to_split, cse) in If/While/Case branches, loop bodies and "
             "other functions",
             "right after debug_ops: clean bodies let debug_ops drop check-only Ifs next round",
             walks_bodies=True),
    PassSpec("inline_calls", "inline_calls:InlineCalls", SIMPLIFY,
             "inline PartitionedCall/StatefulPartitionedCall bodies (Keras' _conv_xla and "
             "other calls freezing left) into the main graph",
             "before strip_unused: the inlined function's library copy becomes unreferenced"),
    PassSpec("strip_unused", "strip_unused:StripUnused", SIMPLIFY,
             "remove nodes and functions the signature outputs never reach (control deps kept)",
             "after the removals above, which leave unreachable nodes behind"),
    PassSpec("identity", "identity:RemoveIdentities", SIMPLIFY,
             "splice out Identity, IdentityN, StopGradient, Snapshot and NoOp chains",
             "last among the clean-ups: the passes above expose new Identity chains",
             in_bodies=True),
    PassSpec("control_edges", "control_edges:DropImpliedControls", SIMPLIFY,
             "drop control edges that data edges already imply (X -> ... -> N and ^X on N)",
             "after identity, whose splices turn data edges into control edges; before the "
             "XLA stage, which leaves nodes with control inputs out of its cluster"),
    PassSpec("switch_const", "switch_const:ResolveConstantSwitch", SIMPLIFY,
             "resolve TF1 Switch/Merge conditionals on a constant predicate (dead branch gone)",
             "after identity: a folded training flag reaches its Switch only once the Identity "
             "between them is gone"),
    PassSpec("unfuse_kernels", "unfuse_kernels:UnfuseKernels", SIMPLIFY,
             "split _Fused* kernels already in the input that the target's runtimes do not run "
             "(a oneDNN-only form where oneDNN is off; any, for --target generic) back into "
             "their plain ops",
             "before the folding passes, which read plain ops; fuse_kernels (finalize) fuses "
             "again what the target runs"),
    PassSpec("constant_fold", "constant_fold:ConstantFold", SIMPLIFY,
             "evaluate constant subgraphs (weights arithmetic, static shapes) into Const nodes",
             "before fold_batch_norm: turns Rsqrt(var + eps) * gamma and friends into the "
             "constant vectors that fold_batch_norm recognises",
             in_bodies=True),
    PassSpec("nchw_layout", "nchw_layout:NchwToNhwc", SIMPLIFY,
             "run GPU-era NCHW convolutions, batch norms and pooling in NHWC (the only layout "
             "the runtime without oneDNN has), cancelling the transposes between them",
             "before fold_batch_norm, dilated_conv and fuse_kernels, which take NHWC only; its "
             "dead transposes go in strip_unused of the next round"),
    PassSpec("dilated_conv", "dilated_conv:DilatedConv", SIMPLIFY,
             "rewrite TF1's atrous convolution (SpaceToBatchND -> Conv2D -> BatchToSpaceND, "
             "also a dilated Conv1D's form) as one dilated Conv2D, ~1.35x faster on both "
             "runtimes",
             "after constant_fold (block shape, paddings and crops must be Consts), before "
             "fold_batch_norm (the batch norm behind BatchToSpaceND then reads the conv)"),
    PassSpec("squeeze_sink", "squeeze_sink:SqueezeSink", SIMPLIFY,
             "move a Squeeze below per-channel element-wise ops and cancel it against the next "
             "ExpandDims (Conv1D's ExpandDims -> Conv2D -> Squeeze), so batch norm folds and "
             "bias + activation fuse into the conv",
             "before fold_batch_norm and fuse_kernels: they then see conv -> bias -> BN -> act"),
    PassSpec("grouped_conv", "grouped_conv:GroupedConvToDepthwise", SIMPLIFY,
             "rewrite a grouped Conv2D with one input channel per group (Keras groups=C) as "
             "DepthwiseConv2dNative, 13x faster on CPU",
             "after constant_fold (the filter must be a Const), before fold_batch_norm (which "
             "folds into depthwise weights as well)"),
    PassSpec("einsum_matmul", "einsum_matmul:EinsumToMatMul", SIMPLIFY,
             "rewrite a dense-layer Einsum (Keras EinsumDense, attention projections) or a "
             "BatchMatMul against a 2-D constant weight as Reshape -> MatMul -> Reshape",
             "after constant_fold (weights must be Consts), before dense_reshape (which moves "
             "the bias add in front of the Reshape this leaves)"),
    PassSpec("dense_reshape", "dense_reshape:DenseReshape", SIMPLIFY,
             "give Keras' dense-on-3D (Tensordot) the 2-D form Reshape -> MatMul -> BiasAdd -> "
             "activation -> Reshape that the runtimes fuse (GELU included, with oneDNN)",
             "after constant_fold (weights must be Consts); its reshapes-of-reshapes and dead "
             "shape arithmetic go in trivial_ops/strip_unused of the same round"),
    PassSpec("transpose_matmul", "transpose_matmul:TransposeIntoMatMul", SIMPLIFY,
             "fold transposes of the last two dims into BatchMatMul's adj_x/adj_y (attention "
             "scores: (A B)^T = B^T A^T)",
             "after einsum_matmul and dense_reshape, which leave the transposes it folds"),
    PassSpec("fold_batch_norm", "fold_batch_norm:FoldBatchNorm", SIMPLIFY,
             "fold FusedBatchNorm*/BatchNormWithGlobalNormalization and per-channel Mul/Add into "
             "Conv2D/DepthwiseConv2dNative/MatMul/Conv2DBackpropInput weights + BiasAdd",
             "after every pass that exposes a conv -> batch norm chain"),
    PassSpec("forward_scale", "forward_scale:ForwardScale", SIMPLIFY,
             "move a positive per-channel scale before Relu (pre-activation batch norm) into "
             "the weights of the convs and matmuls it reaches: relu(s*x+b) = s*relu(x+b/s)",
             "after fold_batch_norm: a scale that folds into the conv before it goes there "
             "(with its shift); this moves only what that pass could not"),
    PassSpec("trivial_ops", "trivial_ops:RemoveTrivialOps", SIMPLIFY,
             "remove no-op Cast/Reshape/Transpose/Pad/Concat, x*1 and x+0 (shape-preserving "
             "only)",
             "after folding: x*1, x+0 and same-shape reshapes appear once constants are known",
             in_bodies=True),
    PassSpec("slices_to_split", "slices_to_split:SlicesToSplit", SIMPLIFY,
             "cut a tensor into consecutive pieces with one SplitV instead of a StridedSlice "
             "per piece (Keras' GRU slices its recurrent product in three on every step)",
             "after constant_fold (slice bounds must be constants), before cse",
             in_bodies=True),
    PassSpec("cse", "cse:MergeDuplicates", SIMPLIFY,
             "merge duplicate nodes (same op, inputs, attributes, constant bytes); hash-based",
             "last of the round: merges the duplicate constants and subexpressions the passes "
             "above leave",
             in_bodies=True),
    PassSpec("loop_vars", "loop_vars:MergeLoopVariables", SIMPLIFY,
             "merge While loop variables that hold the same value every iteration (Keras' loop "
             "counter and time step; a masked RNN's output and state), proven by induction "
             "over the body",
             "after cse: variables entering with equal values enter with one tensor once cse "
             "merged them, and the body's duplicates are found with cse itself"),
    PassSpec("loop_consts", "loop_consts:InlineLoopConstants", SIMPLIFY,
             "read a While loop's small constant inputs (biases, lengths, limits) "
             "as constants in its body and condition, so what they compute from them is "
             "folded once, not every iteration",
             "after cse and loop_vars; before function_bodies of the next round, whose "
             "constant_fold then folds the body (rounds repeat to a fixed point)"),
    PassSpec("loop_projection", "loop_projection:ProjectLoopInputs", SIMPLIFY,
             "take a recurrent layer's input projection (each step's input times the kernel, "
             "plus bias) out of its While loop: one matmul over every time step before it",
             "after function_bodies and constant_fold (the bias must be a constant in the "
             "body) and after loop_vars; before fuse_kernels, which fuses the new MatMul + "
             "BiasAdd"),
    PassSpec("reduced_precision", "reduced_precision:ReducedPrecision", FINALIZE,
             "with --precision bf16: convolutions, matmuls and the element-wise ops between "
             "them in bfloat16, weights stored as bfloat16, casts only at region borders",
             "once, after the fixed point (weights folded in float32 first), before fuse_pad "
             "and fuse_kernels (which then fuse only the bf16 forms the runtimes run)"),
    PassSpec("fuse_pad", "fuse_pad:FusePad", FINALIZE,
             "fold a zero Pad into the next conv (as SAME when it matches, else EXPLICIT)",
             "before fuse_kernels: _FusedConv2D keeps explicit padding, so Pad folds in first"),
    PassSpec("quantize_int8", "quantize_int8:QuantizeInt8", FINALIZE,
             "with --precision int8: convolutions and matmuls with constant weights run in "
             "int8 (weights per output channel, activations in their calibrated ranges), "
             "int8 flowing between consecutive ones",
             "after fuse_pad (the quantized convolutions take explicit padding) and before "
             "fuse_kernels (which fuses what stays in float32); calibration observes the "
             "graph as it is here"),
    PassSpec("fuse_kernels", "fuse_kernels:FuseKernels", FINALIZE,
             "fuse Conv2D/DepthwiseConv2dNative/MatMul + BiasAdd [+ residual Add] "
             "[+ Relu|Relu6|Elu|LeakyRelu|...] into _Fused* kernels, only forms every runtime "
             "of the target runs (probed)",
             "after every rewrite of ops: _Fused* ops are opaque to every other pass"),
    PassSpec("lower_control_flow", "lower_control_flow:LowerControlFlow", FINALIZE,
             "lower While/If/Case the model marks for lowering into Switch/Merge frames in the "
             "stored graph, as TensorFlow's own freezing does, so Grappler optimizes loop "
             "bodies with the graph around them (a Keras LSTM -> GRU: 1.3x)",
             "last of all: every other pass reads loop bodies as library functions"),
    PassSpec("loop_parallelism", "loop_parallelism:LoopParallelism", FINALIZE,
             "run a lowered recurrence (an RNN layer's loop) one iteration at a time beside "
             "another (a Bidirectional layer's two directions: 1.5-1.6x), two at a time alone, "
             "instead of letting 32 iterations' bookkeeping race ahead of the state",
             "after lower_control_flow, whose frames (and a TF1 export's) it reads"),
    PassSpec("loop_calls", "loop_calls:LoopCalls", FINALIZE,
             "call each of two recurrences that run side by side (a Bidirectional layer's "
             "directions) as a function of its own, so each starts on its own thread "
             "(the executor keeps cheap per-step ops on the thread they became ready on)",
             "after loop_parallelism, whose lockstep loops it outlines; last: the outlined "
             "frames are opaque to every pass"),
)

NAMES: tuple[str, ...] = tuple(spec.name for spec in REGISTRY)
BY_NAME: dict[str, PassSpec] = {spec.name: spec for spec in REGISTRY}


def _check_table() -> None:
    """The table's own invariants, checked at import: a broken registry fails at once."""
    if len(BY_NAME) != len(REGISTRY):
        raise AssertionError("pass registry: duplicate pass names")
    phases = [spec.phase for spec in REGISTRY]
    if set(phases) - {SIMPLIFY, FINALIZE} or phases != sorted(phases, key=[SIMPLIFY,
                                                                           FINALIZE].index):
        raise AssertionError("pass registry: every simplify pass must come before finalize")
    if any(spec.in_bodies and spec.phase != SIMPLIFY for spec in REGISTRY):
        raise AssertionError("pass registry: only simplify passes run inside bodies")


_check_table()


def check_names(names: list[str] | None) -> None:
    """Raise TfoptError naming the first unknown pass."""
    for given in names or []:
        if given not in BY_NAME:
            raise TfoptError(f"unknown pass {given!r} (passes: {', '.join(NAMES)})")


def select(passes: list[str] | None, skip: list[str] | None) -> frozenset[str]:
    """The enabled pass names: ``passes`` (default: all) minus ``skip``; names are checked."""
    check_names(list(passes or []) + list(skip or []))
    enabled = set(passes) if passes else set(NAMES)
    return frozenset(enabled - set(skip or []))

