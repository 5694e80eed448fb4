"""KPM DOS and Fermi level against exact results: a tiled shipped DFT cell, whose eigenvalues at Gamma
are the small cell's on the folded k-mesh."""

from pathlib import Path

import numpy as np
import pytest

from deeph_jax.io import read_deeph_dir
from deeph_jax.io.tiling import tile_deeph
from deeph_jax.physics.bands import bands_at
from deeph_jax.physics.fermi import fermi_level
from deeph_jax.physics.kpm import (OVERLAP_DROP, exact_moments, jackson_kernel, kpm_dos, kpm_fermi_level,
                                   kpm_integrated_dos, kpm_moments, overlap_inverse, resolution_eV, spectral_bounds)
from deeph_jax.physics.sparse_solve import available_backends

needs_mkl = pytest.mark.skipif("pardiso" not in available_backends(), reason="needs MKL (pip install mkl)")

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


def test_bounds_enclose_the_spectrum_and_cg_solves(system, monkeypatch):
    _, exact, h, s, moments = system
    lo, hi = spectral_bounds(h, s)
    assert lo < exact.min() < exact.max() < hi and hi - lo < 1.3 * (exact.max() - exact.min())
    monkeypatch.setattr("deeph_jax.physics.sparse_solve.available_backends", lambda: ("superlu",))
    overlap = overlap_inverse(s, dense_max_dim=10)  # large cells without MKL: block CG
    assert overlap.route == "cg"
    rhs = np.random.default_rng(0).normal(size=(s.shape[0], 3))
    assert np.abs(s @ overlap.solve(rhs) - rhs).max() < 1e-9


def _sampled_inverse(overlap, n: int) -> np.ndarray:
    """Z Z^H from the sample of every unit vector: E[z z^H] over random +-1 vectors."""
    z = overlap.sample(np.eye(n))
    return z @ z.conj().T


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
    # 72 atoms: the DOS near the gap is a few Jackson-broadened peaks, so the band edges are placed within
    # about the resolution (bench_kpm.py measures 9,800 and 100,352 atoms against the 10 meV of issue 18)
    big, exact, _, _, moments = system
    n_el = big.info["occupation"]
    ef, (vbm, cbm) = fermi_level(exact[None, :], n_el)
    kpm = kpm_fermi_level(moments, n_el)
    assert kpm.gap_eV is not None
    assert abs(kpm.fermi_eV - ef) < resolution_eV(moments), (kpm.fermi_eV, ef)
    assert vbm <= kpm.gap_eV[0] < kpm.gap_eV[1] <= cbm


@needs_mkl
def test_sparse_overlap_inverse_is_the_inverse_of_the_kept_overlap():
    """The large-S route factorizes S without its entries below OVERLAP_DROP in single precision: its solves
    and start vectors are that matrix's inverse to single-precision accuracy, real (Gamma) and complex k."""
    import scipy.linalg

    from deeph_jax.physics.bands import bloch_pencil

    big = tile_deeph(read_deeph_dir(SMALL), (3, 3, 1))
    rng = np.random.default_rng(0)
    for k in (np.zeros(3), np.array([0.1, 0.3, 0.0])):
        _, s = bloch_pencil(big, k)
        overlap = overlap_inverse(s, dense_max_dim=0)
        kept = overlap.matrix.toarray()
        assert overlap.route == "sparse-single" and overlap.matrix.nnz < 0.8 * s.nnz
        assert np.abs(kept - s.toarray()).max() < OVERLAP_DROP
        inverse = scipy.linalg.inv(kept)
        b = rng.standard_normal((s.shape[0], 3))
        assert np.abs(overlap.solve(b) - inverse @ b).max() < 1e-5 * np.abs(inverse @ b).max()
        assert np.abs(_sampled_inverse(overlap, s.shape[0]) - inverse).max() < 1e-5 * np.abs(inverse).max()


@needs_mkl
def test_sparse_route_moments_within_error_bars_of_exact(system):
    """KPM through the single-precision factor of the trimmed S: its moments converge to the exact ones."""
    _, exact, h, s, _ = system
    m = kpm_moments(h, s, n_moments=300, n_vectors=12, seed=2, overlap=overlap_inverse(s, dense_max_dim=0))
    mu = exact_moments(exact, m.center, m.half_width, m.n_moments)
    assert np.abs(m.mean - mu).max() < 5 * m.per_vector.std(axis=0).max() / np.sqrt(12)
    assert set(m.timings) == {"overlap", "bounds", "moments"}


def test_dense_start_vectors_sample_the_inverse():
    """The dense route's start vectors U^-1 r (S = U^H U) have E[z z^H] = S^-1, real and complex k."""
    import scipy.linalg

    from deeph_jax.physics.bands import bloch_pencil

    big = tile_deeph(read_deeph_dir(SMALL), (2, 2, 1))
    for k in (np.zeros(3), np.array([0.13, 0.31, 0.0])):
        _, s = bloch_pencil(big, k)
        overlap = overlap_inverse(s)
        assert overlap.route == "dense"
        inverse = scipy.linalg.inv(s.toarray())
        assert np.abs(_sampled_inverse(overlap, s.shape[0]) - inverse).max() < 1e-10 * np.abs(inverse).max()


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

    big = tile_deeph(read_deeph_dir(SMALL), (2, 2, 1))
    h, s = bloch_pencil(big, np.array([0.21, 0.07, 0.0]))
    lo, hi = -40.0, 60.0
    b, a = 0.5 * (hi + lo), 0.5 * (hi - lo)
    ap = (np.linalg.solve(s.toarray(), h.toarray()) - b * np.eye(h.shape[0])) / a
    for n_moments in (9, 10):
        m = kpm_moments(h, s, n_moments=n_moments, n_vectors=3, seed=4, bounds=(lo, hi))
        r = np.random.default_rng(4).choice([-1.0, 1.0], size=(h.shape[0], 3))
        z = overlap_inverse(s).sample(r)  # the start vectors kpm_moments draws
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


def test_half_height_edges_find_steps_of_any_height():
    """A gap between two flat bands whose DOS steps differ 3x in height (exact moments, no noise): the band
    edges are read within one kernel width of the steps (a fixed DOS threshold lands 2-2.4 widths inside the
    gap), and E_F within 0.15 widths of the true middle."""
    from deeph_jax.physics.kpm import KPMMoments, kernel_width_eV

    valence, conduction = np.linspace(-10.0, -2.0, 4000), np.linspace(2.5, 10.0, 12000)
    energies = np.concatenate([valence, conduction])
    mu = exact_moments(energies, 0.0, 12.0, 400)
    moments = KPMMoments(np.stack([mu, mu]), 0.0, 12.0, len(energies))
    fermi = kpm_fermi_level(moments, 2 * len(valence))
    width = kernel_width_eV(moments, 0.0)
    assert abs(fermi.gap_eV[0] + 2.0) < width and abs(fermi.gap_eV[1] - 2.5) < width
    assert abs(fermi.fermi_eV - 0.25) < 0.15 * width
