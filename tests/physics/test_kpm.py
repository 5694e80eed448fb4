"""KPM DOS and Fermi level against exact results: a tiled shipped DFT cell, whose eigenvalues at Gamma
are the small cell's on the folded k-mesh."""

from pathlib import Path

import numpy as np
import pytest

from deeph_jax.io import read_deeph_dir
from deeph_jax.io.tiling import tile_deeph
from deeph_jax.physics.bands import bands_at
from deeph_jax.physics.fermi import fermi_level
from deeph_jax.physics.kpm import (exact_moments, jackson_kernel, kpm_dos, kpm_fermi_level, kpm_integrated_dos,
                                   kpm_moments, resolution_eV, s_solver, spectral_bounds)

SMALL = Path(__file__).resolve().parents[2] / "datasets" / "hbn-szv" / "train-2x2" / "00000"
N_TILE = 3


@pytest.fixture(scope="module")
def system():
    small = read_deeph_dir(SMALL)
    big = tile_deeph(small, (N_TILE, N_TILE, 1))
    ks = np.array([(a / N_TILE, b / N_TILE, 0.0) for a in range(N_TILE) for b in range(N_TILE)])
    exact = np.sort(bands_at(small, ks).reshape(-1))
    h = big.hamiltonian.bloch_sparse(np.zeros(3), big.atom_offsets).real
    s = big.overlap.bloch_sparse(np.zeros(3), big.atom_offsets).real
    moments = kpm_moments(h, s, n_moments=800, n_vectors=12, seed=1)  # resolution ~0.1 eV
    return big, exact, h, s, moments


def test_tiling_is_exact(system):
    big, exact, h, s, _ = system
    import scipy.linalg

    e = scipy.linalg.eigh(h.toarray(), s.toarray(), eigvals_only=True)
    assert np.abs(e - exact).max() < 1e-8


def test_bounds_enclose_the_spectrum_and_cg_solves(system):
    _, exact, h, s, moments = system
    lo, hi = spectral_bounds(h, s)
    assert lo < exact.min() < exact.max() < hi and hi - lo < 1.3 * (exact.max() - exact.min())
    rhs = np.random.default_rng(0).normal(size=(s.shape[0], 3))
    x = s_solver(s, dense_max_dim=10)(rhs)  # the block-CG path of large cells
    assert np.abs(s @ x - rhs).max() < 1e-9


def test_dos_within_error_bars_of_exact(system):
    big, exact, _, _, moments = system
    mu = exact_moments(exact, moments.center, moments.half_width, moments.n_moments)
    assert np.abs(moments.mean - mu).max() < 5 * moments.per_vector.std(axis=0).max() / np.sqrt(12)
    grid = np.linspace(exact.min() - 1, exact.max() + 1, 600)
    dos, err = kpm_dos(moments, grid)
    # The exact-moment DOS with the same kernel is what the stochastic estimate converges to.
    g = jackson_kernel(moments.n_moments) * mu
    x = (grid - moments.center) / moments.half_width
    t = np.cos(np.outer(np.arange(moments.n_moments), np.arccos(x)))
    ref = 2.0 * (g[0] + 2 * g[1:] @ t[1:]) / (np.pi * np.sqrt(1 - x**2) * moments.half_width)
    within = np.abs(dos - ref) <= 4 * err + 1e-6 * ref.max()
    assert within.mean() > 0.97
    top = moments.center + 0.999 * moments.half_width
    total = kpm_integrated_dos(moments, np.array([top]))[0]
    assert abs(total - 2 * big.structure.n_atoms * 4) < 1e-3 * total  # 4 orbitals per B or N atom


def test_fermi_level_of_an_insulator_within_the_resolution(system):
    # A stochastic count cannot place E_F closer than the kernel's resolution to the dense mid-gap
    # (the gap's ends blur by it); the 10 meV of issue 18 needs the band edges refined (not done yet).
    big, exact, _, _, moments = system
    n_el = big.info["occupation"]
    ef, (vbm, cbm) = fermi_level(exact[None, :], n_el)
    kpm = kpm_fermi_level(moments, n_el)
    assert kpm.gap_eV is not None
    assert abs(kpm.fermi_eV - ef) < resolution_eV(moments), (kpm.fermi_eV, ef)
    assert vbm <= kpm.gap_eV[0] < kpm.gap_eV[1] <= cbm


