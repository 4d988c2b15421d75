"""tfopt: make pre-trained TensorFlow models fast for inference, and prove nothing changed."""

from __future__ import annotations

import os

# TensorFlow's C++ start-up chatter hides tfopt's own output; users can still override this.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

from tfopt.errors import TfoptError, VerificationError  # noqa: E402

__all__ = ["Report", "TfoptError", "VerificationError", "__version__", "optimize"]


def __getattr__(name: str):
    # Lazy, so that ``import tfopt`` (and the CLI's start) does not import TensorFlow yet.
    if name in ("optimize", "Report"):
        from tfopt import api as _module

        return getattr(_module, name)
    raise AttributeError(f"module 'tfopt' has no attribute {name!r}")
