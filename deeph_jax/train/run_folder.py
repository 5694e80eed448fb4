"""The run folder: one run per folder, its metric rows, and clearing it for ``--overwrite``.

A run folder ``runs/<name>/`` holds ``config.yaml`` (resolved), ``basis.json``, ``split.json``,
``metrics.csv``, ``log.txt``, ``checkpoints/{last,best}`` (orbax), ``plots/*.png``,
``breakdown.txt`` and, at the end, an inference bundle ``model/``. Two runs never share one:
a second run's checkpoints would interleave with the first's, and the best checkpoint of the
first would be exported as the second's.
"""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

from deeph_jax.errors import DeephError
from deeph_jax.io.atomic import write_text_atomic

METRIC_FIELDS = ["step", "epoch", "wall_time_s", "lr", "train_loss", "train_mae_eV",
                 "val_loss", "val_mae_meV", "val_mae_onsite_meV", "val_mae_offsite_meV", "val_mae_uHa", "val_mae_s",
                 "val_band_meV", "val_gap_meV"]

# What a run writes into its folder; --overwrite removes exactly these.
RUN_ENTRIES = ("checkpoints", "metrics.csv", "log.txt", "model", "plots", "breakdown.txt", "config.yaml",
               "basis.json", "split.json")


def _has_checkpoint_step(folder: Path) -> bool:
    return folder.is_dir() and any(p.name.isdigit() for p in folder.iterdir())


def holds_run(run_dir: str | Path) -> bool:
    """True once a run has written a metric row or a checkpoint here.

    (An empty ``checkpoints/`` is not a run: each process of a multi-host run creates it before
    its first step, so the test would race between processes.)
    """
    run_dir = Path(run_dir)
    return (run_dir / "metrics.csv").is_file() or any(
        _has_checkpoint_step(run_dir / "checkpoints" / which) for which in ("last", "best"))


def refuse_existing_run(run_dir: str | Path) -> None:
    """One line when a new run would write into a folder that holds another run."""
    if holds_run(run_dir):
        raise DeephError("run folder already holds a run; use --resume to continue it or --overwrite to start afresh",
                         run_dir)


def clear_run(run_dir: str | Path) -> None:
    """Remove what an earlier run wrote (only the entries a run writes; other files stay)."""
    run_dir = Path(run_dir)
    for name in RUN_ENTRIES:
        path = run_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def write_metrics(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=METRIC_FIELDS, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    write_text_atomic(path, buf.getvalue())


def read_metrics(path: Path, upto_step: int) -> list[dict]:
    """Rows up to ``upto_step`` (a resumed run rewrites the rows after its checkpoint)."""
    if not path.is_file():
        return []
    rows = []
    for r in csv.DictReader(path.read_text().splitlines()):
        row = {k: (float(v) if v not in ("", None) else None) for k, v in r.items()}
        row["step"] = int(row["step"])
        if row["step"] <= upto_step:
            rows.append(row)
    return rows
