"""Block Davidson for the eigenpairs of H c = e S c nearest a shift, preconditioned by factorizations of a
neighbouring k-point: band paths of 10^4 atoms without a sparse factorization at every k.

Along a band path the eigenvectors of one k start the next, and the shift-inverted factorizations of an
earlier k, (H(k0) - sigma_side S(k0))^-1 next to each band edge, stand in for this k's: the correction of
a Ritz pair (theta, x) with residual r = (H - theta S) x is t = M r with M the factor of its side of sigma.
Where M is exact this is shift-invert subspace iteration; where k0 is near k it stays close, and one
factorization serves several k-points (at 9,800 atoms, 2 threads, a single-precision complex factorization
took ~7 s, an iteration with its block of solves ~1.3 s).

The basis is kept S-orthonormal (:func:`deeph_jax.physics.lanczos.s_orthonormalize`), harmonic Ritz
extraction picks the pairs nearest sigma, and ``guard`` pairs beyond the wanted ones follow the states just
outside the window, so a band entering it along the path is already in the basis.

Functions are pure numerics on scipy sparse matrices and NumPy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.linalg

from deeph_jax.physics.lanczos import s_orthonormalize

# Guard pairs are followed to this multiple of the wanted pairs' tolerance: they need to be in the basis, not
# exact (72-atom hBN sheet, 10 k: 12 % fewer solves at 100x, same iterations and answers).
GUARD_TOL_FACTOR = 100.0


@dataclass
class DavidsonResult:
    """Ritz pairs nearest sigma: energies (m,) eV ascending by distance from sigma, S-orthonormal vectors
    (n, m), residual norms ||H x - e S x|| (m,) eV; iterations, preconditioner solves and convergence of
    the wanted pairs."""

    energies: np.ndarray
    vectors: np.ndarray
    residual: np.ndarray
    iterations: int
    solves: int
    converged: bool


def davidson_nearest(h, s, sigma: float, n_wanted: int, precondition: Callable[[np.ndarray, np.ndarray], np.ndarray],
                     start: np.ndarray, tol_eV: float = 1e-5, guard: int = 4, max_iter: int = 25,
                     max_basis: int | None = None) -> DavidsonResult:
    """The ``n_wanted`` eigenpairs of the pencil (h, s) nearest ``sigma`` (eV), by block Davidson.

    Args:
        h, s: (n, n) sparse Hermitian H (eV) and positive definite S.
        precondition: (R (n, m), theta (m,)) -> corrections (n, m), ~(H - shift S)^-1 R for a shift near
            each theta (e.g. a factorization of a neighbouring k).
        start: (n, >= n_wanted + guard) start vectors (a neighbouring k's eigenvectors; random columns
            make up for missing ones).
        tol_eV: residual norm ||H x - e S x|| (eV, x S-normalized) at which a wanted pair is converged;
            its eigenvalue is then off by ~tol^2 / (distance to the next eigenvalue outside the block), and
            at most ~tol (72-atom hBN sheet, 1e-5: 1e-11 eV off dense eigh).
        guard: pairs beyond the wanted ones kept in the Ritz block (not required to converge).
        max_iter: iterations before giving up (``converged`` False).
        max_basis: basis columns before a restart from the current Ritz block (default 4 (n_wanted + guard)).
    """
    n = h.shape[0]
    m = min(n_wanted + guard, n - 1)
    max_basis = max_basis or 4 * m
    dtype = np.result_type(h.dtype, s.dtype, start.dtype, np.float64)
    v, sv, _, _, _ = s_orthonormalize(np.asarray(start, dtype=dtype), s)
    hv = h @ v
    solves = 0
    for iteration in range(1, max_iter + 1):
        x, sx, hx, theta = _harmonic_ritz(v, sv, hv, sigma, m)
        r = hx - sx * theta
        residual = np.linalg.norm(r, axis=0)
        wanted = np.argsort(np.abs(theta - sigma), kind="stable")[:n_wanted]
        if np.all(residual[wanted] <= tol_eV):
            return _rayleigh_ritz(h, s, x, sigma, iteration, solves, True)
        # Corrections for every unconverged pair; guards (which must follow the states outside) to a looser tolerance.
        need = np.full(len(theta), GUARD_TOL_FACTOR * tol_eV)
        need[wanted] = tol_eV
        open_ = np.flatnonzero(residual > need)
        t = np.asarray(precondition(r[:, open_], theta[open_]), dtype=dtype)
        solves += t.shape[1]
        if v.shape[1] + t.shape[1] > max_basis:
            # restart from the Ritz block: x = v y with orthonormal y is S-orthonormal already, and S x, H x
            # are at hand (no sparse products: at 10^4 atoms they are most of an iteration)
            v, sv, hv = x, sx, hx
        q, sq, _, _, _ = s_orthonormalize(t, s, [v], [sv])
        if q.shape[1] == 0:
            break
        v, sv, hv = np.hstack([v, q]), np.hstack([sv, sq]), np.hstack([hv, h @ q])
    return _rayleigh_ritz(h, s, x, sigma, iteration, solves, False)


def _harmonic_ritz(v, sv, hv, sigma: float, m: int):
    """At least ``m`` Ritz pairs of the basis v (S-orthonormal; sv = S v, hv = H v) nearest the target
    sigma: S-normalized vectors x with S x, H x and their Rayleigh quotients theta.

    Plain Rayleigh-Ritz puts spurious Ritz values inside a gap (mixtures of states from both sides), and a
    gap is exactly where sigma sits (E_F of an insulator): the pairs "nearest sigma" would be those. The
    harmonic condition (H - sigma S) x - mu S x orthogonal to W = (H - sigma S) v is shift-invert Rayleigh-Ritz
    in disguise, W^H W y = mu W^H S v y: the largest |1 / mu| are the states nearest sigma, with no
    spurious values there. Their span is taken from an ordered QZ (generalized Schur) decomposition, not from
    the eigenvectors y: at the Gamma point of a tiled supercell the states come in degenerate clusters, and
    LAPACK's eigenvectors of a multiple eigenvalue of this non-Hermitian pencil came out nearly parallel
    (9,800-atom hBN sheet: 18 independent of 24). Rayleigh-Ritz inside that span then gives the pairs; a
    cluster cut by the m-th value is kept whole.
    """
    w = hv - sigma * sv
    g = w.conj().T @ w
    g = 0.5 * (g + g.conj().T)
    a = w.conj().T @ sv
    size = np.sort(np.abs(scipy.linalg.eigvals(a, g)))[::-1]  # |nu| ~ 1 / |e - sigma|
    k = min(m, len(size))
    while k < len(size) and size[k] >= size[k - 1] * (1 - 1e-8):
        k += 1  # the next value belongs to the cluster at the cut
    cut = 0.5 * (size[k - 1] + size[k]) if k < len(size) else 0.0
    output = "complex" if np.iscomplexobj(v) else "real"
    *_, z = scipy.linalg.ordqz(a, g, sort=lambda al, be: np.abs(al) > cut * np.abs(be), output=output)
    basis = z[:, :k]
    # v is S-orthonormal and basis orthonormal, so v @ basis is S-orthonormal: Rayleigh-Ritz needs no overlap
    hh = basis.conj().T @ (v.conj().T @ hv) @ basis
    theta, y = scipy.linalg.eigh(0.5 * (hh + hh.conj().T))
    y = basis @ y
    return v @ y, sv @ y, hv @ y, theta


def _rayleigh_ritz(h, s, x, sigma: float, iterations: int, solves: int, converged: bool) -> DavidsonResult:
    """The final pairs: Rayleigh-Ritz in the span of the harmonic Ritz vectors x (nearly invariant once
    converged, so no spurious values), S-orthonormal, ordered by distance from sigma."""
    q, sq, _, _, _ = s_orthonormalize(x, s)
    hq = h @ q
    a = q.conj().T @ hq
    theta, y = scipy.linalg.eigh(0.5 * (a + a.conj().T))
    order = np.argsort(np.abs(theta - sigma), kind="stable")
    theta, y = theta[order], y[:, order]
    residual = np.linalg.norm(hq @ y - (sq @ y) * theta, axis=0)
    return DavidsonResult(theta, q @ y, residual, iterations, solves, converged)


__all__ = ["DavidsonResult", "davidson_nearest"]
