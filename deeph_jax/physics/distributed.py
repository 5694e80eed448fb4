"""Band energies and KPM beyond one process: the rows of H(k) and S(k) split over JAX processes (hosts).

Each process keeps the rows of its own block of orbitals, so the sparse matrices (the memory that grows with
the structure) are divided among the processes; vectors (n or n x R numbers, small beside the matrices) are
kept whole on every process. A product M x is local rows times the whole vector, then an all-gather of the
pieces (``jax.experimental.multihost_utils.process_allgather``, gloo on CPU hosts, NCCL on GPUs). Everything
else (ARPACK's Lanczos, MINRES, conjugate gradients, the Chebyshev recursion) runs the same scipy / numpy code
on the same whole vectors in every process, so the processes stay in step and agree to the last bit.

Eigenvalues near sigma use shift-invert Lanczos with an iterative inner solve: MINRES on H - sigma S, which
converges fast when sigma lies in a gap (hBN at mid-gap: condition number ~ spectral radius / half gap ~ 15)
and slowly inside a dense part of the spectrum, where the single-machine direct solver is the better tool.

Start every process with DEEPH_COORDINATOR=host0:port DEEPH_NUM_PROCESSES=N DEEPH_PROCESS_ID=k (as training);
one process alone is the same code without communication.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from deeph_jax.errors import DeephError


def process_layout() -> tuple[int, int]:
    """(this process's index, number of processes)."""
    import jax

    return jax.process_index(), jax.process_count()


def row_range(n: int, index: int, count: int) -> tuple[int, int]:
    """Rows [lo, hi) of process ``index`` of ``count``: contiguous, sizes differing by at most one."""
    bounds = np.linspace(0, n, count + 1).round().astype(int)
    return int(bounds[index]), int(bounds[index + 1])


def allgather_rows(local: np.ndarray, n: int) -> np.ndarray:
    """Concatenate every process's row block (in process order) into the whole (n, ...) array."""
    import jax

    if jax.process_count() == 1:
        return local
    from jax.experimental import multihost_utils

    rows = max(hi - lo for lo, hi in (row_range(n, p, jax.process_count()) for p in range(jax.process_count())))
    padded = np.zeros((rows,) + local.shape[1:], dtype=local.dtype)
    padded[: len(local)] = local
    with jax.enable_x64(True):  # without it the gather would round float64 / complex128 to single precision
        gathered = np.asarray(multihost_utils.process_allgather(padded))  # (processes, rows, ...)
    return np.concatenate([gathered[p, : hi - lo] for p, (lo, hi) in
                           enumerate(row_range(n, p, jax.process_count()) for p in range(jax.process_count()))])


class RowBlockMatrix:
    """An n x n matrix of which this process holds rows [lo, hi) (CSR); ``m @ x`` for whole vectors or
    (n, R) blocks returns the whole product on every process."""

    def __init__(self, local: sp.csr_matrix, n: int, lo: int, hi: int):
        if local.shape != (hi - lo, n):
            raise ValueError(f"local rows {local.shape} do not match rows [{lo}, {hi}) of {n}")
        self.local, self.shape, self.lo, self.hi = sp.csr_matrix(local), (n, n), lo, hi
        self.dtype = local.dtype

    @classmethod
    def from_whole(cls, matrix: sp.spmatrix) -> "RowBlockMatrix":
        """This process's rows of a matrix every process can build (each keeps only its share)."""
        n = matrix.shape[0]
        lo, hi = row_range(n, *process_layout())
        return cls(sp.csr_matrix(matrix)[lo:hi], n, lo, hi)

    def __matmul__(self, x):
        return allgather_rows(np.asarray(self.local @ x), self.shape[0])

    def diagonal(self) -> np.ndarray:
        local = self.local[:, self.lo : self.hi].diagonal()
        return allgather_rows(np.asarray(local), self.shape[0])

    def combine(self, other: "RowBlockMatrix", a: complex, b: complex) -> "RowBlockMatrix":
        """a * self + b * other, row blocks alike."""
        return RowBlockMatrix((a * self.local + b * other.local).tocsr(), self.shape[0], self.lo, self.hi)


def _operator(m: RowBlockMatrix) -> spla.LinearOperator:
    return spla.LinearOperator(m.shape, matvec=lambda x: m @ x, matmat=lambda x: m @ x, dtype=m.dtype)


def eigenvalues_near(h: RowBlockMatrix, s: RowBlockMatrix, sigma: float, n_bands: int, tol: float = 1e-12,
                     inner_tol: float = 1e-13, max_inner: int = 5000) -> np.ndarray:
    """The ``n_bands`` eigenvalues of H c = E S c closest to ``sigma`` (eV), ascending: ARPACK shift-invert
    Lanczos in the S inner product, (H - sigma S)^-1 applied by MINRES. Same answer on every process."""
    n = h.shape[0]
    if n_bands >= n - 1:
        raise DeephError(f"--nbands {n_bands} needs a matrix larger than {n}")
    shifted = h.combine(s, 1.0, -sigma)
    dtype = np.result_type(h.dtype, s.dtype)
    if np.issubdtype(dtype, np.complexfloating):
        # scipy's MINRES is for real symmetric systems; a Hermitian A = Ar + i Ai acts on (xr, xi) as the real
        # symmetric [[Ar, -Ai], [Ai, Ar]].
        def real_matvec(x):
            z = shifted @ (x[:n] + 1j * x[n:])
            return np.concatenate([z.real, z.imag])

        system = spla.LinearOperator((2 * n, 2 * n), matvec=real_matvec, dtype=np.float64)
        to_system = lambda b: np.concatenate([b.real, b.imag])  # noqa: E731
        from_system = lambda x: x[:n] + 1j * x[n:]  # noqa: E731
    else:
        system, to_system, from_system = _operator(shifted), (lambda b: b), (lambda x: x)

    def solve(b):
        x, info = spla.minres(system, to_system(np.asarray(b, dtype=dtype)), rtol=inner_tol, maxiter=max_inner)
        x = from_system(x)
        if info != 0:
            raise DeephError(f"MINRES on H - sigma S did not converge in {max_inner} iterations: sigma = {sigma} eV "
                             "is too close to the spectrum for the iterative distributed solver (move it into a "
                             "gap, or use the single-machine direct solver)")
        return x

    opinv = spla.LinearOperator((n, n), matvec=solve, dtype=dtype)
    v0 = np.random.default_rng(0).standard_normal(n).astype(dtype)  # the same start on every process
    vals = spla.eigsh(_operator(h), k=n_bands, M=_operator(s), sigma=sigma, which="LM", OPinv=opinv, tol=tol,
                      v0=v0, return_eigenvectors=False, mode="normal")
    return np.sort(np.real(vals))


def row_blocks_at(data, k) -> tuple[RowBlockMatrix, RowBlockMatrix]:
    """This process's rows of H(k) and S(k) of a DeephStructure (real where the phases allow)."""
    from deeph_jax.physics.bands import bloch_pencil

    h, s = bloch_pencil(data, k)
    return RowBlockMatrix.from_whole(h), RowBlockMatrix.from_whole(s)


def bands_distributed(data, kpoints: np.ndarray, n_bands: int, sigma: float, progress=None) -> np.ndarray:
    """(n_k, n_bands) eigenvalues closest to ``sigma`` (eV) at each k, rows of H(k), S(k) over the processes."""
    kpoints = np.asarray(kpoints, dtype=np.float64).reshape(-1, 3)
    it = kpoints if progress is None else progress(kpoints)
    out = []
    for k in it:
        h, s = row_blocks_at(data, k)
        out.append(eigenvalues_near(h, s, sigma, n_bands))
    return np.asarray(out)


def kpm_moments_distributed(data, kpoints: np.ndarray, n_moments: int | None = None, resolution: float | None = None,
                            n_vectors: int = 16, seed: int = 0, bounds: tuple[float, float] | None = None):
    """KPM moments (see :func:`deeph_jax.physics.kpm.kpm_moments_mesh`) with the matrices' rows over the
    processes; the random vectors are drawn from the same seed everywhere."""
    from deeph_jax.physics.kpm import kpm_moments_mesh

    pairs = [row_blocks_at(data, k) for k in np.asarray(kpoints).reshape(-1, 3)]
    return kpm_moments_mesh(pairs, n_moments, resolution=resolution, n_vectors=n_vectors, seed=seed, bounds=bounds)
