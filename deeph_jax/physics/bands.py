"""Eigenvalues of H(k) c = e S(k) c: dense (all bands) and sparse shift-invert (a few bands near sigma).

Energies in eV, k in reciprocal lattice units, H(k) = sum_R exp(i 2 pi k.R) H(R) (no position
phase; see :mod:`deeph_jax.io.blocks`). At k-points where every phase is +-1 (Gamma, zone-boundary
time-reversal points) of a real H(R), H(k) and S(k) are real and solved in real arithmetic.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from deeph_jax.errors import DeephError
from deeph_jax.physics.sparse_solve import SingularError, make_factorization

logger = logging.getLogger(__name__)

S_FIXES = ("the usual fixes: check that overlap.h5 belongs to this structure and keeps every block within the "
           "cutoff (both (i, j, R) and (j, i, -R)), or drop near-linearly-dependent (diffuse) basis functions")


def _fmt_k(k) -> str:
    return "(" + ", ".join(f"{x:.6f}" for x in np.asarray(k, dtype=float)) + ")"


def is_time_reversal_point(k) -> bool:
    """Every Bloch phase exp(i 2 pi k.R) is +-1: Gamma and the zone-boundary TRIM points."""
    k = np.asarray(k, dtype=np.float64)
    return bool(np.allclose(2.0 * k, np.round(2.0 * k), atol=1e-12))


def _real_if_possible(m, k, real_blocks: bool):
    """Drop the imaginary part when the phases at k are all +-1 and the blocks are real."""
    return m.real if real_blocks and is_time_reversal_point(k) else m


def overlap_not_positive_definite(s: np.ndarray, k, path=None) -> DeephError:
    smallest = float(np.linalg.eigvalsh(s)[0])
    return DeephError(
        f"S(k) is not positive definite at k = {_fmt_k(k)} (smallest eigenvalue {smallest:.3e}); {S_FIXES}", path
    )


def solve_dense(h: np.ndarray, s: np.ndarray, k=None, vectors: bool = False, path=None):
    """All eigenpairs of the generalized Hermitian problem (ascending).

    Args:
        h, s: (n, n) Hermitian H(k) (eV) and positive definite S(k).
        k: the k-point, only named in the error when S(k) is not positive definite.

    Returns:
        energies (n,) eV, and with ``vectors`` also C (n, n), S-orthonormal columns.
    """
    try:
        return scipy.linalg.eigh(h, s, eigvals_only=not vectors, check_finite=False, driver="gvd")
    except np.linalg.LinAlgError:
        raise overlap_not_positive_definite(s, k, path) from None


def solve_shift_invert(h: sp.spmatrix, s: sp.spmatrix, sigma: float, n_bands: int, k=None, path=None, tol: float = 0.0,
                       solver: str = "auto", factor=None, v0: np.ndarray | None = None, vectors: bool = False):
    """The ``n_bands`` eigenvalues closest to ``sigma`` (eV), ascending, by shift-invert Lanczos.

    One sparse factorization of A = H - sigma S (see :mod:`deeph_jax.physics.sparse_solve`); ARPACK
    iterates A^-1 S in the S inner product and the eigenvalues come back as sigma + 1/nu.

    Args:
        tol: ARPACK's relative accuracy of nu (0: machine precision).
        solver: "auto" (PARDISO when MKL is installed, else SuperLU), "pardiso" or "superlu".
        factor: a factorization object from :func:`~deeph_jax.physics.sparse_solve.make_factorization`
            to reuse its ordering and symbolic analysis (same sparsity pattern, e.g. another k).
        v0: (n,) or (n, m) start: the eigenvectors of a neighbouring k-point (summed into one vector).
        vectors: also return the S-orthonormal eigenvectors (n, n_bands).
    """
    n = h.shape[0]
    if n_bands >= n - 1:
        raise DeephError(f"--nbands {n_bands} needs a matrix larger than {n}: use the dense solver", path)
    a = (h - sigma * s).tocsr()
    is_complex = np.iscomplexobj(a.data)
    if factor is None:
        factor = make_factorization(solver, is_complex)
        logger.info("sparse shift-invert with %s", factor.name)
    try:
        factor.factorize(a)
    except SingularError as exc:  # exactly singular: sigma is an eigenvalue
        raise DeephError(f"H - sigma S is singular at k = {_fmt_k(k)} ({exc}); move --sigma slightly", path) from None
    dtype = np.complex128 if is_complex else np.float64
    op = spla.LinearOperator((n, n), matvec=lambda x: factor.solve(np.asarray(x, dtype=dtype)).reshape(x.shape),
                             dtype=dtype)
    if v0 is not None:
        v0 = np.asarray(v0).reshape(n, -1).sum(axis=1)
        v0 = (v0 if is_complex else v0.real).astype(dtype)
    try:
        out = spla.eigsh(h.tocsr(), k=n_bands, M=s.tocsr(), sigma=sigma, which="LM", OPinv=op, tol=tol,
                         v0=v0, return_eigenvectors=vectors, mode="normal")
    except (spla.ArpackNoConvergence, spla.ArpackError) as exc:
        raise DeephError(f"shift-invert Lanczos failed at k = {_fmt_k(k)} ({exc}); S(k) may not be positive "
                         f"definite: {S_FIXES}", path) from None
    vals = np.real(out[0] if vectors else out)
    order = np.argsort(vals)
    return (vals[order], out[1][:, order]) if vectors else vals[order]


def bloch_pencil(data, k) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Sparse Hermitian H(k), S(k) of a DeephStructure (spinful: S doubled), real where the phases allow."""
    offsets, spinful = data.atom_offsets, data.spinful
    h = _real_if_possible(data.hamiltonian.bloch_sparse(k, offsets, spinful), k, not data.hamiltonian.is_complex)
    s = _real_if_possible(data.overlap.bloch_sparse(k, offsets, False), k, True)
    h = 0.5 * (h + h.conj().T)
    s = 0.5 * (s + s.conj().T)
    if spinful:
        s = sp.block_diag([s, s])
    return h.tocsr(), s.tocsr()


