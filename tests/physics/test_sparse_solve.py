"""Sparse shift-invert: every available factorization backend against dense eigh on a tiled hBN sheet
(real at Gamma, complex at a generic k, spinful), the band-edge slicing and its checks, block Lanczos,
PARDISO's analysis reused across k, and the SuperLU fallback."""

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
    """The ordering / symbolic analysis (phase 11) runs once for all k of one arithmetic and every shift (the
    edge slices refactorize, phase 22, on the same pattern); results stay exact."""
    phases = []
    original = sparse_solve.PardisoLDL._call
    monkeypatch.setattr(sparse_solve.PardisoLDL, "_call", lambda self, phase, *a: (phases.append(phase), original(self, phase, *a))[1])
    ks = GENERIC_K + np.array([[0.0, 0.0, 0.0], [0.01, 0.0, 0.0], [0.02, 0.01, 0.0]])
    sigma = sheet.fermi_energy_eV
    e = bands_at(sheet, ks, N_BANDS, sigma, solver="pardiso")
    assert phases.count(11) == 1 and phases.count(22) >= len(ks)
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


@pytest.mark.parametrize("sigma_from", ["mid_gap", "near_cbm", "among_states"])
def test_edge_slicing_matches_dense_and_solving_at_sigma(sheet, sigma_from):
    """Inside the gap the states come from shifts next to the band edges (more than one factorization);
    with sigma among the states (a metal's E_F) there is no slicing. Both agree with dense eigh and with
    Lanczos at sigma alone."""
    h, s = pencil(sheet, np.zeros(3))
    e_all = scipy.linalg.eigh(h.toarray(), s.toarray(), eigvals_only=True)
    vbm = e_all[e_all < sheet.fermi_energy_eV].max()
    cbm = e_all[e_all > sheet.fermi_energy_eV].min()
    spacing = np.diff(e_all)
    close = np.flatnonzero((spacing > 1e-3) & (spacing < 0.15) & (e_all[1:] < vbm - 0.5))[0]  # inside the band
    sigma = {"mid_gap": 0.5 * (vbm + cbm), "near_cbm": cbm - 0.3,
             "among_states": 0.5 * (e_all[close] + e_all[close + 1])}[sigma_from]
    stats = {}
    e = solve_shift_invert(h, s, sigma, N_BANDS, stats=stats)
    expected = nearest_bands(e_all[None, :], sigma, N_BANDS)[0]
    assert np.abs(e - expected).max() < 1e-8
    assert np.abs(solve_shift_invert(h, s, sigma, N_BANDS, slicing=False) - expected).max() < 1e-8
    if sigma_from == "among_states":
        assert stats["shifts"] == [sigma]
    else:
        assert len(stats["shifts"]) >= 2 and all(abs(x - sigma) > 0.1 for x in stats["shifts"][1:])


@pytest.mark.skipif("pardiso" not in BACKENDS, reason="needs MKL (pip install mkl)")
def test_edge_slicing_inertia_check_falls_back_to_sigma(sheet, monkeypatch, caplog):
    """A slice that misses a state between its shift and sigma is caught by the factorizations' inertia, and
    the answer still comes out right (from sigma)."""
    from deeph_jax.physics import bands

    h, s = pencil(sheet, np.zeros(3))
    sigma = sheet.fermi_energy_eV
    monkeypatch.setattr(bands, "EDGE_OFFSET_EV", -1.5)  # shifts 1.5 eV inside the bands: the edges are missed
    stats = {}
    e = solve_shift_invert(h, s, sigma, N_BANDS, solver="pardiso", stats=stats)
    assert "missed a state" in caplog.text
    assert stats["shifts"][-1] == sigma
    assert np.abs(e - dense_nearest(h, s, sigma)).max() < 1e-8


def test_block_lanczos_ritz_pairs_and_degenerate_states():
    """Block Lanczos on a diagonal pencil with a doubly degenerate extreme: both copies, residual bounds that
    hold, S-orthonormal Ritz vectors, and a warm start at the answer converging in one step."""
    from deeph_jax.physics.lanczos import block_lanczos

    rng = np.random.default_rng(1)
    n, sigma = 300, 0.0
    e = np.concatenate([[0.5, 0.5, -0.6, 0.7], rng.uniform(1.0, 5.0, n - 4) * rng.choice([-1, 1], n - 4)])
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    s_half = q @ np.diag(rng.uniform(0.5, 2.0, n)) @ q.T  # S = s_half^2, H = s_half diag(e) s_half
    s = sp.csr_matrix(s_half @ s_half)
    h = s_half @ np.diag(e) @ s_half
    solve = lambda b: np.linalg.solve(h - sigma * s.toarray(), b)
    pairs = block_lanczos(s, solve, rng.standard_normal((n, 4)), 4, tol=1e-12)
    found = np.sort(pairs.energies(sigma)[:4])
    np.testing.assert_allclose(found, [-0.6, 0.5, 0.5, 0.7], atol=1e-10)
    assert np.all(pairs.energy_errors()[:4] < 1e-8)
    x = pairs.vectors(4)
    np.testing.assert_allclose(x.T @ (s @ x), np.eye(4), atol=1e-10)
    warm = block_lanczos(s, solve, x, 4, tol=1e-10)
    assert warm.steps == 1


