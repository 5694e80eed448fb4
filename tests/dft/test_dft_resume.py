"""Killing the generator mid-run and restarting it completes the set: no duplicate, no half-written structure."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("pyscf")

from deeph_jax.errors import DeephError  # noqa: E402
from deeph_jax.io import find_structure_dirs, read_deeph_dir  # noqa: E402

# Slow enough per structure (fine grid, tight tolerance) that the kill lands mid-run.
ARGS = ["generate", "molecules", "--name", "water", "--n", "4", "--seed", "11", "--basis", "sto-3g",
        "--grid-level", "7", "--conv-tol", "1e-12", "--no-progress", "--threads", "1"]


def _cli(out, *extra):
    return [sys.executable, "-m", "deeph_jax.dft.commands", *ARGS, "--out", str(out), *extra]


def _complete(out):
    return sorted(p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")) if out.is_dir() else []


def test_kill_and_resume(tmp_path):
    out = tmp_path / "water"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_cli(out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.time()
    try:
        while not _complete(out):
            if proc.poll() is not None:
                pytest.fail(f"generator exited early: {proc.stderr.read().decode()[-500:]}")
            if time.time() - t0 > 120:
                pytest.fail("no structure after 120 s")
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = _complete(out)
    assert 1 <= len(before) < 4, f"the kill came too late to test anything: {before}"
    saved = {}
    for sid in before:
        d = read_deeph_dir(out / sid)
        saved[sid] = (d.structure.positions.copy(), d.hamiltonian.entries.copy(), d.overlap.entries.copy())

    rerun = subprocess.run(_cli(out), env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-1000:]
    assert f"{4 - len(before)} written, {len(before)} already present" in rerun.stderr

    dirs = find_structure_dirs(out)
    assert [p.name for p in dirs] == ["00000", "00001", "00002", "00003"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "hidden temporaries left behind"
    for p in dirs:
        d = read_deeph_dir(p)  # complete and readable
        assert d.hamiltonian.n_blocks == 9 and d.overlap.n_blocks == 9
    for sid, (pos, h, s) in saved.items():  # untouched by the rerun
        d = read_deeph_dir(out / sid)
        np.testing.assert_array_equal(d.structure.positions, pos)
        np.testing.assert_array_equal(d.hamiltonian.entries, h)
        np.testing.assert_array_equal(d.overlap.entries, s)

    # A fresh run with the same seed regenerates the same geometries (RNG per (seed, index)).
    fresh = tmp_path / "fresh"
    subprocess.run(_cli(fresh, "--n", "2"), env=env, capture_output=True, timeout=300, check=True)
    for sid in ("00000", "00001"):
        np.testing.assert_array_equal(read_deeph_dir(fresh / sid).structure.positions,
                                      read_deeph_dir(out / sid).structure.positions)


def test_cli_error_is_one_line(tmp_path):
    bad = tmp_path / "bad.xyz"
    bad.write_text("2\n\nO 0 0 0\nO 0 0 0.01\n")
    res = subprocess.run([sys.executable, "-m", "deeph_jax.dft.commands", "generate", "molecules", "--file", str(bad),
                          "--out", str(tmp_path / "o"), "--no-progress"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "bad.xyz" in lines[0] and "overlapping atoms" in lines[0], res.stderr


def test_cli_help_names_units():
    for kind, words in (("molecules", ["Angstrom", "Hartree", "eV"]), ("crystal", ["Angstrom", "eV"])):
        res = subprocess.run([sys.executable, "-m", "deeph_jax.dft.commands", "generate", kind, "--help"],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0
        text = " ".join(res.stdout.split())
        for w in words:
            assert w in text, (kind, w)


def test_resume_tolerates_last_digit_of_derived_floats(tmp_path):
    """A derived length written by another numpy/BLAS build (22.535999999999998 vs 22.536) still resumes;
    a real change of a setting does not."""
    from deeph_jax.dft.runner import write_metadata

    meta = {"kind": "crystal", "bvk_shortest_vector_A": 22.535999999999998, "rattle_sigma_A": [0.0, 0.15],
            "multigrid": True, "n": 3}
    write_metadata(tmp_path, meta)
    write_metadata(tmp_path, {**meta, "bvk_shortest_vector_A": 22.536000000000001, "n": 5})
    assert json.loads((tmp_path / "metadata.json").read_text())["n"] == 5
    for changed in ({"bvk_shortest_vector_A": 22.6}, {"rattle_sigma_A": [0.0, 0.1]}, {"multigrid": 1}):
        with pytest.raises(DeephError, match=r"metadata.json: dataset was generated with other settings \("
                                             + list(changed)[0]):
            write_metadata(tmp_path, {**meta, **changed})
