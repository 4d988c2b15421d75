"""Turn variables into constants, for TF2 functions and TF1 sessions alike.

TensorFlow's ``convert_variables_to_constants_v2`` does the bulk of the work; we add what it
leaves broken: ``ResourceGather``/``ResourceGatherNd`` inside functions (the body of a
``tf.while_loop`` or ``tf.map_fn`` that looks up an embedding) still expect a resource after the
function argument became a float constant (tf#53569, PR #57537). We rewrite those to
``GatherV2``/``GatherNd`` on the frozen argument.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np
from tensorflow.core.framework import function_pb2, graph_pb2, node_def_pb2, types_pb2
from tensorflow.python.framework import dtypes

from tfopt.errors import TfoptError
from tfopt.graph.library import all_nodes
from tfopt.graph.lifted import WeightStore, lifted_stub
from tfopt.graph.nodes import get_attr, make_const, set_attr
from tfopt.graph.ops import CONTROL_FLOW_OPS, LOWERING_ATTR
from tfopt.graph.readers import Readers
from tfopt.graph.weights import PROTO_LIMIT, variables_from

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
    added: list[node_def_pb2.NodeDef] = []
    count = 0
    for node in fn.node_def:
        if node.op not in _RESOURCE_TO_VALUE_OP:
            continue
        src = node.input[0].split(":")[0]
        if arg_types.get(src, types_pb2.DT_RESOURCE) == types_pb2.DT_RESOURCE:
            continue
        for axis in _gather_on_value(node, get_attr(node, "dtype")):
            node.input[2] = axis.name + ":output:0"  # a function body's output naming
            added.append(axis)
        count += 1
    fn.node_def.extend(added)
    return count


def repair_frozen_functions(graph_def: graph_pb2.GraphDef) -> int:
    """Fix what ``convert_variables_to_constants_v2`` leaves inside the function library."""
    return sum(_rewrite_resource_gather(fn) for fn in graph_def.library.function)


def _branch_key(node: node_def_pb2.NodeDef) -> tuple[str, ...]:
    """The functions a control-flow node runs, without their numeric suffixes: loading and
    freezing both renumber a body (``..._body_1276_115`` -> ``..._body_1276_frozen_672``) and
    freezing moves the node out of its function, so the functions' base names are what
    identifies a loop on both sides."""
    names = []
    for value in node.attr.values():
        names.extend([value.func.name] if value.func.name else [f.name for f in value.list.func])
    return tuple(sorted(re.sub(r"(_\d+|_frozen)+$", "", name) for name in names if name))


def control_flow_lowering(graph_def: graph_pb2.GraphDef) -> dict[tuple[str, ...], bool]:
    """Each control-flow node's ``_lower_using_switch_merge`` mark, by the functions it runs
    (left out where two nodes with the same key disagree)."""
    marks: dict[tuple[str, ...], set[bool]] = {}
    for node in all_nodes(graph_def):
        if node.op in CONTROL_FLOW_OPS and LOWERING_ATTR in node.attr:
            marks.setdefault(_branch_key(node), set()).add(get_attr(node, LOWERING_ATTR))
    return {key: values.pop() for key, values in marks.items() if len(values) == 1}


def restore_control_flow_lowering(graph_def: graph_pb2.GraphDef,
                                  lowering: dict[tuple[str, ...], bool]) -> int:
    """Put back the lowering marks freezing overwrote; returns how many changed."""
    changed = 0
    for node in all_nodes(graph_def):
        original = lowering.get(_branch_key(node)) if node.op in CONTROL_FLOW_OPS else None
        if original is not None and get_attr(node, LOWERING_ATTR) != original:
            set_attr(node, LOWERING_ATTR, original)
            changed += 1
    return changed


@dataclass
class FrozenFunction:
    """A frozen ``ConcreteFunction``: its inputs and outputs (``io.inputs``,
    ``io.outputs``), its repaired GraphDef, the table initializers to run at load (see
    :func:`embed_tables`), and the store its lifted weights read from (None: every weight
    is in the graph)."""

    io: object
    graph_def: graph_pb2.GraphDef
    init_ops: list[str]
    weights: WeightStore | None = None


def freeze_concrete_function(func) -> FrozenFunction:
    """Freeze a ``ConcreteFunction``."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    # lower_control_flow=False keeps If/While functional, so the graph passes can read their
    # bodies; but it also marks every one `_lower_using_switch_merge=False`, which makes the
    # runtime call the body as a function per iteration (an LSTM ran 0.4x). The marks are put
    # back as the original had them, so the runtime lowers the loops exactly as before.
    lowering = control_flow_lowering(func.graph.as_graph_def())
    too_big = [v for v in func.variables if v.shape.is_fully_defined()
               and v.shape.num_elements() * v.dtype.size >= PROTO_LIMIT]
    if too_big:
        v = too_big[0]
        raise TfoptError(f"variable {v.name} is {v.shape.num_elements() * v.dtype.size / 2**30:.2f}"
                         " GiB: one tensor of 2 GiB or more cannot be a graph constant "
                         "(protobuf), and tfopt freezes every weight; split the table (e.g. "
                         "two embeddings) or keep it out of the model")
    weights = None
    if variable_bytes(func) > variables_from():
        frozen, graph_def, weights = _freeze_in_python(func)
    else:
        frozen = convert_variables_to_constants_v2(func, lower_control_flow=False)
        graph_def = frozen.graph.as_graph_def()
    restore_control_flow_lowering(graph_def, lowering)
    repair_frozen_functions(graph_def)
    init_ops = embed_tables(func, graph_def)
    return FrozenFunction(frozen, graph_def, init_ops, weights)


