"""User-facing errors: one clear line, no traceback (the CLI prints ``str(err)`` and exits)."""


# Lines TensorFlow wraps an error's reason in ("Graph execution error:", where the failing
# node was defined, its stack), which say nothing about what went wrong.
_TF_FRAMING = ("Graph execution error:", "Detected at node", "Original stack trace for",
               "<stack traces unavailable>", "Node: ", "[[")


def first_line(err: BaseException, default: str | None = None) -> str:
    """The line of an exception's message that says what went wrong: the first one, past
    TensorFlow's framing and stack lines; when there is none, ``default``, or the type name."""
    lines = str(err).strip().splitlines()
    for line in lines:
        if line.strip() and not line[0].isspace() and not line.startswith(_TF_FRAMING):
            return line.strip()
    if lines and lines[0].strip():
        return lines[0].strip()
    return type(err).__name__ if default is None else default


class TfoptError(Exception):
    """Bad input or an impossible request; the message is meant for the user as is."""

    exit_code = 2


class VerificationError(TfoptError):
    """The optimized model does not answer like the original."""

    exit_code = 3
