"""The pass pipeline's order and what each pass does, importable without TensorFlow.

This is the registry's single source of truth for order and descriptions: ``tfopt passes``,
``--help`` and the ``--passes``/``--skip`` checks read it at once (no TensorFlow import), and
:mod:`tfopt.passes` builds the pipeline from it, one pass class per name. Order matters; each
constraint is stated where it applies.
"""

from __future__ import annotations

# Passes repeated until none of them changes the graph (a fixed point).
SIMPLIFY: list[tuple[str, str]] = [
    # Training ops first: removing them frees gradient branches for strip_unused.
    ("training_nodes", "remove Save/Restore, initializers, optimizer updates and gradient "
                       "branches; fold PlaceholderWithDefault flags to their defaults"),
    # Debug ops before strip_unused: an Assert's condition subgraph becomes unreachable.
    ("debug_ops", "remove CheckNumerics, Print, PrintV2, Assert and If nodes whose branches "
                  "only check (with the control edges to them)"),
    # Right after debug_ops: clean bodies let debug_ops drop check-only Ifs next round.
    ("function_bodies", "run debug_ops, identity, constant_fold, trivial_ops and cse inside "
                        "If/While/Case branches, loop bodies and other library functions"),
    # Before strip_unused: the inlined function's library copy becomes unreferenced.
    ("inline_calls", "inline PartitionedCall/StatefulPartitionedCall bodies (Keras' _conv_xla "
                     "and other calls freezing left) into the main graph"),
    ("strip_unused", "remove nodes and functions the signature outputs never reach (control "
                     "deps kept)"),
    # Identities last among the clean-ups: the passes above expose new Identity chains.
    ("identity", "splice out Identity, IdentityN, StopGradient, Snapshot and NoOp chains"),
    # After identity: a folded training flag reaches its Switch only once the Identity
    # between them is gone.
    ("switch_const", "resolve TF1 Switch/Merge conditionals on a constant predicate (dead "
                     "branch gone)"),
    # Before fold_batch_norm: turns Rsqrt(var + eps) * gamma and friends into the constant
    # vectors that fold_batch_norm recognises.
    ("constant_fold", "evaluate constant subgraphs (weights arithmetic, static shapes) into "
                      "Const nodes"),
    # Before fold_batch_norm, dilated_conv and fuse_kernels, which take NHWC only; its
    # leftover transposes (dead after cancelling) go in strip_unused of the next round.
    ("nchw_layout", "run GPU-era NCHW convolutions, batch norms and pooling in NHWC (the "
                    "only layout the runtime without oneDNN has), cancelling the transposes "
                    "between them"),
    # After constant_fold (block shape, paddings and crops must be Consts), before
    # fold_batch_norm (the batch norm behind BatchToSpaceND then reads the conv directly).
    ("dilated_conv", "rewrite TF1's atrous convolution (SpaceToBatchND -> Conv2D -> "
                     "BatchToSpaceND, also a dilated Conv1D's form) as one dilated Conv2D, "
                     "~1.35x faster on both runtimes"),
    # Before fold_batch_norm and fuse_kernels: they then see conv -> bias -> BN -> activation.
    ("squeeze_sink", "move a Squeeze below per-channel element-wise ops and cancel it against "
                     "the next ExpandDims (Conv1D's ExpandDims -> Conv2D -> Squeeze), so batch "
                     "norm folds and bias + activation fuse into the conv"),
    # After constant_fold (the filter must be a Const), before fold_batch_norm (which folds
    # into depthwise weights as well).
    ("grouped_conv", "rewrite a grouped Conv2D with one input channel per group (Keras "
                     "groups=C) as DepthwiseConv2dNative, 13x faster on CPU"),
    # After constant_fold (weights must be Consts), before dense_reshape (which moves the
    # bias add in front of the Reshape this leaves).
    ("einsum_matmul", "rewrite a dense-layer Einsum (Keras EinsumDense, attention "
                      "projections) or a BatchMatMul against a 2-D constant weight as "
                      "Reshape -> MatMul -> Reshape"),
    # After constant_fold (weights must be Consts); its reshapes-of-reshapes and dead shape
    # arithmetic are left to trivial_ops/strip_unused of the same round.
    ("dense_reshape", "give Keras' dense-on-3D (Tensordot) the 2-D form Reshape -> MatMul -> "
                      "BiasAdd -> activation -> Reshape that the runtimes fuse (GELU "
                      "included, with oneDNN)"),
    ("transpose_matmul", "fold transposes of the last two dims into BatchMatMul's adj_x/adj_y "
                         "(attention scores: (A B)^T = B^T A^T)"),
    ("fold_batch_norm", "fold FusedBatchNorm*/BatchNormWithGlobalNormalization and per-channel "
                        "Mul/Add into Conv2D/DepthwiseConv2dNative/MatMul/Conv2DBackpropInput "
                        "weights + BiasAdd"),
    # After folding: x*1, x+0 and same-shape reshapes appear once constants are known.
    ("trivial_ops", "remove no-op Cast/Reshape/Transpose/Pad/Concat, x*1 and x+0 "
                    "(shape-preserving only)"),
    # Last: merges the duplicate constants and subexpressions the passes above leave.
    ("cse", "merge duplicate nodes (same op, inputs, attributes, constant bytes); hash-based"),
]

# Passes run once, after the fixed point: they emit ops the passes above do not look into.
FINALIZE: list[tuple[str, str]] = [
    # Before fuse_kernels: _FusedConv2D keeps explicit padding, so Pad folds in first.
    ("fuse_pad", "fold a zero Pad into the next conv (as SAME when it matches, else EXPLICIT)"),
    # Last of all: _Fused* ops are opaque to every other pass.
    ("fuse_kernels", "fuse Conv2D/DepthwiseConv2dNative/MatMul + BiasAdd [+ residual Add] "
                     "[+ Relu|Relu6|Elu|LeakyRelu|...] into _Fused* kernels, only forms every "
                     "runtime of the target runs (probed)"),
]

SUMMARIES: dict[str, str] = dict(SIMPLIFY + FINALIZE)
NAMES: list[str] = list(SUMMARIES)


def check_names(names: list[str] | None) -> None:
    """Raise TfoptError naming the first unknown pass."""
    from tfopt.errors import TfoptError

    for given in names or []:
        if given not in SUMMARIES:
            raise TfoptError(f"unknown pass {given!r} (passes: {', '.join(NAMES)})")