def bands_at(data, kpoints: np.ndarray, n_bands: int | None = None, sigma: float | None = None,
             progress=None, solver: str = "auto", warm_start: bool = False) -> np.ndarray:
    """Eigenvalues (eV) of a :class:`~deeph_jax.io.DeephStructure` at each k.

    Args:
        kpoints: (n_k, 3) reciprocal lattice units.
        n_bands, sigma: with both, the ``n_bands`` eigenvalues closest to ``sigma`` (eV) by sparse
            shift-invert; otherwise all bands (dense).
        progress: wraps the k-point iterable (e.g. ``tqdm.tqdm``, which shows an ETA).
        solver: the sparse factorization ("auto", "pardiso", "superlu"); one per arithmetic (real at
            time-reversal-invariant k, complex elsewhere), its ordering reused across k.
        warm_start: start Lanczos from the previous k's eigenvectors (summed: ARPACK takes one vector; it
            saved ~1% of the solves on a 6-point hBN path, so off by default).

    Returns:
        (n_k, n_bands) ascending per k.
    """
    if data.hamiltonian is None or data.overlap is None:
        raise DeephError("bands need both a Hamiltonian and overlap.h5", data.path)
    kpoints = np.asarray(kpoints, dtype=np.float64).reshape(-1, 3)
    real_h = not data.hamiltonian.is_complex
    path = data.path / "overlap.h5" if data.path is not None else None
    out, factors, previous = [], {}, None
    it = kpoints if progress is None else progress(kpoints)
    for k in it:
        if n_bands is not None and sigma is not None:
            h, s = bloch_pencil(data, k)
            is_complex = np.iscomplexobj(h.data) or np.iscomplexobj(s.data)
            if is_complex not in factors:
                factors[is_complex] = make_factorization(solver, is_complex)
                logger.info("sparse shift-invert with %s (%s arithmetic)", factors[is_complex].name,
                            "complex" if is_complex else "real")
            e = solve_shift_invert(h, s, sigma, n_bands, k, path, solver=solver, factor=factors[is_complex],
                                   v0=previous, vectors=warm_start)
            if warm_start:
                e, previous = e
            out.append(e)
        else:
            h = _real_if_possible(data.hamiltonian_k(k), k, real_h)
            s = _real_if_possible(data.overlap_k(k), k, True)
            out.append(solve_dense(h, s, k, path=path))
    return np.asarray(out)


def nearest_bands(energies: np.ndarray, sigma: float, n_bands: int) -> np.ndarray:
    """From dense (n_k, n) eigenvalues, the ``n_bands`` closest to ``sigma`` at each k, ascending."""
    idx = np.argsort(np.abs(energies - sigma), axis=1, kind="stable")[:, :n_bands]
    return np.sort(np.take_along_axis(energies, idx, axis=1), axis=1)
