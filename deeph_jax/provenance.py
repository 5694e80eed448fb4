"""Where a published number came from: the command, date, commit and machine, written beside it.

Every number in the README is printed by a script in ``bench/`` or ``datasets/``; those scripts
save their raw results with :func:`write_result` (small JSON under ``bench/results/``), so a
reader can tell what was run, when, on what code and how loaded the machine was.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

from deeph_jax.io.atomic import write_text_atomic


def _git_commit(repo: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode:
        return None
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=10).stdout.strip()
    return out.stdout.strip() + ("+dirty" if dirty else "")


def provenance(argv: list[str] | None = None) -> dict:
    """The command line, UTC date, git commit, CPU count and load average of this run."""
    argv = sys.argv if argv is None else argv
    script = Path(argv[0])
    command = "python " + shlex.join([str(script)] + list(argv[1:])) if script.suffix == ".py" else shlex.join(argv)
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _git_commit(Path(__file__).resolve().parents[1]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "load_average_1_5_15min": load,
    }


def write_result(path: str | Path, results, argv: list[str] | None = None) -> Path:
    """Write ``{"provenance": ..., "results": results}`` as JSON, atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps({"provenance": provenance(argv), "results": results}, indent=2,
                                       default=_to_builtin) + "\n")
    return path


def _to_builtin(x):
    """numpy scalars and arrays in results become plain JSON numbers and lists."""
    if hasattr(x, "tolist"):
        return x.tolist()
    raise TypeError(f"{type(x).__name__} is not JSON serializable")
