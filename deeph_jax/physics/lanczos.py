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
    blocks: list  # the S-orthonormal Krylov basis, blocks of (n, b) columns (dim in all)
    coefficients: np.ndarray  # (dim, m)
    steps: int
    solves: int

    def energies(self, sigma: float) -> np.ndarray:
        """Eigenvalue estimates e = sigma + 1 / nu (eV), in the order of ``nu``."""
        return sigma + 1.0 / self.nu

    def energy_errors(self) -> np.ndarray:
        """A bound on |e - e_exact| (eV) from the residual: |d nu| <= ||r||_S, so |d e| <= ||r|| / nu^2."""
        return self.residual / self.nu**2

    def vectors(self, which) -> np.ndarray:
        """Ritz vectors, S-orthonormal: the first ``which`` (an int) or those at the indices ``which``;
        (n, len)."""
        columns = self.coefficients[:, :which] if np.isscalar(which) else self.coefficients[:, np.asarray(which)]
        out, row = 0, 0
        for b in self.blocks:
            out = out + b @ columns[row: row + b.shape[1]]
            row += b.shape[1]
        return out


def s_orthonormalize(x: np.ndarray, s, blocks: list | None = None, s_blocks: list | None = None,
                     drop: float = 1e-10):
    """Columns of x made S-orthonormal and S-orthogonal to the basis ``blocks`` (their S-images ``s_blocks``).

    Two passes of classical Gram-Schmidt against the basis (block by block: no copy of the whole basis),
    then an eigen-decomposition of the block's Gram matrix (dropping directions below ``drop`` of its
    largest: a Krylov block that became dependent).

    Returns:
        (q, s q, c, r, lost) with x = basis @ c + q @ r + (dropped part, S-norm <= lost), c stacked over the
        blocks; q may have fewer columns than x.
    """
    c = None
    if blocks:
        c = [sb.conj().T @ x for sb in s_blocks]
        for b, cb in zip(blocks, c):
            x = x - b @ cb
        for i, (b, sb) in enumerate(zip(blocks, s_blocks)):
            c2 = sb.conj().T @ x
            x = x - b @ c2
            c[i] = c[i] + c2
        c = np.vstack(c)
    sx = s @ x
    gram = x.conj().T @ sx
    w, u = np.linalg.eigh(0.5 * (gram + gram.conj().T))
    keep = w > drop * max(w.max(), np.finfo(float).tiny)
    lost = float(np.sqrt(np.clip(w[~keep], 0.0, None).sum()))
    w, u = w[keep], u[:, keep]
    scale = u / np.sqrt(w)
    q, sq = x @ scale, sx @ scale
    r = (u * np.sqrt(w)).conj().T  # x - basis c = q r + what was dropped
    if w.size and w.min() < 1e-6 * w.max():
        # an ill-conditioned block: its Gram eigenvectors are accurate to eps * cond only, so q is orthonormal
        # to ~1e-6; once more on q (whose Gram is ~I) makes it orthonormal to rounding
        gram = q.conj().T @ sq
        w2, u2 = np.linalg.eigh(0.5 * (gram + gram.conj().T))
        scale = u2 / np.sqrt(w2)
        q, sq = q @ scale, sq @ scale
        r = (u2 * np.sqrt(w2)).conj().T @ r
    return q, sq, c, r, lost


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
    q, sq, _, _, _ = s_orthonormalize(np.asarray(start, dtype=dtype), s)
    max_dim = min(n, max_dim or 60 * start.shape[1])
    blocks, s_blocks = [q], [sq]
    g = np.zeros((0, 0), dtype=dtype)
    solves, step = 0, 0
    while True:
        step += 1
        y = np.asarray(solve(s_blocks[-1]), dtype=dtype)  # T q_j
        solves += y.shape[1]
        new, s_new, c, r, lost = s_orthonormalize(y, s, blocks, s_blocks)
        dim, width = sum(b.shape[1] for b in blocks), blocks[-1].shape[1]
        grown = np.zeros((dim, dim), dtype=dtype)
        grown[: g.shape[0], : g.shape[1]] = g
        grown[:, dim - width:] = c  # columns of Q^H S T q_j
        grown[dim - width:, :] = c.conj().T
        g = 0.5 * (grown + grown.conj().T)
        nu, coef = np.linalg.eigh(g)
        order = np.argsort(-np.abs(nu))
        nu, coef = nu[order], coef[:, order]
        # T Q = Q G + q_new r E_last^H (+ a dropped dependent part): the residual of Ritz pair i is
        # ||r @ coef[last block rows, i]||, plus at most lost * ||coef[last block rows, i]||
        last = coef[dim - width:, :]
        residual = np.linalg.norm(r @ last, axis=0) + lost * np.linalg.norm(last, axis=0)
        wanted = min(n_wanted, dim)
        done = dim >= n_wanted and np.all(residual[:wanted] <= tol * np.abs(nu[:wanted])) and step >= min_steps
        full = dim + new.shape[1] > max_dim or new.shape[1] == 0
        stop = until is not None and step >= min_steps and until(nu, residual)
        if done or full or stop or (max_steps is not None and step >= max_steps):
            return RitzPairs(nu, residual, blocks, coef, step, solves)
        blocks.append(new)
        s_blocks.append(s_new)
