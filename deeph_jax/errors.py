"""The project's one exception type.

Every error a user can cause with bad input (a missing file, a malformed h5, an unknown
element) is raised as :class:`DeephError` with a one-line message that names the file and
the problem. The command line prints that line to stderr and exits with status 2, instead
of a traceback from h5py or numpy.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable


class DeephError(Exception):
    """A user-facing error: one line naming the file (when there is one) and the problem."""

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = None if path is None else Path(path)
        text = message if path is None else f"{path}: {message}"
        super().__init__(text.replace("\n", " "))


def report_user_errors(program: str, run: Callable[[], int | None]) -> int:
    """Call ``run`` and return its exit status; a :class:`DeephError` becomes one line
    ``PROGRAM: error: MESSAGE`` on stderr and exit status 2."""
    try:
        return int(run() or 0)
    except DeephError as exc:
        print(f"{program}: error: {exc}", file=sys.stderr)
        return 2
