"""User-facing errors: the CLI prints them as one line and exits with code 2."""


class FdtError(Exception):
    """Bad or unsupported input; the message is shown to the user as is."""


class VerificationError(FdtError):
    """The rewritten model does not behave like the original; nothing is written."""
