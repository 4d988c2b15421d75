"""What every input format answers (:class:`ModelFormat`): the signatures it declares,
how it loads and freezes, what graph it stores, how a signature opens for timed calls."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from tfopt.errors import TfoptError
from tfopt.model.signature import LoadedModel, TensorInfo
from tfopt.verify.runners import feed_dict

DEFAULT_SIGNATURE = "serving_default"


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
        from tfopt.verify.runners import open_session

        sess = open_session(sig[key], config)
        fetches = [t.tensor for t in sig[key].outputs.values()]

        def prepare(feeds: dict[str, np.ndarray]) -> Callable[[], object]:
            fed = feed_dict(sig[key], feeds)
            call = sess.make_callable(fetches, feed_list=list(fed))
            values = list(fed.values())
            return lambda: call(*values)

        return OpenSignature(sig[key].inputs, prepare, owner=sess)


class SingleSignature(ModelFormat):
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


def pick_signatures(available: list[str], wanted: list[str] | None, path: str) -> list[str]:
    """The signatures to work on: ``wanted`` (each must exist), or all of them."""
    if not available:
        raise TfoptError(f"{path}: the model has no signatures")
    unknown = [k for k in wanted or () if k not in available]
    if unknown:
        raise TfoptError(f"{path}: unknown signature {unknown[0]!r} (available: "
                         f"{', '.join(sorted(available))})")
    return list(dict.fromkeys(wanted)) if wanted else sorted(available)


def pick_signature(available: list[str], wanted: str | None, path: str) -> str:
    """One signature (benchmark, analyze): ``wanted``, else serving_default or the only one."""
    if wanted is not None:
        return pick_signatures(available, [wanted], path)[0]
    if DEFAULT_SIGNATURE in available or len(available) != 1:
        return pick_signatures(available, [DEFAULT_SIGNATURE], path)[0]
    return available[0]