@pytest.mark.skipif("pardiso" not in BACKENDS, reason="needs MKL (pip install mkl)")
@pytest.mark.parametrize("k", [np.zeros(3), GENERIC_K])
def test_single_precision_rough_pass_leaves_double_precision_answers(sheet, monkeypatch, k):
    """Large matrices locate the band edges with a single-precision factorization; the eigenvalues still come
    from double precision (1e-8 eV from dense), in the gap and with sigma among the states."""
    from deeph_jax.physics import bands

    monkeypatch.setattr(bands, "ROUGH_SINGLE_MIN", 0)
    h, s = pencil(sheet, k)
    for sigma in (sheet.fermi_energy_eV, sheet.fermi_energy_eV - 3.0):
        stats = {}
        e = solve_shift_invert(h, s, sigma, N_BANDS, solver="pardiso", stats=stats)
        assert np.abs(e - dense_nearest(h, s, sigma)).max() < 1e-8
        assert len(stats["passes"]) >= 2  # the rough pass is never the answer


@pytest.mark.skipif("pardiso" not in BACKENDS, reason="needs MKL (pip install mkl)")
def test_band_path_reuses_the_previous_k_edges(sheet):
    """Along a path each k after the first starts from its neighbour's band edges (no rough pass at sigma):
    the same eigenvalues as dense eigh at every k, real (Gamma, M) and complex k alike."""
    kpath = np.array([[0.0, 0.0, 0.0], [0.05, 0.0, 0.0], [0.1, 0.03, 0.0], [0.25, 0.0, 0.0], [0.5, 0.0, 0.0]])
    sigma = sheet.fermi_energy_eV
    stats = []
    e = bands_at(sheet, kpath, n_bands=N_BANDS, sigma=sigma, stats=stats)
    for k, got in zip(kpath, e):
        h, s = pencil(sheet, k)
        assert np.abs(got - dense_nearest(h, s, sigma)).max() < 1e-8
    assert stats[0]["shifts"][0] == sigma  # the first k locates its edges from sigma
    reused = [st for st in stats[1:] if sigma not in st["shifts"]]
    assert len(reused) >= 3  # later k went straight to shifts next to the previous edges
    assert all(len(st["shifts"]) == 2 for st in reused)  # one factorization per edge


@pytest.mark.parametrize("k", [np.zeros(3), GENERIC_K], ids=["gamma-real-inertia", "generic-complex"])
def test_stale_edges_fall_back_to_the_rough_pass(sheet, k):
    """Edges far from this k's (a neighbour's 1 eV inside the bands) fail the checks (inertia in real
    arithmetic, the slice's own states in complex), and the answer still comes out right."""
    h, s = pencil(sheet, k)
    sigma = sheet.fermi_energy_eV
    e_all = scipy.linalg.eigh(h.toarray(), s.toarray(), eigvals_only=True)
    vbm, cbm = e_all[e_all < sigma].max(), e_all[e_all > sigma].min()
    stats = {}
    e = solve_shift_invert(h, s, sigma, N_BANDS, stats=stats, edges=(vbm - 1.0, cbm + 1.0))
    assert np.abs(e - nearest_bands(e_all[None, :], sigma, N_BANDS)[0]).max() < 1e-8
    assert sigma in stats["shifts"]  # located anew


@pytest.mark.parametrize("backend", BACKENDS)
def test_path_tracking_matches_dense_with_fewer_factorizations(sheet, backend):
    """Davidson along a path (PathTracker), preconditioned by earlier k's factorizations: the 20 states
    nearest E_F equal dense eigh at every k (real and complex), and most k-points factorize nothing."""
    kpath = np.array([[0.0, 0.0, 0.0]] + [[0.5 * t, 0.2 * t, 0.0] for t in np.linspace(0.03, 0.3, 10)])
    sigma = sheet.fermi_energy_eV
    stats = []
    e = bands_at(sheet, kpath, n_bands=N_BANDS, sigma=sigma, stats=stats, solver=backend, track=True)
    for k, got in zip(kpath, e):
        h, s = pencil(sheet, k)
        assert np.abs(got - dense_nearest(h, s, sigma)).max() < 1e-8
    assert stats[0]["method"] == "shift-invert"  # nothing to start from at the first k
    assert all(st["method"] == "davidson" for st in stats[1:])
    factorized = sum(len(st["shifts"]) for st in stats[1:])
    assert factorized <= len(kpath) - 1  # two shifts per refresh: at most every other k refreshes
    assert sum(not st["shifts"] for st in stats[1:]) >= 5


