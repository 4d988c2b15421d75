"""A model converted for another runtime (LiteRT, OpenVINO): benchmarked, analyzed and run
by :func:`tfopt.load`, never optimized again."""

from __future__ import annotations

import tensorflow as tf

from tfopt.errors import TfoptError
from tfopt.model.format import DEFAULT_SIGNATURE, ModelFormat, OpenSignature
from tfopt.model.signature import LoadedModel, TensorInfo


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

        from tfopt.runtimes import default_threads

        threads = getattr(config, "intra_op_parallelism_threads", 0) or default_threads()
        inputs, _, prepare, owner = self.runtime.open_signature(self.path, signature, threads)
        infos = {k: TensorInfo(k, tf.as_dtype(d), tuple(None if x < 0 else x for x in s))
                 for k, (d, s) in inputs.items()}
        return OpenSignature(infos, prepare, owner=owner)