# Past variables_from() (64 MiB) freezing stays in Python even when the graph would fit one
# protobuf: building the frozen function costs ~8x the weights in transient memory (measured:
# +514 MB for GPT-2 4x256's 62 MB, +82 MB in Python), which is what ran GPT-2 base out of 23 GB
# (at 256 MiB, the threshold before session 11, GPT-2 6x512's 0.17 GiB loaded at 4.0 GB).


def variable_bytes(func) -> int:
    """What the weights a function captures take (from their shapes: nothing is read)."""
    return sum(v.shape.num_elements() * v.dtype.size for v in func.variables
               if v.shape.is_fully_defined())


@dataclass(frozen=True)
class FrozenIO:
    """A frozen function's inputs and outputs, where no function is built (see below)."""

    inputs: list
    outputs: list


# What reads a variable's value in a frozen main graph (Identity chains of the handle in
# between): ReadVariableOp becomes an Identity of the weight, a resource gather a gather.
_VALUE_READS = frozenset({"ReadVariableOp", *_RESOURCE_TO_VALUE_OP})


def _held_in_variables(graph_def: graph_pb2.GraphDef, names: set[str]) -> set[str]:
    """Of the captured-variable placeholders ``names``, those whose every use in the main
    graph is a value read (:data:`_VALUE_READS`), possibly through ``Identity``: a weight
    that becomes a stub reading its variable. A handle passed into a loop or a call stays
    with TensorFlow's converter, which rewrites function signatures."""
    readers = Readers(graph_def.node)

    def only_reads(name: str) -> bool:
        return all(u.op in _VALUE_READS or (u.op == "Identity" and only_reads(u.name))
                   for u in readers.of_node(name))

    return {name for name in names if readers.of_node(name) and only_reads(name)}


