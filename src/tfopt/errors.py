"""User-facing errors: one clear line, no traceback (the CLI prints ``str(err)`` and exits)."""


class TfoptError(Exception):
    """Bad input or an impossible request; the message is meant for the user as is."""

    exit_code = 2


class VerificationError(TfoptError):
    """The optimized model does not answer like the original."""

    exit_code = 3
