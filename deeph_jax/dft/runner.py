"""Running a dataset: resumable, one atomic folder per structure, a process pool, a progress bar.

A job is one structure index. Each job draws its geometry from a RNG seeded by
``(seed, index)`` (so a resumed run regenerates the same geometry for the same index), runs
the DFT, and writes ``OUT/<sid>/`` inside :func:`deeph_jax.io.atomic.atomic_directory`: the
folder exists only when complete. Folders already present are skipped. A job whose SCF does
not converge (after the generator's own retry) is reported and left out, never written.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Callable

from deeph_jax.dft.pyscf_common import done_ids, limit_threads, structure_id, version_info
from deeph_jax.errors import DeephError
from deeph_jax.io.atomic import write_text_atomic


class SCFNotConverged(RuntimeError):
    """The SCF did not converge, even after the retry with damping."""


METADATA = "metadata.json"
# Keys of metadata.json that may differ between a run and its resumption.
VOLATILE_KEYS = {"n", "workers", "created", "generator_version", "command", "timing"}


def _same_setting(a, b) -> bool:
    """Equal settings; floats to 1e-9 relative (a derived length such as the BvK vector can differ in its last
    digit between numpy/BLAS builds, and that must not block a resume on a new machine)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_setting(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_setting(x, y) for x, y in zip(a, b))
    return a == b


def write_metadata(out: Path, meta: dict) -> None:
    """Write ``OUT/metadata.json`` atomically; refuse to resume a dataset made with other settings."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / METADATA
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError:
            old = None
        if isinstance(old, dict):
            diff = sorted(
                k for k in set(old) | set(meta)
                if k not in VOLATILE_KEYS and not _same_setting(old.get(k), json.loads(json.dumps(meta.get(k))))
            )
            if diff:
                raise DeephError(
                    f"dataset was generated with other settings ({', '.join(diff)} differ); "
                    f"use another --out or the same options to resume",
                    path,
                )
            meta = {**old, **{k: meta[k] for k in VOLATILE_KEYS if k in meta}}
            meta["n"] = max(int(old.get("n", 0)), int(meta.get("n", 0)))
    write_text_atomic(path, json.dumps(meta, indent=2, sort_keys=False) + "\n")


def _remove_stale_temporaries(out: Path) -> None:
    """Remove hidden ``.<sid>.*.tmp`` folders a killed run left behind (one generator per dataset at a time)."""
    import re
    import shutil

    if not out.is_dir():
        return
    pattern = re.compile(r"^\.\d+\..*\.tmp$|^\.\d+\.old$")
    for p in out.iterdir():
        if p.is_dir() and pattern.match(p.name):
            shutil.rmtree(p, ignore_errors=True)


def _init_worker(threads: int) -> None:
    limit_threads(threads)


def run_jobs(
    out: Path,
    indices: list[int],
    job: Callable[[int], float],
    workers: int = 1,
    threads_per_worker: int | None = None,
    desc: str = "structures",
    progress: bool = True,
) -> dict:
    """Run ``job(index) -> seconds`` for every index whose folder is absent; return a summary.

    ``job`` must be a picklable top-level callable (e.g. a ``functools.partial``) when
    ``workers > 1``. It raises :class:`SCFNotConverged` to have its structure left out.
    """
    from tqdm import tqdm

    _remove_stale_temporaries(out)
    done = done_ids(out)
    todo = [i for i in indices if structure_id(i) not in done]
    summary = {"requested": len(indices), "skipped_existing": len(indices) - len(todo), "written": 0,
               "not_converged": [], "seconds": []}
    bar = tqdm(total=len(indices), initial=len(indices) - len(todo), desc=desc, unit="structure",
               disable=not progress, dynamic_ncols=True, file=sys.stderr)

    def record(index: int, fut_result=None, error: BaseException | None = None) -> None:
        if error is None:
            summary["written"] += 1
            summary["seconds"].append(float(fut_result))
        elif isinstance(error, SCFNotConverged):
            summary["not_converged"].append(index)
            tqdm.write(f"structure {structure_id(index)}: {error}; left out", file=sys.stderr)
        else:
            raise error
        bar.update(1)

    t0 = time.time()
    try:
        if workers <= 1 or len(todo) <= 1:
            limit_threads(threads_per_worker)
            for i in todo:
                try:
                    record(i, job(i))
                except SCFNotConverged as exc:
                    record(i, error=exc)
        else:
            with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker,
                                     initargs=(threads_per_worker or 1,)) as pool:
                futures = {pool.submit(job, i): i for i in todo}
                try:
                    for fut in as_completed(futures):
                        exc = fut.exception()
                        record(futures[fut], None if exc else fut.result(), exc)
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)  # a user error: stop, don't run the rest
                    raise
    finally:
        bar.close()
    summary["wall_seconds"] = time.time() - t0
    return summary


def run_dataset(out: Path, kind: str, settings_meta: dict, job: Callable[[int], float], n: int, seed: int,
                workers: int = 1, threads_per_worker: int | None = None, progress: bool = True,
                command: str | None = None) -> dict:
    """Write ``metadata.json`` (the header every dataset shares plus the generator's own
    ``settings_meta``) and run ``job`` for structures 0..n-1; see :func:`run_jobs`."""
    meta = {
        **version_info(),
        "kind": kind,
        "units": {"energy": "eV", "length": "Angstrom", "constants": "CODATA 2018"},
        **settings_meta,
        "orbital_order": "real spherical m=-l..l (p as y,z,x)",
        "seed": seed,
        "n": n,
        "workers": workers,
        "command": command,
    }
    write_metadata(out, meta)
    return run_jobs(out, list(range(n)), job, workers=workers, threads_per_worker=threads_per_worker,
                    desc=out.name, progress=progress)
