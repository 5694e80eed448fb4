"""Block Lanczos for the shift-inverted pencil: the eigenvalues of H c = e S c nearest a shift sigma.

T = (H - sigma S)^-1 S is self-adjoint in the S inner product; its eigenvalues nu = 1 / (e - sigma) are
largest in magnitude for the e nearest sigma. The Krylov space of a block of b vectors is built with
full S-orthogonalization (two passes of classical Gram-Schmidt), its projection G = Q^H S T Q
(block tridiagonal in exact arithmetic) is assembled from the orthogonalization coefficients, and Ritz
pairs of G converge from the outside in.

Why blocks and not ARPACK's single vector: the sparse factorization solves b right-hand sides for little
more than the cost of one (PARDISO streams its factor once: 24 vectors cost ~5 single solves at 15,000
orbitals), and degenerate eigenvalues (every Kramers or k/-k pair of a supercell) are found in one go
where single-vector Lanczos needs rounding errors to see the second copy.

Functions are pure numerics on scipy sparse matrices and NumPy arrays; ``solve`` is any callable returning
(H - sigma S)^-1 b for a block b (n, m).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class RitzPairs:
    """Ritz values nu of T (largest |nu| first), their residual norms ||T x - nu x||_S, and the Krylov data
    needed to form the Ritz vectors."""

    nu: np.ndarray  # (m,)
    residual: np.ndarray  # (m,)
    basis: np.ndarray  # (n, dim) S-orthonormal
    coefficients: np.ndarray  # (dim, m)
    steps: int
    solves: int

    def energies(self, sigma: float) -> np.ndarray:
        """Eigenvalue estimates e = sigma + 1 / nu (eV), in the order of ``nu``."""
        return sigma + 1.0 / self.nu

    def energy_errors(self) -> np.ndarray:
        """A bound on |e - e_exact| (eV) from the residual: |d nu| <= ||r||_S, so |d e| <= ||r|| / nu^2."""
        return self.residual / self.nu**2

    def vectors(self, count: int) -> np.ndarray:
        """The first ``count`` Ritz vectors (n, count), S-orthonormal."""
        return self.basis @ self.coefficients[:, :count]


def s_orthonormalize(x: np.ndarray, s, basis: np.ndarray | None = None, s_basis: np.ndarray | None = None,
                     drop: float = 1e-10):
    """Columns of x made S-orthonormal and S-orthogonal to ``basis`` (whose S-image is ``s_basis``).

    Two passes of classical Gram-Schmidt against the basis, then an eigen-decomposition of the block's Gram
    matrix (dropping directions below ``drop`` of its largest: a Krylov block that became dependent).

    Returns:
        (q, s q, c, r) with x = basis @ c + q @ r; q may have fewer columns than x.
    """
    c = None
    if basis is not None and basis.shape[1]:
        c = s_basis.conj().T @ x
        x = x - basis @ c
        c2 = s_basis.conj().T @ x
        x = x - basis @ c2
        c = c + c2
    sx = s @ x
    gram = x.conj().T @ sx
    w, u = np.linalg.eigh(0.5 * (gram + gram.conj().T))
    keep = w > drop * max(w.max(), np.finfo(float).tiny)
    w, u = w[keep], u[:, keep]
    scale = u / np.sqrt(w)
    q, sq = x @ scale, sx @ scale
    r = (u * np.sqrt(w)).conj().T  # x - basis c = q r
    return q, sq, c, r


def block_lanczos(s, solve, start: np.ndarray, n_wanted: int, tol: float = 1e-9, max_dim: int | None = None,
                  min_steps: int = 1, max_steps: int | None = None, until=None) -> RitzPairs:
    """Ritz pairs of T = (H - sigma S)^-1 S, the ``n_wanted`` of largest |nu| converged to ``tol``.

    Args:
        s: (n, n) sparse S (positive definite).
        solve: b (n, m) -> (H - sigma S)^-1 b.
        start: (n, b) start block (random, or the eigenvectors of a neighbouring k-point).
        tol: relative residual ||T x - nu x||_S / |nu| at which a Ritz pair counts as converged; the
            eigenvalue error is below tol * |e - sigma| (and in practice its square).
        max_dim: largest Krylov basis (default min(n, 60 b)); at that size the best pairs are returned
            whether converged or not (check ``residual``).
        min_steps, max_steps: bounds on the number of block steps (``max_steps`` for rough estimates).
        until: optional ``until(nu, residual) -> bool`` called after every step (largest |nu| first): stop
            early when it returns True (rough estimates that need not converge).
    """
    n = start.shape[0]
    dtype = np.result_type(start.dtype, s.dtype, np.float64)
    q, sq, _, _ = s_orthonormalize(np.asarray(start, dtype=dtype), s)
    max_dim = min(n, max_dim or 60 * start.shape[1])
    blocks, s_blocks = [q], [sq]
    g = np.zeros((0, 0), dtype=dtype)
    solves, step = 0, 0
    while True:
        step += 1
        basis, s_basis = np.hstack(blocks), np.hstack(s_blocks)
        y = np.asarray(solve(s_blocks[-1]), dtype=dtype)  # T q_j
        solves += y.shape[1]
        new, s_new, c, r = s_orthonormalize(y, s, basis, s_basis)
        dim, width = basis.shape[1], blocks[-1].shape[1]
        grown = np.zeros((dim, dim), dtype=dtype)
        grown[: g.shape[0], : g.shape[1]] = g
        grown[:, dim - width:] = c  # columns of Q^H S T q_j
        grown[dim - width:, :] = c.conj().T
        g = 0.5 * (grown + grown.conj().T)
        nu, coef = np.linalg.eigh(g)
        order = np.argsort(-np.abs(nu))
        nu, coef = nu[order], coef[:, order]
        # T Q = Q G + q_new r E_last^H: the residual of Ritz pair i is ||r @ coef[last block rows, i]||
        residual = np.linalg.norm(r @ coef[dim - width:, :], axis=0)
        wanted = min(n_wanted, dim)
        done = dim >= n_wanted and np.all(residual[:wanted] <= tol * np.abs(nu[:wanted])) and step >= min_steps
        full = dim + new.shape[1] > max_dim or new.shape[1] == 0
        stop = until is not None and step >= min_steps and until(nu, residual)
        if done or full or stop or (max_steps is not None and step >= max_steps):
            return RitzPairs(nu, residual, basis, coef, step, solves)
        blocks.append(new)
        s_blocks.append(s_new)
