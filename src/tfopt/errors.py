"""User-facing errors: one clear line, no traceback (the CLI prints ``str(err)`` and exits)."""


def first_line(err: BaseException, default: str | None = None) -> str:
    """The first line of an exception's message (TensorFlow's run to dozens); when there is
    none, ``default``, or the exception's type name."""
    text = str(err).strip()
    if text:
        return text.splitlines()[0]
    return type(err).__name__ if default is None else default


class TfoptError(Exception):
    """Bad input or an impossible request; the message is meant for the user as is."""

    exit_code = 2


class VerificationError(TfoptError):
    """The optimized model does not answer like the original."""

    exit_code = 3
