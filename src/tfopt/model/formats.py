"""One object per input format: it knows how to detect, load, run and count its models.

TF2 SavedModel, TF1-era SavedModel, frozen GraphDef (``.pb``/``.pbtxt``) and Keras file
(``.keras``/``.h5``). Every other module asks the format (``detect(path)``) instead of
branching on a kind string: what signatures and input names a file declares before loading,
how to load and freeze it, which graph it stores (for ``analyze``), and how to open a
signature for timed calls (for ``benchmark``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from tfopt.errors import TfoptError
from tfopt.model import loader
from tfopt.model.loader import DEFAULT_SIGNATURE, pick_signature, pick_signatures
from tfopt.model.paths import model_kind
from tfopt.model.signature import LoadedModel, TensorInfo

Prepare = Callable[[dict[str, np.ndarray]], Callable[[], object]]


@dataclass
class OpenSignature:
    """A signature opened for repeated calls: its inputs, and ``prepare(feeds)`` which returns
    a call with no arguments (feeds converted once, outside the timed loop)."""

    inputs: dict[str, TensorInfo]
    prepare: Prepare
    owner: Any = None  # keeps what the calls need alive (a loaded SavedModel, a Session)


class ModelFormat:
    """A model file or directory of one format. Subclasses say how each job is done."""

    name: ClassVar[str] = ""
    # True: the original runs from its path with plain ``tf.saved_model.load`` (in a child
    # process under another runtime, say); False: it runs as its frozen graph.
    loads_by_path: ClassVar[bool] = False

    def __init__(self, path: str):
        self.path = path

    def signature_keys(self) -> list[str]:
        """The signature keys the model declares (before loading)."""
        return [DEFAULT_SIGNATURE]

    def signature_inputs(self) -> dict[str, list[str]]:
        """Input keys per signature, where known without loading ({}: not known)."""
        return {}

    def load(self, signatures: list[str] | None, inputs, outputs) -> LoadedModel:
        raise NotImplementedError

    def stored_graph(self, signature: str | None):
        """The graph the file stores (whole, or what ``signature`` runs, with its functions
        limited to those it calls: second value); None: nothing stored (a Keras file)."""
        return None, None

    def open(self, signature: str | None, config) -> OpenSignature:
        """A signature ready for timed calls, run as users run this format."""
        sig = self.load([signature] if signature else None, None, None).signatures
        key = pick_signature(list(sig), signature, self.path)
        from tfopt.verify.runners import feed_dict, open_session

        sess = open_session(sig[key], config)
        fetches = [t.tensor for t in sig[key].outputs.values()]

        def prepare(feeds: dict[str, np.ndarray]) -> Callable[[], object]:
            fed = feed_dict(sig[key], feeds)
            call = sess.make_callable(fetches, feed_list=list(fed))
            values = list(fed.values())
            return lambda: call(*values)

        return OpenSignature(sig[key].inputs, prepare, owner=sess)


class SavedModelFormat(ModelFormat):
    loads_by_path = True

    def __init__(self, path: str, proto):
        super().__init__(path)
        self.proto = proto

    def signature_keys(self) -> list[str]:
        return loader.signature_keys(self.proto)

    def signature_inputs(self) -> dict[str, list[str]]:
        return loader.signature_input_keys(self.proto)

    def open(self, signature: str | None, config) -> OpenSignature:
        import tensorflow as tf

        try:
            obj = tf.saved_model.load(self.path)
        except Exception as err:
            raise loader.load_error(self.path, err) from None
        key = pick_signature(list(obj.signatures.keys()), signature, self.path)
        fn = obj.signatures[key]
        specs = fn.structured_input_signature[1]
        inputs = {k: TensorInfo(k, s.dtype, loader.shape_tuple(s.shape))
                  for k, s in specs.items()}

        def prepare(feeds: dict[str, np.ndarray]) -> Callable[[], object]:
            tensors = {k: tf.constant(v) for k, v in feeds.items()}
            return lambda: fn(**tensors)

        return OpenSignature(inputs, prepare, owner=obj)

    def _no_node_names(self, inputs, outputs) -> None:
        if inputs or outputs:
            raise TfoptError("--inputs/--outputs apply to GraphDef files; a SavedModel's "
                             "signature names them (use --signature)")


class TF2SavedModel(SavedModelFormat):
    name = "saved_model_tf2"

    def load(self, signatures, inputs, outputs) -> LoadedModel:
        self._no_node_names(inputs, outputs)
        return loader.load_tf2(self.path, signatures)

    def stored_graph(self, signature):
        graph_def = loader.serving_meta_graph(self.proto).graph_def
        if not signature:
            return graph_def, None
        import tensorflow as tf

        from tfopt.graph.library import referenced_functions

        signatures = tf.saved_model.load(self.path).signatures
        key = pick_signature(list(signatures.keys()), signature, self.path)
        graph_def = signatures[key].graph.as_graph_def()
        return graph_def, referenced_functions(graph_def.node, graph_def.library)


class TF1SavedModel(SavedModelFormat):
    name = "saved_model_tf1"

    def load(self, signatures, inputs, outputs) -> LoadedModel:
        self._no_node_names(inputs, outputs)
        return loader.load_tf1(self.path, self.proto, signatures)

    def stored_graph(self, signature):
        from tfopt.graph.library import referenced_functions
        from tfopt.graph.walk import reachable_from

        meta = loader.serving_meta_graph(self.proto)
        if not signature:
            return meta.graph_def, None
        key = pick_signature(self.signature_keys(), signature, self.path)
        outputs = [t.name for t in meta.signature_def[key].outputs.values()]
        keep = reachable_from(meta.graph_def, outputs)
        graph_def = type(meta.graph_def)()
        graph_def.node.extend(n for n in meta.graph_def.node if n.name in keep)
        graph_def.library.CopyFrom(meta.graph_def.library)
        return graph_def, referenced_functions(graph_def.node, graph_def.library)


class _SingleSignature(ModelFormat):
    """Formats with one signature (``serving_default``; a Keras file also ``serve``)."""

    def load(self, signatures, inputs, outputs) -> LoadedModel:
        model = self._load(inputs, outputs)
        keep = pick_signatures(list(model.signatures), signatures, self.path)
        model.signatures = {k: v for k, v in model.signatures.items() if k in keep}
        for sig in model.signatures.values():
            if sig.same_as not in model.signatures:
                sig.same_as = None
        return model

    def _load(self, inputs, outputs) -> LoadedModel:
        raise NotImplementedError


class FrozenGraphDef(_SingleSignature):
    name = "graph_def"

    def _load(self, inputs, outputs) -> LoadedModel:
        return loader.load_graph_def(self.path, inputs, outputs)

    def stored_graph(self, signature):
        return loader.read_graph_def(self.path), None


class KerasFile(_SingleSignature):
    name = "keras"

    def _load(self, inputs, outputs) -> LoadedModel:
        return loader.load_keras(self.path)

    def open(self, signature: str | None, config) -> OpenSignature:
        """A Keras file runs as its traced call function (inputs by name), as Keras serves
        it."""
        model = self.load(None, None, None)
        sig = model.signatures[DEFAULT_SIGNATURE]

        def prepare(feeds: dict[str, np.ndarray]) -> Callable[[], object]:
            return lambda: model.reference(DEFAULT_SIGNATURE, feeds)

        return OpenSignature(sig.inputs, prepare, owner=model)


class RuntimeModel(ModelFormat):
    """A model converted for another runtime (LiteRT, OpenVINO): it can be benchmarked,
    analyzed and run by :func:`tfopt.load`, not optimized again (it holds no TensorFlow
    graph)."""

    def __init__(self, path: str, fmt: str):
        super().__init__(path)
        from tfopt.runtimes import require

        self.name = fmt
        self.runtime = require(fmt)

    def signature_keys(self) -> list[str]:
        return [DEFAULT_SIGNATURE]

    def load(self, signatures, inputs, outputs) -> LoadedModel:
        raise TfoptError(f"{self.path}: a {self.name} model; tfopt optimizes TensorFlow models "
                         "(benchmark, analyze and tfopt.load read this one)")

    def open(self, signature: str | None, config) -> OpenSignature:
        import tensorflow as tf

        from tfopt.runtimes import default_threads

        threads = getattr(config, "intra_op_parallelism_threads", 0) or default_threads()
        inputs, _, prepare, owner = self.runtime.open_signature(self.path, signature, threads)
        infos = {k: TensorInfo(k, tf.as_dtype(d), tuple(None if x < 0 else x for x in s))
                 for k, (d, s) in inputs.items()}
        return OpenSignature(infos, prepare, owner=owner)


def detect(path: str) -> ModelFormat:
    """The format of the model at ``path``; a one-line TfoptError when there is none."""
    kind = model_kind(path)
    if kind == "saved_model":
        proto = loader.read_saved_model_proto(path)
        return (TF2SavedModel if loader.is_tf2_saved_model(proto) else TF1SavedModel)(path, proto)
    if kind in ("litert", "openvino"):
        return RuntimeModel(path, kind)
    return {"keras": KerasFile, "graph_def": FrozenGraphDef}[kind](path)


def load_model(path: str, signatures: list[str] | str | None = None,
               inputs: str | list[str] | None = None,
               outputs: str | list[str] | None = None) -> LoadedModel:
    """Load ``path`` (any supported format) into frozen signature graphs: the ``signatures``
    named, or all of them."""
    if isinstance(signatures, str):
        signatures = [signatures]
    fmt = detect(path)
    model = fmt.load(signatures, inputs, outputs)
    model.format = fmt
    return model


def refuse_python_ops(path: str, model: LoadedModel) -> None:
    """A ``tf.py_function`` is a key into the exporting process's Python registry: the model
    cannot run anywhere else, so it can be neither verified nor served (``analyze`` still
    shows it)."""
    from tfopt.graph.library import all_nodes
    from tfopt.graph.ops import PYTHON_OPS

    for key, sig in model.signatures.items():
        found = next((n for n in all_nodes(sig.graph_def) if n.op in PYTHON_OPS), None)
        if found is not None:
            raise TfoptError(
                f"{path}: unsupported op {found.op} ({found.name!r}) in signature {key!r}: it "
                "calls a Python function that is not saved with the model, so the model runs "
                "only in the process that exported it (replace tf.py_function with TensorFlow "
                "ops)")


def check_input_names(path: str, shapes: dict, signatures: list[str] | None) -> None:
    """Input names given shapes must exist: a SavedModel says so before it is loaded."""
    from tfopt.options import check_shape_names

    if not shapes:
        return
    per_sig = detect(path).signature_inputs()
    known = {k for key, names in per_sig.items() if not signatures or key in signatures
             for k in names}
    if known:
        check_shape_names(shapes, known)
