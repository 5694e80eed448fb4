"""Band indices from inertia: counts against dense eigenvalues, real and complex, both backends."""

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp

from deeph_jax.errors import DeephError
from deeph_jax.physics.band_index import bands_straddling, first_index, real_embedding, states_below
from deeph_jax.physics.sparse_solve import available_backends


def random_pencil(n: int, complex_: bool, seed: int = 0):
    """A sparse Hermitian H and positive definite S (banded, like neighbour-coupled orbitals)."""
    rng = np.random.default_rng(seed)
    band = (np.abs(np.subtract.outer(np.arange(n), np.arange(n))) <= 3).astype(float)
    a = rng.normal(size=(n, n)) + (1j * rng.normal(size=(n, n)) if complex_ else 0)
    h = (a + a.conj().T) * band
    b = rng.normal(size=(n, n)) * band * 0.1
    s = np.eye(n) + (b + b.T) / 2
    assert np.linalg.eigvalsh(s).min() > 0.1
    return sp.csr_matrix(h), sp.csr_matrix(s)


def test_real_embedding_doubles_the_spectrum():
    h, _ = random_pencil(12, complex_=True)
    e = np.linalg.eigvalsh(h.toarray())
    e2 = np.linalg.eigvalsh(real_embedding(h).toarray())
    np.testing.assert_allclose(e2, np.sort(np.repeat(e, 2)), atol=1e-10)


@pytest.mark.parametrize("complex_", [False, True])
@pytest.mark.parametrize("solver", ["auto", "dense"])
def test_states_below_counts_the_pencil_eigenvalues(complex_, solver):
    if solver == "auto" and "pardiso" not in available_backends():
        pytest.skip("MKL PARDISO not installed (pip install deeph-jax[fast]); the dense case runs")
    h, s = random_pencil(60, complex_, seed=1)
    e = scipy.linalg.eigh(h.toarray(), s.toarray(), eigvals_only=True)
    for energy in (e[5] - 1e-3, 0.5 * (e[29] + e[30]), e[-1] + 1.0, e[0] - 1.0):
        assert states_below(h, s, energy, solver) == int((e < energy).sum())


def test_window_indices_and_straddling_bands():
    h, s = random_pencil(50, complex_=True, seed=2)
    e = scipy.linalg.eigh(h.toarray(), s.toarray(), eigvals_only=True)
    split = 0.5 * (e[24] + e[25])
    window = e[20:31]  # what a shift-invert solve at `split` would return
    assert first_index(window, states_below(h, s, split, "dense"), split) == 20
    picked = bands_straddling(np.stack([window, window + 0.0]), split, 2, 2)
    np.testing.assert_allclose(picked, np.stack([e[23:27]] * 2))
    with pytest.raises(DeephError, match="need 2 and 12"):
        bands_straddling(window[None], split, 2, 12)


@pytest.mark.parametrize("complex_", [False, True])
def test_bands_with_indices_finds_bands_from_a_distant_guess(complex_):
    """Bands 118-121 of a 240-row pencil, starting from a guess several windows away."""
    from deeph_jax.physics.band_index import bands_with_indices

    if "pardiso" not in available_backends():
        pytest.skip("MKL PARDISO not installed: inertia of a 240-row pencil uses the dense fallback elsewhere")
    h, s = random_pencil(240, complex_, seed=3)
    e = scipy.linalg.eigh(h.toarray(), s.toarray(), eigvals_only=True)
    got = bands_with_indices(h, s, 118, 4, guess=float(0.5 * (e[150] + e[151])), window=8)
    np.testing.assert_allclose(got, e[118:122], atol=1e-9)
    # a guess exactly at a level makes H - guess S singular: PARDISO perturbs its pivots and its solves are garbage
    # (on an AMD EPYC they corrupted the heap); that is refused in one line, not answered
    with pytest.raises(DeephError, match="singular"):
        bands_with_indices(h, s, 118, 4, guess=float(e[150]), window=8)
