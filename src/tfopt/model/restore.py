"""Load a large TF2 SavedModel holding each weight once.

Keras 3's ``model.export()`` writes every variable twice into the checkpoint
(``variables/N`` and ``_all_variables/N``) and ``tf.saved_model.load`` restores both as
separate variables: a model with 2.3 GiB of weights loaded at 5.5 GB, before anything was
frozen. Past :func:`tfopt.graph.weights.variables_from` the SavedModel is loaded without its
checkpoint and only the variables the signatures read are restored, one at a time, each
straight into its variable (``RestoreV2`` + assign: 3.1 GB for the same model). Anything this
cannot map (a variable whose checkpoint key is not found, an object it cannot walk) falls back
to the plain load.
"""

from __future__ import annotations

import os

import tensorflow as tf
from tensorflow.core.protobuf import trackable_object_graph_pb2

from tfopt.graph.weights import variables_from

OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
VALUE_ATTRIBUTE = "VARIABLE_VALUE"


def checkpoint_prefix(path: str) -> str:
    return os.path.join(path, "variables", "variables")


def checkpoint_bytes(reader) -> int:
    """What the checkpoint's tensors take (from their shapes and dtypes)."""
    dtypes = reader.get_variable_to_dtype_map()
    total = 0
    for key, shape in reader.get_variable_to_shape_map().items():
        count = 1
        for dim in shape:
            count *= dim
        total += count * dtypes[key].size
    return total


def load(path: str):
    """``tf.saved_model.load(path)``; past the threshold with only the signatures' weights."""
    try:
        reader = tf.train.load_checkpoint(checkpoint_prefix(path))
    except (tf.errors.OpError, ValueError):
        return tf.saved_model.load(path)  # no checkpoint (or no variables): nothing to save
    if checkpoint_bytes(reader) < variables_from():
        return tf.saved_model.load(path)
    obj = tf.saved_model.load(path, options=tf.saved_model.LoadOptions(
        experimental_skip_checkpoint=True))
    needed = {id(v): v for key in obj.signatures for v in obj.signatures[key].variables}
    try:
        keys = _checkpoint_keys(obj, reader)
    except Exception:  # an object graph this walk does not know: TensorFlow's own restore
        keys = {}
    if not needed or any(i not in keys for i in needed):
        del obj
        return tf.saved_model.load(path)
    prefix = checkpoint_prefix(path)
    for i, var in needed.items():
        value = tf.raw_ops.RestoreV2(prefix=prefix, tensor_names=[keys[i]],
                                     shape_and_slices=[""], dtypes=[var.dtype])[0]
        var.assign(value)
        del value
    return obj


def _checkpoint_keys(root, reader) -> dict[int, str]:
    """id(variable) -> its checkpoint key, walking the checkpoint's object graph and the
    loaded objects together by their children's local names."""
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor(OBJECT_GRAPH_KEY))
    keys: dict[int, str] = {}
    seen: set[int] = set()
    stack = [(0, root)]
    while stack:
        node_id, obj = stack.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        node = graph.nodes[node_id]
        for attribute in node.attributes:
            if attribute.name == VALUE_ATTRIBUTE and isinstance(obj, tf.Variable):
                keys.setdefault(id(obj), attribute.checkpoint_key)
        children = obj._trackable_children(save_type="checkpoint")
        for ref in node.children:
            child = children.get(ref.local_name)
            if child is not None:
                stack.append((ref.node_id, child))
    return keys
