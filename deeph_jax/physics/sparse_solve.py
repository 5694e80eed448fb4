"""Sparse LDL^T / LU factorizations of A = H(k) - sigma S(k) for shift-invert eigensolvers.

Backends (one object per band calculation and arithmetic, reused across k):

* ``"pardiso"``: MKL PARDISO through ctypes (the ``mkl`` wheel, ``pip install deeph-jax[fast]``);
  symmetric indefinite (real, mtype -2) or Hermitian indefinite (complex, mtype -4) LDL^T with METIS
  nested dissection. The ordering and symbolic analysis depend only on the sparsity pattern, the same
  at every k, so they run once. Factors 2.5x smaller than SuperLU's LU, made 3-6x faster.
* ``"superlu"``: scipy's SuperLU LU with COLAMD, always there: the fallback without MKL.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import glob
import os
import platform
import site
import struct
import sys
import weakref

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

BACKENDS = ("pardiso", "superlu")


class SingularError(RuntimeError):
    """A = H - sigma S is (numerically) singular: sigma is an eigenvalue."""


# --------------------------------------------------------------------------------------------- denormals
# Single-precision factors of gapped H - sigma S hold entries that decay exponentially with distance: in
# the large fronts of a 10^4-10^5-atom sheet they fall below float32's smallest normal (1.2e-38), and x86
# arithmetic on subnormals is ~100x slower. Measured (hBN, 39,200 atoms, pencil within 5.5 A, 1 thread): the
# single-precision factorization took 124 s, the double-precision one 14.5 s, and single precision with
# subnormals flushed to zero 7.6 s (the same 475 GFlop). Flushing changes nothing a preconditioner or an
# iteratively refined solve can see.
_MXCSR_OFFSET = 28  # of glibc's x86-64 fenv_t (32 bytes)
_FTZ_DAZ = 0x8040  # MXCSR flush-to-zero (bit 15) and denormals-are-zero (bit 6)
_LIBM = None


def _libm():
    global _LIBM
    if _LIBM is None:
        ok = sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")
        name = ctypes.util.find_library("m") if ok else None
        _LIBM = ctypes.CDLL(name) if name else False
    return _LIBM or None


@contextlib.contextmanager
def subnormals_flushed():
    """Run the body with subnormal floats flushed to zero (MXCSR FTZ and DAZ; x86-64 Linux, elsewhere a no-op),
    then restore the floating-point environment. Intel's OpenMP runtime (MKL's threads) copies the calling
    thread's MXCSR to its workers at every parallel region."""
    libm = _libm()
    env = ctypes.create_string_buffer(32)
    if libm is None or libm.fegetenv(env) != 0:
        yield
        return
    flushed = bytearray(env.raw)
    mxcsr = struct.unpack_from("<I", flushed, _MXCSR_OFFSET)[0]
    struct.pack_into("<I", flushed, _MXCSR_OFFSET, mxcsr | _FTZ_DAZ)
    libm.fesetenv(ctypes.create_string_buffer(bytes(flushed), 32))
    try:
        yield
    finally:
        libm.fesetenv(env)


# --------------------------------------------------------------------------------------------- PARDISO
def _find_mkl_rt():
    """The MKL runtime library, or None. The ``mkl`` wheel puts it in <prefix>/lib, not on the loader path."""
    names = [os.environ.get("DEEPH_JAX_MKL_RT"), ctypes.util.find_library("mkl_rt")]
    for prefix in (sys.prefix, site.USER_BASE):
        names += sorted(glob.glob(os.path.join(prefix, "lib", "libmkl_rt.so*")), key=len)
    for name in filter(None, names):
        try:
            lib = ctypes.CDLL(name)
            lib.pardiso.restype = None
            return lib
        except (OSError, AttributeError):
            continue
    return None


_MKL = None


def _mkl():
    global _MKL
    if _MKL is None:
        _MKL = _find_mkl_rt() or False
    return _MKL or None


def _pardiso(lib, pt, iparm, mtype: int, phase: int, upper=None, b=None, x=None) -> int:
    """One call of MKL's ``pardiso`` (maxfct = mnum = 1, no user permutation, silent); returns its error code."""
    p, one = ctypes.c_void_p, ctypes.c_int32(1)
    dummy = np.zeros(1, dtype=np.complex128)
    b = dummy if b is None else b
    x = dummy if x is None else x
    n, data, indptr, indices = (0, dummy, None, None) if upper is None else (
        upper.shape[0], upper.data, upper.indptr.ctypes.data_as(p), upper.indices.ctypes.data_as(p))
    err = ctypes.c_int32(0)
    lib.pardiso(pt.ctypes.data_as(p), ctypes.byref(one), ctypes.byref(one), ctypes.byref(ctypes.c_int32(mtype)),
                ctypes.byref(ctypes.c_int32(phase)), ctypes.byref(ctypes.c_int32(n)), data.ctypes.data_as(p), indptr,
                indices, None, ctypes.byref(ctypes.c_int32(1 if b.ndim == 1 else b.shape[1])),
                iparm.ctypes.data_as(p), ctypes.byref(ctypes.c_int32(0)), b.ctypes.data_as(p), x.ctypes.data_as(p),
                ctypes.byref(err))
    return err.value


