"""tfopt: make pre-trained TensorFlow models fast for inference, and prove nothing changed.

Python API (the CLI, ``tfopt optimize|benchmark|analyze|demo``, mirrors it)::

    import tfopt

    report = tfopt.optimize("model_dir", "model_fast")   # load, freeze, optimize, verify, save
    print(report)                                         # one line: nodes, verdict, time
    print(report.table())                                 # per pass, per output check
    report.to_dict()                                      # everything, JSON-ready

``tfopt.optimize`` takes the CLI's options as keywords (``signatures``, ``input_shapes``,
``target``, ``format``, ``tolerance``, ...); see ``help(tfopt.optimize)``. Errors are
:class:`TfoptError` (bad input; one clear message) and :class:`VerificationError` (no correct
optimized model could be made; nothing is written). Benchmarks: :mod:`tfopt.measure.benchmark`;
analysis: :mod:`tfopt.report.analyze`; the passes: :mod:`tfopt.passes` (order in
:mod:`tfopt.passes.registry`).
"""

from __future__ import annotations

import os

# TensorFlow's C++ start-up chatter hides tfopt's own output; users can still override this.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfopt.errors import TfoptError, VerificationError  # noqa: E402
from tfopt.version import __version__  # noqa: E402

__all__ = ["Report", "TfoptError", "VerificationError", "__version__", "load", "optimize"]


def __getattr__(name: str):
    # Lazy, so that ``import tfopt`` (and the CLI's start) does not import TensorFlow yet.
    if name in ("optimize", "Report", "load"):
        from tfopt import api as _module

        return getattr(_module, name)
    raise AttributeError(f"module 'tfopt' has no attribute {name!r}")
