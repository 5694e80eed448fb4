"""The project's one exception type.

Every error a user can cause with bad input (a missing file, a malformed h5, an unknown
element) is raised as :class:`DeephError` with a one-line message that names the file and
the problem. The command line prints that line to stderr and exits with status 2, instead
of a traceback from h5py or numpy.
"""

from __future__ import annotations

from pathlib import Path


class DeephError(Exception):
    """A user-facing error: one line naming the file (when there is one) and the problem."""

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = None if path is None else Path(path)
        text = message if path is None else f"{path}: {message}"
        super().__init__(text.replace("\n", " "))