class PardisoLDL:
    """LDL^T of a real symmetric or complex Hermitian indefinite sparse matrix by MKL PARDISO; with
    ``definite``, the Cholesky factor L L^H of a positive definite one (an overlap matrix), which also
    gives :meth:`solve_backward`.

    ``factorize`` runs the analysis (METIS ordering, symbolic factorization) only when the sparsity
    pattern changes; ``n_negative`` is the inertia (eigenvalues of the pencil below sigma).
    """

    name = "pardiso"

    def __init__(self, is_complex: bool, single: bool = False, definite: bool = False):
        self._lib = _mkl()
        if self._lib is None:
            raise ImportError("MKL runtime (libmkl_rt) not found: pip install mkl, or deeph-jax[fast]")
        self.single = single
        self.dtype = (np.complex64 if single else np.complex128) if is_complex else (np.float32 if single else np.float64)
        self.mtype = (4 if is_complex else 2) if definite else (-4 if is_complex else -2)
        self.pt = np.zeros(64, dtype=np.int64)  # PARDISO's opaque handle
        self.iparm = np.zeros(64, dtype=np.int32)
        self._lib.pardisoinit(self.pt.ctypes.data_as(ctypes.c_void_p), ctypes.byref(ctypes.c_int32(self.mtype)),
                           self.iparm.ctypes.data_as(ctypes.c_void_p))
        self.iparm[0] = 1  # we set iparm
        self.iparm[1] = 2  # METIS nested dissection
        # no iterative refinement: pardisoinit asks for 2 steps per solve, which triples the cost of every
        # Lanczos step for residuals of 1e-12 instead of 1e-14 (eigenvalue errors stay ~1e-12 eV)
        self.iparm[7] = 0
        self.iparm[34] = 1  # zero-based indices
        # single precision: factor ~1.7x and solves ~2.4x faster (39,200 orbitals), solutions to ~1e-3:
        # enough to locate band edges, not for the eigenvalues themselves
        self.iparm[27] = 1 if single else 0
        self._upper = None
        self._analysed = False
        weakref.finalize(self, _pardiso, self._lib, self.pt, self.iparm, self.mtype, -1)  # frees PARDISO's memory

    def _call(self, phase: int, b=None, x=None):
        with subnormals_flushed() if self.single else contextlib.nullcontext():
            err = _pardiso(self._lib, self.pt, self.iparm, self.mtype, phase, self._upper, b, x)
        if err == -4:
            raise SingularError(f"PARDISO: zero pivot (error {err})")
        if err:
            raise RuntimeError(f"PARDISO phase {phase} failed with error {err}")

    def factorize(self, a: sp.spmatrix) -> "PardisoLDL":
        upper = self._upper_triangle(a)
        same = (self._analysed and np.array_equal(upper.indptr, self._upper.indptr)
                and np.array_equal(upper.indices, self._upper.indices))
        self._upper = upper
        if not same:
            self._call(11)
            self._analysed = True
        self._call(22)
        # An indefinite factor whose pivots PARDISO had to perturb (below 1e-8 of the matrix's scale) is of a
        # matrix singular to rounding: sigma sits on an eigenvalue. Its solves are garbage (measured: wrong
        # Ritz values, and on an AMD EPYC a corrupted heap), so it counts as singular and callers move sigma.
        # Single-precision factors only locate band edges, and their float32 pivots may legitimately be small.
        if self.mtype in (-2, -4) and not self.single and self.iparm[13] > 0:
            raise SingularError(f"PARDISO perturbed {int(self.iparm[13])} pivot(s): singular to rounding")
        return self

    def _upper_triangle(self, a: sp.spmatrix) -> sp.csr_matrix:
        """A's upper triangle as PARDISO reads it: CSR, int32, rows in order, sorted, every diagonal entry
        stored. For a sorted CSR ``a`` that stores its whole diagonal (H - sigma S always does) this is a
        selection of its entries, remembered for the next matrix of the same pattern (another shift or k)."""
        if sp.isspmatrix_csr(a) and a.has_canonical_format:
            cached = getattr(self, "_take", None)
            if cached is None or not (np.array_equal(cached[0], a.indptr) and np.array_equal(cached[1], a.indices)):
                rows = np.repeat(np.arange(a.shape[0], dtype=a.indices.dtype), np.diff(a.indptr))
                keep = a.indices >= rows
                has_diag = np.count_nonzero(a.indices == rows) == a.shape[0]
                take = np.flatnonzero(keep) if has_diag else None
                indptr = np.concatenate([[0], np.cumsum(np.bincount(rows[keep], minlength=a.shape[0]))]).astype(np.int32)
                cached = (a.indptr, a.indices, take, indptr, a.indices[keep].astype(np.int32))
                self._take = cached
            if cached[2] is not None:
                return sp.csr_matrix((a.data[cached[2]].astype(self.dtype), cached[4], cached[3]), shape=a.shape)
        # the general route: PARDISO needs every diagonal entry stored (zeros included: COO -> CSR sums the
        # added explicit zeros in without dropping them, unlike sparse addition)
        a = sp.triu(a, format="coo")
        diag = np.arange(a.shape[0])
        upper = sp.coo_matrix((np.concatenate([a.data, np.zeros(a.shape[0])]).astype(self.dtype),
                               (np.concatenate([a.row, diag]), np.concatenate([a.col, diag]))), shape=a.shape).tocsr()
        upper.sort_indices()
        return sp.csr_matrix((upper.data, upper.indices.astype(np.int32), upper.indptr.astype(np.int32)), shape=a.shape)

    def release(self) -> None:
        """Free the factor's memory now (PARDISO phase -1); the analysis is redone on the next factorize."""
        if self._analysed:
            _pardiso(self._lib, self.pt, self.iparm, self.mtype, -1)
            self._analysed = False
            self._upper = None

    @property
    def n_negative(self) -> int | None:
        """Negative eigenvalues of A (Sylvester's inertia): eigenvalues of the pencil below sigma. PARDISO
        reports it for real matrices only (None for complex)."""
        return int(self.iparm[22]) if self.mtype == -2 else None

    def solve(self, b: np.ndarray) -> np.ndarray:
        """A^-1 b for b (n,) or (n, nrhs)."""
        return self._solve(33, b)

    def solve_backward(self, b: np.ndarray) -> np.ndarray:
        """P L^-H b for A = P L L^H P^T (a ``definite`` factor; PARDISO's backward substitution alone), so that
        E[x x^H] = A^-1 when E[b b^H] = 1: how a stochastic trace samples A^-1 for half a solve."""
        if self.mtype not in (2, 4):
            raise ValueError("solve_backward needs a definite (Cholesky) factorization")
        return self._solve(333, b)

    def _solve(self, phase: int, b: np.ndarray) -> np.ndarray:
        b = np.asfortranarray(b, dtype=self.dtype)
        x = np.empty_like(b, order="F")
        self._call(phase, b, x)
        return x


