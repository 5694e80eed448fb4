"""Which band is which in a window of a sparse solve: absolute band indices from Sylvester's inertia.

A shift-invert solve returns the eigenvalues nearest a shift, not their place in the spectrum. For a
Hermitian pencil (H, S) with S positive definite, the number of eigenvalues below an energy E is the number
of negative eigenvalues of H - E S (Sylvester's law of inertia), which an LDL^T factorization gives for the
price of one factorization. PARDISO reports the inertia of real symmetric matrices only, so a complex
Hermitian A = Ar + i Ai is counted through its real symmetric embedding [[Ar, -Ai], [Ai, Ar]], which holds
every eigenvalue of A twice (at twice the rows: a factor ~4 in fill, paid once per k-point that needs it).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from deeph_jax.errors import DeephError

DENSE_MAX_ROWS = 3000  # without MKL, inertia of matrices up to this size by a dense LDL^T


def real_embedding(a: sp.spmatrix) -> sp.csr_matrix:
    """[[Re A, -Im A], [Im A, Re A]]: real symmetric when A is Hermitian, each eigenvalue of A twice."""
    a = sp.csr_matrix(a)
    re, im = sp.csr_matrix(a.real), sp.csr_matrix(a.imag)
    return sp.bmat([[re, -im], [im, re]], format="csr")


def _negative_dense(a: np.ndarray) -> int:
    _, d, _ = scipy.linalg.ldl(a, hermitian=True)
    return int((np.linalg.eigvalsh(d) < 0).sum())  # d is block diagonal (1x1 and 2x2): its eigenvalues' signs


def states_below(h: sp.spmatrix, s: sp.spmatrix, energy: float, solver: str = "auto") -> int:
    """The number of eigenvalues of the pencil (H, S) below ``energy`` (eV), S positive definite.

    Args:
        h, s: (n, n) Hermitian sparse (or dense) H(k) and S(k), real or complex.
        solver: "auto" (PARDISO when MKL is installed, else a dense LDL^T up to DENSE_MAX_ROWS rows) or
            "dense".
    """
    from deeph_jax.physics.sparse_solve import SingularError, available_backends, make_factorization

    a = sp.csr_matrix(h) - energy * sp.csr_matrix(s)
    is_complex = np.iscomplexobj(a.data) and np.abs(a.data.imag).max(initial=0.0) > 0
    if solver == "auto" and "pardiso" in available_backends():
        m = real_embedding(a) if is_complex else sp.csr_matrix(a.real)
        factor = make_factorization("pardiso", is_complex=False)
        try:
            count = factor.factorize(m).n_negative
        except SingularError:
            raise DeephError(f"H - E S is singular at E = {energy:.9f} eV (an eigenvalue there): move E") from None
        finally:
            factor.release()
        return count // 2 if is_complex else count
    if solver not in ("auto", "dense"):
        raise ValueError(f"unknown inertia solver {solver!r}; choose auto or dense")
    if a.shape[0] > DENSE_MAX_ROWS:
        raise DeephError(f"band indices of a {a.shape[0]}-row pencil need MKL PARDISO's inertia "
                         f"(pip install deeph-jax[fast]); the dense fallback stops at {DENSE_MAX_ROWS} rows")
    return _negative_dense(a.toarray() if is_complex else a.toarray().real)


def first_index(energies: np.ndarray, below: int, energy: float) -> int:
    """The absolute band index (0-based) of the lowest of ``energies``, a window of consecutive eigenvalues
    around ``energy`` of which ``below`` lie below it in the whole spectrum (:func:`states_below`)."""
    return below - int((np.asarray(energies) < energy).sum())


def bands_with_indices(h: sp.spmatrix, s: sp.spmatrix, first: int, count: int, guess: float, window: int = 12,
                       tries: int = 6) -> np.ndarray:
    """Eigenvalues ``first`` ... ``first + count - 1`` (absolute, 0-based, eV) of the pencil (H, S), found by
    shift-invert windows of ``window`` eigenvalues, the first at ``guess`` (eV), each placed in the spectrum
    by the inertia at its shift; a window that misses them moves towards them (``tries`` windows at most).
    For a few bands deep inside a large sparse spectrum (the flat bands of a moire cell)."""
    from deeph_jax.physics.bands import solve_shift_invert

    if count > window:
        raise ValueError(f"{count} bands do not fit a window of {window}")
    sigma = float(guess)
    for _ in range(tries):
        e = solve_shift_invert(sp.csr_matrix(h), sp.csr_matrix(s), sigma, window)
        below = states_below(h, s, sigma)
        lo = first - first_index(e, below, sigma)
        if lo >= 0 and lo + count <= len(e):
            return e[lo:lo + count]
        # step by the wanted bands' distance in index times the window's mean level spacing
        spacing = max(float(e[-1] - e[0]) / (len(e) - 1), 1e-6)
        sigma += (first + count / 2 - below) * spacing
    raise DeephError(f"bands {first} to {first + count - 1} not found within {tries} windows of {window} "
                     f"eigenvalues from {guess:.4f} eV")


def bands_straddling(energies: np.ndarray, split: float, n_below: int, n_above: int) -> np.ndarray:
    """Per k, the ``n_below`` highest eigenvalues under ``split`` and the ``n_above`` lowest over it.

    With ``split`` the energy that separates the occupied from the empty states at every k (charge neutrality
    of a semimetal without electron or hole pockets), these are the bands with absolute indices n_occ - n_below
    ... n_occ + n_above - 1 at each k; where a pocket breaks that assumption the count of
    :func:`states_below` at ``split`` differs from n_occ, which the caller checks at the k-points it can.

    Args:
        energies: (n_k, m) eigenvalues near ``split`` (eV), ascending per k.
    Returns:
        (n_k, n_below + n_above), ascending per k.
    """
    energies = np.asarray(energies, dtype=np.float64)
    out = np.empty((len(energies), n_below + n_above))
    for i, e in enumerate(energies):
        lo, hi = e[e < split], e[e >= split]
        if len(lo) < n_below or len(hi) < n_above:
            raise DeephError(f"k-point {i}: {len(lo)} eigenvalues below {split:.6f} eV and {len(hi)} above, "
                             f"need {n_below} and {n_above}: solve for more bands")
        out[i] = np.concatenate([lo[len(lo) - n_below:], hi[:n_above]])
    return out