def test_sparse_s_solver_accurate(monkeypatch):
    """The large-S route (a single-precision sparse factor and one refinement step, or CG without MKL) solves
    S x = b to 1e-9 relative, real and complex, vector and block."""
    import scipy.sparse.linalg as spla

    from deeph_jax.io import read_deeph_dir
    from deeph_jax.io.tiling import tile_deeph
    from deeph_jax.physics.bands import bloch_pencil
    from deeph_jax.physics.kpm import s_solver

    small = read_deeph_dir(Path(__file__).resolve().parents[2] / "datasets" / "hbn-szv" / "train-2x2" / "00000")
    big = tile_deeph(small, (3, 3, 1))
    rng = np.random.default_rng(0)
    for k in (np.zeros(3), np.array([0.1, 0.3, 0.0])):
        _, s = bloch_pencil(big, k)
        solve = s_solver(s, dense_max_dim=0)
        b = rng.standard_normal((s.shape[0], 3))
        exact = spla.spsolve(s.tocsc(), b)
        x = solve(b)
        assert np.abs(x - exact).max() < 1e-9 * np.abs(exact).max()
        assert np.abs(solve(b[:, 0]) - exact[:, 0]).max() < 1e-9 * np.abs(exact).max()


def test_overlap_inverse_sqrt_against_eigh():
    """S^-1/2 r by the Chebyshev expansion equals V diag(lambda^-1/2) V^H r from a dense eigendecomposition,
    real (Gamma) and complex (generic k)."""
    import scipy.linalg

    from deeph_jax.physics.bands import bloch_pencil
    from deeph_jax.physics.kpm import overlap_inverse_sqrt

    big = tile_deeph(read_deeph_dir(SMALL), (2, 2, 1))
    r = np.random.default_rng(3).choice([-1.0, 1.0], size=(big.atom_offsets[-1], 2))
    for k in (np.zeros(3), np.array([0.13, 0.31, 0.0])):
        _, s = bloch_pencil(big, k)
        lam, vec = scipy.linalg.eigh(s.toarray())
        exact = vec @ ((lam ** -0.5)[:, None] * (vec.conj().T @ r))
        z = overlap_inverse_sqrt(s, r.astype(s.dtype))
        assert np.abs(z - exact).max() < 1e-8 * np.abs(exact).max()


def test_moment_doubling_equals_the_direct_recursion():
    """The moments from two per product (T_2n = 2 T_n^2 - 1, T_2n+1 = 2 T_n+1 T_n - T_1 in the S inner product)
    equal z^H S T_n(A') z from the plain three-term recursion with a dense S^-1 H, at a complex k, for odd
    and even numbers of moments."""
    from deeph_jax.physics.bands import bloch_pencil
    from deeph_jax.physics.kpm import overlap_inverse_sqrt

    big = tile_deeph(read_deeph_dir(SMALL), (2, 2, 1))
    h, s = bloch_pencil(big, np.array([0.21, 0.07, 0.0]))
    lo, hi = -40.0, 60.0
    b, a = 0.5 * (hi + lo), 0.5 * (hi - lo)
    ap = (np.linalg.solve(s.toarray(), h.toarray()) - b * np.eye(h.shape[0])) / a
    for n_moments in (9, 10):
        m = kpm_moments(h, s, n_moments=n_moments, n_vectors=3, seed=4, bounds=(lo, hi))
        r = np.random.default_rng(4).choice([-1.0, 1.0], size=(h.shape[0], 3))
        z = overlap_inverse_sqrt(s, r)
        sz = s @ z
        t_prev, t = z, ap @ z
        direct = [np.einsum("ij,ij->j", sz.conj(), t_prev).real, np.einsum("ij,ij->j", sz.conj(), t).real]
        for _ in range(2, n_moments):
            t_prev, t = t, 2 * ap @ t - t_prev
            direct.append(np.einsum("ij,ij->j", sz.conj(), t).real)
        assert m.per_vector.shape == (3, n_moments)
        assert np.abs(m.per_vector - np.array(direct).T).max() < 1e-8 * h.shape[0]


def test_bounds_that_miss_the_spectrum_are_refused(system):
    """Bounds inside the spectrum make the Chebyshev series grow: one clear error, not a wrong DOS."""
    from deeph_jax.errors import DeephError

    _, exact, h, s, _ = system
    with pytest.raises(DeephError, match="do not enclose the spectrum"):
        kpm_moments(h, s, n_moments=200, n_vectors=2, bounds=(exact.min() + 2.0, exact.max()))