def _read_from_stub(graph_def: graph_pb2.GraphDef, placeholders: dict[str, object],
                    store: WeightStore) -> None:
    """Each placeholder named in ``placeholders`` (name -> its variable) becomes a lifted
    Const stub reading the variable from ``store``; the reads after it become value ops."""
    by_name = {n.name: n for n in graph_def.node}
    users = Readers(graph_def.node)
    added: list[node_def_pb2.NodeDef] = []
    for name, var in placeholders.items():
        dtype = var.dtype.base_dtype
        by_name[name].CopyFrom(lifted_stub(name, dtype, var.shape, store.hold_variable(var),
                                           by_name[name].device))
        stack = list(users.of_node(name))
        while stack:
            node = stack.pop()
            if node.op == "Identity":
                set_attr(node, "T", dtype)
                stack.extend(users.of_node(node.name))
            elif node.op == "ReadVariableOp":
                del node.attr["dtype"]
                node.op = "Identity"
                set_attr(node, "T", dtype)
            else:  # ResourceGather(Nd)
                added.extend(_gather_on_value(node, dtype))
    graph_def.node.extend(added)


def _gather_on_value(node: node_def_pb2.NodeDef, dtype) -> list[node_def_pb2.NodeDef]:
    """A ``ResourceGather``/``ResourceGatherNd`` turned into the value op on its (now
    constant) params; returns the nodes it needs added (GatherV2's axis)."""
    batch_dims = get_attr(node, "batch_dims", 0)
    for key in ("dtype", "validate_indices", "_class", "batch_dims"):
        if key in node.attr:
            del node.attr[key]
    node.op = _RESOURCE_TO_VALUE_OP[node.op]
    set_attr(node, "Tparams", dtype)
    if node.op != "GatherV2":
        return []
    axis = make_const(node.name + "/frozen_axis", np.array(batch_dims, np.int32))
    node.input.insert(2, axis.name)
    set_attr(node, "Taxis", dtypes.int32)
    set_attr(node, "batch_dims", batch_dims)
    return [axis]


def _freeze_in_python(func):
    """Freeze without building the frozen function, and without copying the weights.

    TensorFlow's converter puts the variables' values into a GraphDef in Python, which holds
    more than 2 GiB, but building a function from it (what
    ``convert_variables_to_constants_v2`` does last) serialises it for the C++ side, which
    cannot. And every weight it makes a constant is a second copy beside the variable (and a
    third while it is made: an embedding table's read copies it): a model with two 1.1 GiB
    tables peaked at 3.3x its weights here. So weights the graph only reads (almost all)
    are not converted: each becomes a lifted stub (:mod:`tfopt.graph.lifted`) reading the
    loaded variable itself, which the returned store holds and the writer saves as it is.
    What the graph hands to a loop or call as a handle is converted by TensorFlow.

    Inputs are the function's own arguments (captures are what freezing removes) and outputs
    its outputs, as ``_construct_concrete_function`` names them."""
    from tensorflow.python.framework import convert_to_constants as ctc

    by_handle = {id(var.handle): var for var in func.variables}
    variables = {internal.op.name: by_handle[id(external)]
                 for external, internal in func.graph.captures if id(external) in by_handle}

    class HeldInVariables(ctc._FunctionConverterDataInEager):
        """Leaves the weights the graph only reads to stubs (see above), and reads the others
        as views of their variables' buffers: ``numpy()`` copies every one."""

        def _build_tensor_data(self):
            self.held = _held_in_variables(self.graph_def, set(variables))
            self._variable_names_denylist = self.held
            super()._build_tensor_data()

        def _eval(self, tensor):
            return np.asarray(tensor.read_value() if hasattr(tensor, "read_value") else tensor)

    data = HeldInVariables(func=func, lower_control_flow=False, aggressive_inlining=False)
    graph_def, _ = ctc._replace_variables_by_constants(converter_data=data)
    store = WeightStore()
    _read_from_stub(graph_def, {name: variables[name] for name in data.held}, store)
    captured = {id(t) for t in func.graph.internal_captures}
    inputs = [t for t in func.inputs if id(t) not in captured]
    return FrozenIO(inputs, list(func.outputs)), graph_def, store


