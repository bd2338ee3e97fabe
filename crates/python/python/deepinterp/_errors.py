"""The exceptions deepinterp raises. Each carries the command line's one-line message:
the file (or setting) and the cause."""


class DeepInterpError(Exception):
    """Any failure of a deepinterp call."""


class InvalidInputError(DeepInterpError, ValueError):
    """A request or a file's content that deepinterp cannot use (a bad setting, a model that
    does not fit the recording, a damaged or unknown file)."""


class FileError(DeepInterpError, OSError):
    """A file that could not be found, read or written (missing, permissions, disk full)."""
