"""A TF1-era SavedModel (``tf.compat.v1.saved_model.Builder``): its signatures frozen from a
Session, table initializers kept to run at load."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2
from tensorflow.core.protobuf import saved_model_pb2

from tfopt.graph.names import canonical_tensor, node_of
from tfopt.model.format import pick_signature, pick_signatures
from tfopt.model.freeze import (
    TABLE_INIT_OPS,
    freeze_session,
)
from tfopt.model.identical import mark_identical
from tfopt.model.saved_model import (
    SavedModelFormat,
    load_error,
    serving_meta_graph,
    shape_tuple,
    signature_keys,
)
from tfopt.model.signature import LoadedModel, SignatureGraph, TensorInfo
from tfopt.verify.runners import feed_dict


class TF1SavedModel(SavedModelFormat):
    name = "saved_model_tf1"

    def load(self, signatures, inputs, outputs) -> LoadedModel:
        self._no_node_names(inputs, outputs)
        return load_tf1(self.path, self.proto, signatures)

    def stored_graph(self, signature):
        from tfopt.graph.library import referenced_functions
        from tfopt.graph.walk import reachable_from

        meta = serving_meta_graph(self.proto)
        if not signature:
            return meta.graph_def, None
        key = pick_signature(self.signature_keys(), signature, self.path)
        outputs = [t.name for t in meta.signature_def[key].outputs.values()]
        keep = reachable_from(meta.graph_def, outputs)
        graph_def = type(meta.graph_def)()
        graph_def.node.extend(n for n in meta.graph_def.node if n.name in keep)
        graph_def.library.CopyFrom(meta.graph_def.library)
        return graph_def, referenced_functions(graph_def.node, graph_def.library)


Reference = Callable[[str, dict[str, np.ndarray]], dict[str, np.ndarray]]


def session_reference(sess: tf.compat.v1.Session, sigs: dict[str, SignatureGraph]) -> Reference:
    def reference(key: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        sig = sigs[key]
        fetch_keys = list(sig.outputs)
        values = sess.run([sig.outputs[k].tensor for k in fetch_keys],
                          feed_dict(sig, feeds))
        return dict(zip(fetch_keys, values, strict=True))

    return reference


def load_tf1(path: str, proto: saved_model_pb2.SavedModel,
              signatures: list[str] | None) -> LoadedModel:
    meta = serving_meta_graph(proto)
    tags = tuple(meta.meta_info_def.tags)
    keys = pick_signatures(signature_keys(proto), signatures, path)
    graph = tf.Graph()
    sess = tf.compat.v1.Session(graph=graph)
    try:
        with graph.as_default():
            tf.compat.v1.saved_model.load(sess, list(tags), path)
    except Exception as err:
        raise load_error(path, err) from None
    graph_def = graph.as_graph_def()
    sigs: dict[str, SignatureGraph] = {}
    for key in keys:
        sd = meta.signature_def[key]
        inputs = {k: TensorInfo(canonical_tensor(v.name), tf.as_dtype(v.dtype),
                                shape_tuple(v.tensor_shape)) for k, v in sd.inputs.items()}
        outputs = {k: TensorInfo(canonical_tensor(v.name), tf.as_dtype(v.dtype),
                                 shape_tuple(v.tensor_shape)) for k, v in sd.outputs.items()}
        out_nodes = sorted({node_of(t.tensor) for t in outputs.values()})
        init_ops = table_initializers(graph_def, out_nodes)
        try:
            frozen = freeze_session(sess, graph_def, out_nodes + init_ops)
        except Exception as err:
            raise load_error(path, err) from None
        sigs[key] = SignatureGraph(key, frozen, inputs, outputs,
                                   sd.method_name or "tensorflow/serving/predict",
                                   init_ops=init_ops)
    mark_identical(sigs)
    return LoadedModel(path, sigs, reference=session_reference(sess, sigs),
                       tags=tags)


def table_initializers(graph_def: graph_pb2.GraphDef, out_nodes: list[str]) -> list[str]:
    """Initializers of the lookup tables the outputs read (a TF1 export runs them from its
    main op, which freezing to the outputs would otherwise drop)."""
    from tfopt.graph.ops import CHECKPOINT_OPS
    from tfopt.graph.walk import reachable_from

    reached = reachable_from(graph_def, out_nodes)
    by_name = {n.name: n for n in graph_def.node}
    found = []
    for node in graph_def.node:
        if node.op not in TABLE_INIT_OPS or not node.input or node_of(node.input[0]) not in reached:
            continue
        feeds = reachable_from(graph_def, [node.name])
        if any(by_name[n].op in CHECKPOINT_OPS for n in feeds):
            continue  # a Saver's restore of a mutable table, not an initializer
        found.append(node.name)
    return sorted(found)
