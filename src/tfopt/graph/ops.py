"""Op-type sets that several parts of tfopt must agree on (passes, loader, analyze).

One place, so that "is this a checkpoint op?" or "is this TF1 control flow?" has one answer.
Importable without TensorFlow.
"""

from __future__ import annotations

# Checkpoint save/restore and the variable writes they and initializers perform.
CHECKPOINT_OPS = {"SaveV2", "RestoreV2", "MergeV2Checkpoints", "Save", "SaveSlices", "Restore",
                  "RestoreSlice", "ShardedFilename", "ShardedFilespec"}
ASSIGN_OPS = {"Assign", "AssignAdd", "AssignSub", "AssignVariableOp", "AssignAddVariableOp",
              "AssignSubVariableOp", "ScatterUpdate", "ResourceScatterUpdate", "ScatterAdd",
              "ResourceScatterAdd"}
# Optimizer update kernels: ApplyAdam, ResourceApplyAdam, SparseApplyFtrl, ...
UPDATE_PREFIXES = ("Apply", "ResourceApply", "SparseApply", "ResourceSparseApply")

# Debugging ops. Output 0 is input 0 unchanged: spliced out.
DEBUG_PASS_THROUGH = {"CheckNumerics", "CheckNumericsV2", "Print", "DebugIdentity",
                      "DebugIdentityV2"}
# No data output anyone reads: deleted with the control edges to them.
DEBUG_SINKS = {"Assert", "PrintV2"}
DEBUG_OPS = DEBUG_PASS_THROUGH | DEBUG_SINKS

# Ops that call back into the Python process that built the graph: the SavedModel stores
# only a key, so they run nowhere else (not in TF Serving, not in another process).
PYTHON_OPS = {"PyFunc", "PyFuncStateless", "EagerPyFunc"}

# Ops that pass their input through unchanged.
IDENTITY_OPS = {"Identity", "StopGradient", "Snapshot", "PreventGradient"}

# Batched matrix products (V3: mixed input/output dtypes, attributes Ta/Tb/Tout, no T).
BATCH_MATMUL_OPS = {"BatchMatMul", "BatchMatMulV2", "BatchMatMulV3"}

# Element-wise ops, unary and binary (with broadcasting): they commute with layout changes
# (transposes, squeezes) applied alike to every operand.
UNARY_ELEMENTWISE = {"Relu", "Relu6", "Elu", "Selu", "LeakyRelu", "Sigmoid", "Tanh", "Softplus"}
BINARY_ELEMENTWISE = {"Add", "AddV2", "Sub", "Mul", "Maximum", "Minimum"}

# TF1 control flow (frames and branches): an Identity after these is a pivot, not a no-op.
TF1_CONTROL_FLOW_OPS = {"Switch", "RefSwitch", "Merge", "RefMerge", "Enter", "RefEnter", "Exit",
                        "RefExit", "NextIteration", "RefNextIteration", "LoopCond"}
# TF2 functional control flow and calls: the body lives in the function library.
CONTROL_FLOW_OPS = frozenset({"If", "StatelessIf", "While", "StatelessWhile", "Case",
                              "StatelessCase"})
WHILE_OPS = frozenset({"While", "StatelessWhile"})
FUNCTIONAL_OPS = CONTROL_FLOW_OPS | {"PartitionedCall", "StatefulPartitionedCall"}
# Set on control flow the runtime lowers to Switch/Merge frames (False: run as functions).
LOWERING_ATTR = "_lower_using_switch_merge"


def is_training_op(op: str) -> bool:
    return op in CHECKPOINT_OPS or op in ASSIGN_OPS or op.startswith(UPDATE_PREFIXES)


# Ops that *select* (keep the top-scoring boxes, the k largest): a tiny change in a score can
# swap which near-tied element is kept or in which order, so what they output is compared as a
# set of rows under reduced precision (verify.compare.compare_selection).
SELECTION_OPS = frozenset({"NonMaxSuppression", "NonMaxSuppressionV2", "NonMaxSuppressionV3",
                           "NonMaxSuppressionV4", "NonMaxSuppressionV5",
                           "CombinedNonMaxSuppression", "TopKV2", "TopK"})
