"""Memory a spectral job will need, checked before it starts: a large job that cannot fit is refused with one
line that says what it needs, what is free and what to use instead, not killed by the OS an hour in."""

from __future__ import annotations

import os

from deeph_jax.errors import DeephError

GIB = 2.0**30


def available_bytes() -> float:
    """Memory this process can still use: MemAvailable of /proc/meminfo (Linux), else free physical pages."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024.0
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return float("inf")


def dense_eigen_bytes(dimension: int, complex_: bool) -> float:
    """Peak of one dense generalized eigensolve (LAPACK ?hegvd): H, S, the eigenvectors and workspace,
    about five n x n matrices."""
    return 5.0 * dimension**2 * (16 if complex_ else 8)


def factor_bytes(dimension: int, nnz: int, scalar: int) -> float:
    """The LDL^T factor of a sparse matrix with ``nnz`` entries (both triangles) and ``scalar`` bytes per entry.
    The factor of a 2D sheet (nested dissection) held 10.7 entries per upper-triangle entry of H at 39,200
    orbitals and 8.4 at 15,488 (hBN, 10 A): that growth, (n)^0.26, is extrapolated."""
    fill = 8.4 * max(dimension / 15488.0, 1.0) ** 0.26
    return fill * nnz / 2.0 * scalar


def shift_invert_bytes(dimension: int, nnz: int, complex_: bool) -> float:
    """Sparse shift-invert at one k: H(k), S(k) and H - sigma S (value + index per entry), the LDL^T factor
    (:func:`factor_bytes`) and ~60 Lanczos blocks of 20 vectors."""
    scalar = 16 if complex_ else 8
    return 3.0 * nnz * (scalar + 4) + factor_bytes(dimension, nnz, scalar) + 2.0 * 1200 * dimension * scalar


def near_range_bytes(dimension: int, nnz: int, nnz_near: int, complex_: bool) -> float:
    """Shift-invert through the near-range pencil (:mod:`deeph_jax.physics.near_range`): the full H(k), S(k)
    (value + index per entry), the near-range H, S and H - shift S, three single-precision factors of it (the
    rough start pass's, released before the two preconditioners are made: one as margin), and the Davidson
    basis (~100 vectors, three copies)."""
    scalar = 16 if complex_ else 8
    factors = 3.0 * factor_bytes(dimension, nnz_near, scalar // 2)
    return 2.0 * nnz * (scalar + 4) + 3.0 * nnz_near * (scalar + 4) + factors + 300.0 * dimension * scalar


def kpm_bytes(dimension: int, nnz_overlap: int, n_vectors: int, complex_: bool, s_route: str) -> float:
    """KPM, on top of the H(k) and S(k) already built: about eight blocks of n x R vectors (the Chebyshev
    recursion and the S solve) and the S^-1 of ``s_route`` (:func:`deeph_jax.physics.kpm.overlap_route`):
    a dense S and its Cholesky factor, or the trimmed copy of S (``nnz_overlap`` entries at most, value +
    index) and its single-precision sparse factor (an upper bound: trimming made the factor of 100,352-atom
    hBN 2x smaller than :func:`factor_bytes` of all of S), or nothing more (conjugate gradients)."""
    scalar = 16 if complex_ else 8
    vectors = 8.0 * dimension * n_vectors * scalar
    inverse = {"dense": 2.0 * dimension**2 * scalar,
               "sparse-single": nnz_overlap * (scalar + 4) + factor_bytes(dimension, nnz_overlap, scalar // 2)}
    return vectors + inverse.get(s_route, 0.0)


def check_fits(need: float, what: str, instead: str, path=None, available: float | None = None) -> None:
    """Refuse a job that needs more than 90 % of the available memory."""
    free = available_bytes() if available is None else available
    if need > 0.9 * free:
        raise DeephError(f"{what} needs about {need / GIB:.1f} GiB and {free / GIB:.1f} GiB is available; {instead}",
                         path)