# --------------------------------------------------------------------------------------------- SuperLU
class SuperLU:
    """scipy's SuperLU of A with its COLAMD column ordering, redone at every factorization (scipy takes no
    precomputed ordering). A METIS nested-dissection permutation (pymetis) applied symmetrically with
    SymmetricMode gave no less fill on these matrices (hBN, ~450 nonzeros a row) and slower solves."""

    name = "superlu"

    def __init__(self, is_complex: bool):
        self.dtype = np.complex128 if is_complex else np.float64

    def factorize(self, a: sp.spmatrix) -> "SuperLU":
        try:
            self._lu = spla.splu(sp.csc_matrix(a, dtype=self.dtype), permc_spec="COLAMD")
        except RuntimeError as exc:
            raise SingularError(str(exc)) from None
        return self

    def solve(self, b: np.ndarray) -> np.ndarray:
        return self._lu.solve(np.asarray(b, dtype=self.dtype))

    def release(self) -> None:
        self._lu = None


def available_backends() -> tuple[str, ...]:
    return tuple(b for b in BACKENDS if b != "pardiso" or _mkl() is not None)


def make_factorization(backend: str, is_complex: bool, single: bool = False, definite: bool = False):
    """An empty factorization object of ``backend`` ("auto": PARDISO when MKL is installed, else SuperLU).
    ``single``: single precision where the backend has it (PARDISO), for rough estimates only. ``definite``:
    the matrices will be positive definite (PARDISO then makes a Cholesky factor; SuperLU ignores it)."""
    if backend == "auto":
        backend = available_backends()[0]
    if backend == "pardiso":
        return PardisoLDL(is_complex, single, definite)
    if backend == "superlu":
        return SuperLU(is_complex)
    raise ValueError(f"unknown sparse solver {backend!r}; choose from auto, {', '.join(BACKENDS)}")