def freeze_session(sess, graph_def: graph_pb2.GraphDef, output_nodes: list[str]) -> graph_pb2.GraphDef:
    """Freeze a TF1 session's graph to what ``output_nodes`` need."""
    from tensorflow.python.framework import convert_to_constants

    frozen = convert_to_constants.convert_variables_to_constants_from_session_graph(
        sess, graph_def, output_nodes)
    repair_frozen_functions(frozen)
    return frozen


# --- lookup tables -------------------------------------------------------------------------------

LOOKUP_DTYPES = {  # op -> (key dtype attr, value dtype attr)
    "LookupTableFindV2": ("Tin", "Tout"),
    "LookupTableImportV2": ("Tin", "Tout"),
    "LookupTableExportV2": ("Tkeys", "Tvalues"),
    "LookupTableInsertV2": ("Tin", "Tout"),
}
# What fills a table at load time (KeyValueTensorInitializer emits LookupTableImportV2).
TABLE_INIT_OPS = {"InitializeTableV2", "InitializeTable", "InitializeTableFromTextFileV2",
                  "InitializeTableFromTextFile", "InitializeTableFromDataset",
                  "LookupTableImportV2"}


def _table_dtypes(graph_def: graph_pb2.GraphDef, placeholder: str
                  ) -> tuple[dtypes.DType, dtypes.DType] | None:
    """Key/value dtypes of the table behind ``placeholder``, from the ops that use it."""
    users = Readers(graph_def.node)
    stack, seen = [placeholder], set()
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        for user in users.of_node(name):
            if user.op in LOOKUP_DTYPES:
                key_attr, value_attr = LOOKUP_DTYPES[user.op]
                return get_attr(user, key_attr), get_attr(user, value_attr)
            if user.op == "Identity":
                stack.append(user.name)
    return None


def embed_tables(func, graph_def: graph_pb2.GraphDef) -> list[str]:
    """Turn captured lookup tables (left as resource placeholders by freezing) into
    ``HashTableV2`` nodes filled by an ``InitializeTableV2`` from constants.

    Returns the initializer node names: they must run once when the model loads (the saver
    makes them the SavedModel's main op). Raises ValueError for a resource it cannot embed.
    """
    import tensorflow as tf

    handles = {internal.op.name: external for external, internal in func.graph.captures}
    by_name = {n.name: n for n in graph_def.node}
    init_ops: list[str] = []
    for node in list(graph_def.node):
        if node.op != "Placeholder" or get_attr(node, "dtype") != dtypes.resource:
            continue
        if node.name not in handles:
            continue
        table_types = _table_dtypes(graph_def, node.name)
        if table_types is None:
            raise ValueError(f"captured resource {node.name!r} is neither a variable nor a "
                             "lookup table read in the main graph; it cannot be frozen")
        key_dtype, value_dtype = table_types
        keys, values = tf.raw_ops.LookupTableExportV2(
            table_handle=handles[node.name], Tkeys=key_dtype, Tvalues=value_dtype)
        digest = hashlib.sha1(keys.numpy().tobytes() + values.numpy().tobytes()).hexdigest()
        table = by_name[node.name]
        table.op = "HashTableV2"
        table.attr.clear()
        set_attr(table, "key_dtype", key_dtype)
        set_attr(table, "value_dtype", value_dtype)
        # Unique per contents: tables of two models loaded in one process must not collide.
        set_attr(table, "shared_name", f"tfopt_table_{digest[:16]}")
        set_attr(table, "use_node_name_sharing", False)
        set_attr(table, "container", "")
        keys_node = make_const(f"{node.name}/frozen_keys", keys.numpy())
        values_node = make_const(f"{node.name}/frozen_values", values.numpy())
        init = node_def_pb2.NodeDef(name=f"{node.name}/frozen_init", op="InitializeTableV2")
        init.input.extend([node.name, keys_node.name, values_node.name])
        set_attr(init, "Tkey", key_dtype)
        set_attr(init, "Tval", value_dtype)
        graph_def.node.extend([keys_node, values_node, init])
        init_ops.append(init.name)
    return init_ops
