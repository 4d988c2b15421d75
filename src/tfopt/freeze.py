"""Turn variables into constants, for TF2 functions and TF1 sessions alike.

TensorFlow's ``convert_variables_to_constants_v2`` does the bulk of the work; we add what it
leaves broken: ``ResourceGather``/``ResourceGatherNd`` inside functions (the body of a
``tf.while_loop`` or ``tf.map_fn`` that looks up an embedding) still expect a resource after the
function argument became a float constant (tf#53569, PR #57537). We rewrite those to
``GatherV2``/``GatherNd`` on the frozen argument.
"""

from __future__ import annotations

import numpy as np
from tensorflow.core.framework import function_pb2, graph_pb2, node_def_pb2, types_pb2

from tfopt.graph import make_const

# Resource ops on a frozen (now non-resource) input, and the value op that replaces them.
_RESOURCE_TO_VALUE_OP = {
    "ResourceGather": "GatherV2",
    "ResourceGatherNd": "GatherNd",
}


def _function_arg_types(fn: function_pb2.FunctionDef) -> dict[str, int]:
    return {arg.name: arg.type for arg in fn.signature.input_arg}


def _rewrite_resource_gather(fn: function_pb2.FunctionDef) -> int:
    """Rewrite resource gathers whose resource argument was frozen; returns how many."""
    arg_types = _function_arg_types(fn)
    local_types: dict[str, int] = {}
    added: list[node_def_pb2.NodeDef] = []
    count = 0
    for node in fn.node_def:
        if node.op not in _RESOURCE_TO_VALUE_OP:
            continue
        src = node.input[0].split(":")[0]
        src_type = arg_types.get(src, local_types.get(src, types_pb2.DT_RESOURCE))
        if src_type == types_pb2.DT_RESOURCE:
            continue
        value_dtype = node.attr["dtype"].type
        new_op = _RESOURCE_TO_VALUE_OP[node.op]
        batch_dims = node.attr["batch_dims"].i if "batch_dims" in node.attr else 0
        for key in ("dtype", "validate_indices", "_class"):
            if key in node.attr:
                del node.attr[key]
        node.op = new_op
        node.attr["Tparams"].type = value_dtype
        if new_op == "GatherV2":
            axis = make_const(node.name + "/frozen_axis", np.array(batch_dims, np.int32))
            added.append(axis)
            node.input.insert(2, axis.name + ":output:0")
            node.attr["Taxis"].type = types_pb2.DT_INT32
            node.attr["batch_dims"].i = batch_dims
        elif "batch_dims" in node.attr:
            del node.attr["batch_dims"]
        count += 1
    fn.node_def.extend(added)
    return count


def repair_frozen_functions(graph_def: graph_pb2.GraphDef) -> int:
    """Fix what ``convert_variables_to_constants_v2`` leaves inside the function library."""
    return sum(_rewrite_resource_gather(fn) for fn in graph_def.library.function)


def freeze_concrete_function(func):
    """Freeze a ``ConcreteFunction``; returns the frozen function and its repaired GraphDef."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    # lower_control_flow=False keeps If/While functional: Grappler and Serving run them well,
    # and lowering to Switch/Merge would block later graph passes for no gain.
    frozen = convert_variables_to_constants_v2(func, lower_control_flow=False)
    graph_def = frozen.graph.as_graph_def()
    repair_frozen_functions(graph_def)
    return frozen, graph_def


def freeze_session(sess, graph_def: graph_pb2.GraphDef, output_nodes: list[str]) -> graph_pb2.GraphDef:
    """Freeze a TF1 session's graph to what ``output_nodes`` need."""
    from tensorflow.python.framework import convert_to_constants

    frozen = convert_to_constants.convert_variables_to_constants_from_session_graph(
        sess, graph_def, output_nodes)
    repair_frozen_functions(frozen)
    return frozen
