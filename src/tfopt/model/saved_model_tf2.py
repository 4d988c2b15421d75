"""A TF2 SavedModel: each signature's concrete function frozen (variables to constants, a
large model's read weights kept in their variables), the original loaded to answer."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow.python.util import nest

from tfopt.errors import TfoptError, first_line
from tfopt.graph.library import all_nodes
from tfopt.graph.ops import ASSIGN_OPS
from tfopt.model import endpoints, restore
from tfopt.model.format import pick_signature, pick_signatures
from tfopt.model.freeze import (
    FrozenFunction,
    freeze_concrete_function,
)
from tfopt.model.identical import canonical_form, mark_identical
from tfopt.model.saved_model import SavedModelFormat, load_error, serving_meta_graph, shape_tuple
from tfopt.model.signature import LoadedModel, SignatureGraph, TensorInfo
from tfopt.verify.runners import call_signature


class TF2SavedModel(SavedModelFormat):
    name = "saved_model_tf2"

    def load(self, signatures, inputs, outputs) -> LoadedModel:
        self._no_node_names(inputs, outputs)
        return load_tf2(self.path, signatures)

    def stored_graph(self, signature):
        graph_def = serving_meta_graph(self.proto).graph_def
        if not signature:
            return graph_def, None
        import tensorflow as tf

        from tfopt.graph.library import referenced_functions

        signatures = tf.saved_model.load(self.path).signatures
        key = pick_signature(list(signatures.keys()), signature, self.path)
        graph_def = signatures[key].graph.as_graph_def()
        return graph_def, referenced_functions(graph_def.node, graph_def.library)


def freeze_function(path: str, func):
    try:
        return freeze_concrete_function(func)
    except ValueError as err:
        writes = _variable_writes(func.graph.as_graph_def())
        if writes:
            raise TfoptError(
                f"{path}: cannot freeze: calling it writes variables ({len(writes)} "
                f"assignments, e.g. {writes[0]}), as a batch norm computing in training mode "
                "does; frozen weights cannot follow such updates: export the model for "
                "inference (training=False)") from None
        raise TfoptError(f"{path}: cannot freeze: {first_line(err)}") from None


def _variable_writes(graph_def) -> list[str]:
    """Names of the nodes that assign to resource variables, in the graph or its functions."""
    return [n.name for n in all_nodes(graph_def) if n.op in ASSIGN_OPS]


def _trace_identity(func) -> tuple:
    """What makes two signature functions freeze to the same graph: the same traced body
    (function names aside, see :func:`canonical_form`), the same captured variables and the same
    input and output structure."""
    nodes, functions = canonical_form(func.graph.as_graph_def())
    captures = tuple(id(t) for t in func.captured_inputs)
    outputs = tf.nest.map_structure(lambda t: (getattr(t, "dtype", None), str(getattr(t, "shape", t))),
                                    func.structured_outputs)
    return nodes, functions, captures, repr(func.structured_input_signature), repr(outputs)


def _signature_from_function(key: str, func, frozen: FrozenFunction) -> SignatureGraph:
    specs = tf.nest.flatten(func.structured_input_signature, expand_composites=True)
    names = sorted(func.structured_input_signature[1]) if func.structured_input_signature[1] else \
        [s.name for s in specs]
    placeholders = frozen.io.inputs[:len(specs)]
    inputs = {}
    for spec_key, spec, ph in zip(names, specs, placeholders, strict=False):
        inputs[spec_key] = TensorInfo(ph.name, spec.dtype, shape_tuple(spec.shape))
    outputs = {}
    # The frozen function's outputs follow the flattening order of the original's structure.
    paths = nest.flatten_with_joined_string_paths(func.structured_outputs)
    for (path, declared), tensor in zip(paths, frozen.io.outputs, strict=True):
        # A function call's output (a graph with lowered loops, as tfopt writes one) has no
        # inferred shape: the signature's declared one says it.
        shape = tensor.shape if tensor.shape.rank is not None else getattr(declared, "shape",
                                                                             tensor.shape)
        outputs[path or "output_0"] = TensorInfo(tensor.name, tensor.dtype, shape_tuple(shape))
    return SignatureGraph(key, frozen.graph_def, inputs, outputs,
                          init_ops=list(frozen.init_ops), weights=frozen.weights)


def load_tf2(path: str, signatures: list[str] | None) -> LoadedModel:
    try:
        obj = restore.load(path)
    except Exception as err:  # TF raises many types here; the message is what matters
        raise load_error(path, err) from None
    keys = pick_signatures(list(obj.signatures.keys()), signatures, path)
    sigs = {}
    # Signatures over one function (Keras 3 exports "serve" and "serving_default") are
    # frozen once: freezing copies every weight (GPT-2 base: +0.8 GB for the second).
    done: dict[tuple, tuple] = {}
    for key in keys:
        func = obj.signatures[key]
        ident = _trace_identity(func)
        if ident not in done:
            done[ident] = freeze_function(path, func)
        sigs[key] = _signature_from_function(key, func, done[ident])
    del done
    mark_identical(sigs)
    notes: list[str] = []
    found = endpoints.find(obj, sigs, notes)

    def reference(key: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return call_signature(obj, key, feeds)

    return LoadedModel(path, sigs, notes=notes, reference=reference, endpoints=found)
