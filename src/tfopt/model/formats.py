"""One object per input format: it knows how to detect, load, run and count its models.

TF2 SavedModel, TF1-era SavedModel, frozen GraphDef (``.pb``/``.pbtxt``) and Keras file
(``.keras``/``.h5``). Every other module asks the format (``detect(path)``) instead of
branching on a kind string: what signatures and input names a file declares before loading,
how to load and freeze it, which graph it stores (for ``analyze``), and how to open a
signature for timed calls (for ``benchmark``).
"""

from __future__ import annotations

from tfopt.errors import TfoptError
from tfopt.graph.library import all_nodes
from tfopt.model.format import ModelFormat
from tfopt.model.graph_def_file import FrozenGraphDef
from tfopt.model.keras_file import KerasFile
from tfopt.model.paths import model_kind
from tfopt.model.runtime_model import RuntimeModel
from tfopt.model.saved_model import is_tf2_saved_model, read_saved_model_proto
from tfopt.model.saved_model_tf1 import TF1SavedModel
from tfopt.model.saved_model_tf2 import TF2SavedModel
from tfopt.model.signature import LoadedModel


def detect(path: str) -> ModelFormat:
    """The format of the model at ``path``; a one-line TfoptError when there is none."""
    kind = model_kind(path)
    if kind == "saved_model":
        proto = read_saved_model_proto(path)
        return (TF2SavedModel if is_tf2_saved_model(proto) else TF1SavedModel)(path, proto)
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
