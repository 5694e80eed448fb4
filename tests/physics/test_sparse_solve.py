"""Sparse shift-invert: every available factorization backend against dense eigh on a tiled hBN sheet
(real at Gamma, complex at a generic k, spinful), PARDISO's analysis reused across k, and the SuperLU fallback."""

from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp

from deeph_jax.io import read_deeph_dir
from deeph_jax.io.tiling import tile_deeph
from deeph_jax.physics import sparse_solve
from deeph_jax.physics.bands import bands_at, nearest_bands, solve_shift_invert

SMALL = Path(__file__).resolve().parents[2] / "datasets" / "hbn-szv" / "train-2x2" / "00000"
N_BANDS = 20
GENERIC_K = np.array([0.137, 0.291, 0.0])
BACKENDS = sparse_solve.available_backends()


@pytest.fixture(scope="module")
def sheet():
    """The shipped 8-atom cell tiled 3 x 3: 72 atoms, 288 orbitals (dense-ish with the 10 A cutoff, but
    the degenerate band-edge multiplets at Gamma that make Lanczos work are there)."""
    return tile_deeph(read_deeph_dir(SMALL), (3, 3, 1))


def pencil(data, k):
    """Sparse Hermitian H(k), S(k), real when k is Gamma (as bands_at builds them)."""
    h = data.hamiltonian.bloch_sparse(k, data.atom_offsets)
    s = data.overlap.bloch_sparse(k, data.atom_offsets)
    if not np.any(k):
        h, s = h.real, s.real
    return (0.5 * (h + h.conj().T)).tocsr(), (0.5 * (s + s.conj().T)).tocsr()


def spinful_pencil(h, s, seed=0):
    """H (x) 1_2 plus a small random Hermitian spin-mixing term on H's pattern (SOC-like); S (x) 1_2."""
    rng = np.random.default_rng(seed)
    pattern = sp.kron(np.ones((2, 2)), abs(h) > 0, format="csr")
    mix = pattern.multiply(rng.standard_normal(pattern.shape) + 1j * rng.standard_normal(pattern.shape))
    mix = 0.01 * (mix + mix.conj().T)
    return (sp.kron(np.eye(2), h) + mix).tocsr(), sp.kron(np.eye(2), s, format="csr")


def dense_nearest(h, s, sigma):
    e = scipy.linalg.eigh(h.toarray(), s.toarray(), eigvals_only=True)
    return nearest_bands(e[None, :], sigma, N_BANDS)[0]


@pytest.mark.skipif("pardiso" not in BACKENDS, reason="needs MKL (pip install mkl)")
def test_pardiso_inertia_counts_eigenvalues_below_sigma(sheet):
    h, s = pencil(sheet, np.zeros(3))
    sigma = sheet.fermi_energy_eV
    factor = sparse_solve.make_factorization("pardiso", False).factorize(h - sigma * s)
    below = int((scipy.linalg.eigh(h.toarray(), s.toarray(), eigvals_only=True) < sigma).sum())
    assert factor.n_negative == below


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["gamma", "generic", "spinful"])
def test_backend_matches_dense(sheet, backend, kind):
    sigma = sheet.fermi_energy_eV
    h, s = pencil(sheet, GENERIC_K if kind != "gamma" else np.zeros(3))
    if kind == "spinful":
        h, s = spinful_pencil(h, s)
    assert np.iscomplexobj(h.data) == (kind != "gamma")
    e = solve_shift_invert(h, s, sigma, N_BANDS, solver=backend)
    assert np.abs(e - dense_nearest(h, s, sigma)).max() < 1e-8


@pytest.mark.skipif("pardiso" not in BACKENDS, reason="needs MKL (pip install mkl)")
def test_pardiso_analysis_reused_across_k(sheet, monkeypatch):
    """The ordering / symbolic analysis (phase 11) runs once for all k of one arithmetic; results stay exact."""
    phases = []
    original = sparse_solve.PardisoLDL._call
    monkeypatch.setattr(sparse_solve.PardisoLDL, "_call", lambda self, phase, *a: (phases.append(phase), original(self, phase, *a))[1])
    ks = GENERIC_K + np.array([[0.0, 0.0, 0.0], [0.01, 0.0, 0.0], [0.02, 0.01, 0.0]])
    sigma = sheet.fermi_energy_eV
    e = bands_at(sheet, ks, N_BANDS, sigma, solver="pardiso")
    assert phases.count(11) == 1 and phases.count(22) == len(ks)
    for k, ek in zip(ks, e):
        assert np.abs(ek - dense_nearest(*pencil(sheet, k), sigma)).max() < 1e-8


def test_superlu_fallback_without_mkl(sheet, monkeypatch):
    """Without MKL "auto" falls back to SuperLU, and says so."""
    monkeypatch.setattr(sparse_solve, "_mkl", lambda: None)
    assert sparse_solve.available_backends() == ("superlu",)
    factor = sparse_solve.make_factorization("auto", False)
    assert factor.name == "superlu"
    h, s = pencil(sheet, np.zeros(3))
    e = solve_shift_invert(h, s, sheet.fermi_energy_eV, N_BANDS, factor=factor)
    assert np.abs(e - dense_nearest(h, s, sheet.fermi_energy_eV)).max() < 1e-8
    with pytest.raises(ImportError, match="mkl"):
        sparse_solve.make_factorization("pardiso", False)