def test_davidson_keeps_degenerate_clusters_whole():
    """Gamma of a 6 x 6 tiling: the states near E_F come in folded, exactly degenerate clusters. Davidson
    from random vectors returns the whole block (24 independent pairs), and the 20 nearest E_F equal dense
    eigh, from noisy eigenvectors (harmonic Ritz vectors of a multiple value, taken as eigenvectors, came out
    nearly parallel and the block lost pairs)."""
    from deeph_jax.physics.davidson import davidson_nearest

    data = tile_deeph(read_deeph_dir(SMALL), (6, 6, 1))
    h, s = pencil(data, np.zeros(3))
    sigma = data.fermi_energy_eV
    ref = dense_nearest(h, s, sigma)
    assert np.min(np.diff(ref)) < 1e-9  # the test needs degenerate values among the wanted ones
    factors = [sparse_solve.make_factorization("superlu", False).factorize((h - shift * s).tocsr())
               for shift in (ref[ref < sigma].max() + 0.01, ref[ref > sigma].min() - 0.01)]  # next to each edge

    def precondition(r, theta):
        return np.where(theta < sigma, factors[0].solve(r), factors[1].solve(r))

    e_all, c = scipy.linalg.eigh(h.toarray(), s.toarray())
    start = c[:, np.argsort(np.abs(e_all - sigma), kind="stable")[: N_BANDS + 4]]
    start = start + 1.0 * np.abs(start).mean() * np.random.default_rng(0).standard_normal(start.shape)
    out = davidson_nearest(h, s, sigma, N_BANDS, precondition, start, 1e-6, 4, 60)
    assert out.converged and len(out.energies) >= N_BANDS + 4
    assert np.abs(np.sort(out.energies[:N_BANDS]) - ref).max() < 1e-8
    assert out.residual[:N_BANDS].max() < 1e-6


def test_near_range_pencil_preconditions_without_factorizing_the_full_one(sheet, monkeypatch):
    """bands_at(near_range=6 A): Davidson starts from and is preconditioned by the pencil kept within 6 A of
    the 10 A one; every factorization is of that sparser pencil, and the 20 states nearest E_F are the full
    pencil's (dense eigh) at Gamma and off it."""
    data = tile_deeph(read_deeph_dir(SMALL), (6, 6, 1))
    sigma = data.fermi_energy_eV
    full_nnz = pencil(data, np.zeros(3))[0].nnz
    factorized = []
    real_factorize = sparse_solve.PardisoLDL.factorize if "pardiso" in BACKENDS else sparse_solve.SuperLU.factorize
    cls = sparse_solve.PardisoLDL if "pardiso" in BACKENDS else sparse_solve.SuperLU

    def counted(self, a):
        factorized.append(a.nnz)
        return real_factorize(self, a)

    monkeypatch.setattr(cls, "factorize", counted)
    kpath = np.array([[0.0, 0.0, 0.0]] + [[0.5 * t, 0.2 * t, 0.0] for t in (0.03, 0.06, 0.09)])  # real, then complex
    stats = []
    e = bands_at(data, kpath, n_bands=N_BANDS, sigma=sigma, stats=stats, near_range=6.0)
    for k, got in zip(kpath, e):
        assert np.abs(got - dense_nearest(*pencil(data, k), sigma)).max() < 1e-8
    assert all(st["method"] == "davidson" for st in stats)
    assert factorized and max(factorized) < 0.7 * full_nnz


def test_near_range_below_the_bonds_is_refused(sheet):
    from deeph_jax.errors import DeephError
    from deeph_jax.physics.near_range import within_distance

    with pytest.raises(DeephError, match="near-range radius"):
        within_distance(sheet, 1.0)


@pytest.mark.skipif(sparse_solve._libm() is None, reason="MXCSR flushing is x86-64 Linux only")
def test_subnormals_flushed_only_inside_the_context():
    """Single-precision PARDISO calls run with subnormals flushed (they made a 39,200-atom factorization
    16x slower); the caller's floating-point environment comes back afterwards."""
    tiny, scale = np.float32(1e-38), np.float32(1e-3)
    assert tiny * scale > 0  # a subnormal result
    with sparse_solve.subnormals_flushed():
        assert tiny * scale == 0
    assert tiny * scale > 0


def test_row_split_products_equal_the_matrix_products(sheet):
    """Row blocks multiplied on threads (views of the matrix's arrays) give the product of the whole matrix."""
    from deeph_jax.physics.threaded import RowSplit

    h, _ = pencil(sheet, GENERIC_K)
    x = np.random.default_rng(0).standard_normal((h.shape[0], 5))
    for threads in (2, 3):
        split = RowSplit(h, threads)
        assert len(split.blocks) == threads and split.shape == h.shape
        np.testing.assert_allclose(split @ x, h @ x, rtol=0, atol=1e-12)
        split.close()
