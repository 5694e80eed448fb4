"""The distributed spectral path: two JAX processes, each holding half the rows of H(k) and S(k), give the
eigenvalues and KPM moments of one process, and the eigenvalues equal dense diagonalization."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg

from deeph_jax.io import read_deeph_dir
from deeph_jax.io.tiling import tile_deeph

HERE = Path(__file__).resolve().parent
WORKER = HERE / "distributed_worker.py"
SMALL = HERE.parents[1] / "datasets" / "hbn-szv" / "train-2x2" / "00000"
K_GENERIC = np.array([0.13, 0.29, 0.0])


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parents[1]), env.get("PYTHONPATH", "")])
    env.update(JAX_PLATFORMS="cpu", OMP_NUM_THREADS="1")
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def reference():
    """Dense eigenvalues of the 32-atom tile at the generic k, the mid-gap energy, and KPM bounds from Gamma."""
    data = tile_deeph(read_deeph_dir(SMALL), (2, 2, 1))
    dense = scipy.linalg.eigh(data.hamiltonian_k(K_GENERIC), data.overlap_k(K_GENERIC), eigvals_only=True)
    n_occ = int(round(data.occupation)) // 2
    gamma = scipy.linalg.eigh(data.hamiltonian_k(np.zeros(3)), data.overlap_k(np.zeros(3)), eigvals_only=True)
    mid = float(0.5 * (max(dense[n_occ - 1], gamma[n_occ - 1]) + min(dense[n_occ], gamma[n_occ])))
    pad = 0.05 * (gamma[-1] - gamma[0])
    return dense, mid, (float(gamma[0] - pad), float(gamma[-1] + pad))


@pytest.fixture(scope="module")
def runs(reference, tmp_path_factory):
    _, sigma, (e_min, e_max) = reference
    args = [repr(sigma), repr(e_min), repr(e_max)]
    tmp = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, str(WORKER), *args, str(tmp / "one")], env=_env(), check=True, timeout=600)
    port = _free_port()
    procs = []
    for pid in range(2):
        env = _env()
        env.update(DEEPH_COORDINATOR=f"127.0.0.1:{port}", DEEPH_NUM_PROCESSES="2", DEEPH_PROCESS_ID=str(pid))
        procs.append(subprocess.Popen([sys.executable, str(WORKER), *args, str(tmp / "two")], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    for p in procs:
        out, _ = p.communicate(timeout=600)
        assert p.returncode == 0, out[-3000:]
    return {name: [np.load(f) for f in sorted(tmp.glob(f"{name}.*.npz"))] for name in ("one", "two")}


def test_two_processes_agree_with_one(runs):
    one, two = runs["one"], runs["two"]
    assert len(one) == 1 and len(two) == 2 and int(two[0]["processes"]) == 2
    for r in two:  # every process returns the whole answer, the same one
        np.testing.assert_allclose(r["energies"], one[0]["energies"], atol=1e-9)
        np.testing.assert_allclose(r["moments"], one[0]["moments"], rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(two[0]["energies"], two[1]["energies"])


def test_distributed_eigenvalues_equal_dense(runs, reference):
    dense, sigma, _ = reference
    got = runs["two"][0]["energies"][0]
    nearest = np.sort(dense[np.argsort(np.abs(dense - sigma), kind="stable")[: len(got)]])
    assert np.abs(got - nearest).max() < 1e-8


def test_row_blocks_multiply_like_the_whole_matrix():
    """One process: the row-block operator, its diagonal and combinations equal scipy's."""
    import scipy.sparse as sp

    from deeph_jax.physics.distributed import RowBlockMatrix, row_range

    assert [row_range(10, p, 3) for p in range(3)] == [(0, 3), (3, 7), (7, 10)]
    rng = np.random.default_rng(0)
    a = sp.random(40, 40, density=0.2, random_state=1, format="csr") + sp.eye(40)
    b = sp.random(40, 40, density=0.1, random_state=2, format="csr")
    ra, rb = RowBlockMatrix.from_whole(a), RowBlockMatrix.from_whole(b)
    x = rng.standard_normal((40, 3))
    np.testing.assert_allclose(ra @ x, a @ x, atol=1e-14)
    np.testing.assert_allclose(ra.diagonal(), a.diagonal())
    np.testing.assert_allclose(ra.combine(rb, 2.0, -0.5) @ x, (2 * a - 0.5 * b) @ x, atol=1e-13)


def test_distributed_flag_without_processes_is_one_line(capsys, monkeypatch, tmp_path):
    from deeph_jax.cli import main

    monkeypatch.delenv("DEEPH_COORDINATOR", raising=False)
    assert main(["bands", str(SMALL), "--nbands", "4", "--distributed", "--out", str(tmp_path / "b.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "DEEPH_COORDINATOR" in err[0]
    assert not (tmp_path / "b.npz").exists()
