"""Kernel polynomial method: DOS and Fermi level of structures too large to diagonalize. Energies in eV.

For the generalized problem H c = E S c (non-orthogonal atomic orbitals) the eigenvalues are those of
A = S^-1 H. Scaled into [-1, 1] as A' = (A - b) / a, the DOS is expanded in Chebyshev polynomials,

    rho(E) = 1 / (a pi sqrt(1 - x^2)) [g_0 mu_0 + 2 sum_{n>=1} g_n mu_n T_n(x)],   x = (E - b) / a,

with moments mu_n = Tr T_n(A') estimated stochastically (Hutchinson: mu_n ~ mean over R random +-1 vectors
r of r^T T_n(A') r, unbiased for any square matrix) and the Jackson kernel g_n, which makes rho positive
with a resolution of about pi a / N for N moments (Weisse et al., Rev. Mod. Phys. 78, 275 (2006)). Each
moment costs one sparse H product and one S solve; S is symmetric positive definite and well conditioned
in a minimal atomic basis (see :func:`overlap_inverse`: a dense Cholesky factor, a single-precision sparse
one, or block conjugate gradients). Error bars: the standard error of the mean over the random vectors.

The DOS counts states per eV of the matrix given (one k-point of a supercell, or summed over a k-mesh by
the caller), spin degeneracy included by ``spin_factor``; the integrated DOS has a closed form, so the Fermi
level follows from the electron count without a grid.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import scipy.sparse as sp

from deeph_jax.errors import DeephError


@dataclass(frozen=True)
class KPMMoments:
    """Chebyshev moments of one spectrum.

    Attributes:
        per_vector: (R, N) moments r^T T_n(A') r of each random vector (mu_0 = dimension for +-1 vectors).
        center, half_width: b and a of the scaling x = (E - b) / a, eV.
        dimension: matrix size (orbitals, x2 when spinful).
        seconds: wall time of the moments.
        timings: seconds per stage: "overlap" (S factor), "bounds" (Lanczos), "moments" (the recursion).
    """

    per_vector: np.ndarray
    center: float
    half_width: float
    dimension: int
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)

    @property
    def mean(self) -> np.ndarray:
        return self.per_vector.mean(axis=0)

    @property
    def n_moments(self) -> int:
        return self.per_vector.shape[1]


def jackson_kernel(n_moments: int) -> np.ndarray:
    """g_n, n = 0..N-1 (Weisse et al. eq. 71)."""
    n = np.arange(n_moments)
    q = math.pi / (n_moments + 1)
    return ((n_moments - n + 1) * np.cos(q * n) + np.sin(q * n) / math.tan(q)) / (n_moments + 1)


def resolution_eV(moments: KPMMoments) -> float:
    """Approximate energy resolution (std of the Jackson-broadened delta at the band centre), eV."""
    return math.pi * moments.half_width / moments.n_moments


def kernel_width_eV(moments: KPMMoments, energy: float) -> float:
    """Width (std) of the Jackson-broadened delta at ``energy`` (eV): pi / N in theta = arccos(x), so
    narrower towards the ends of the spectrum by sqrt(1 - x^2)."""
    x = (energy - moments.center) / moments.half_width
    return resolution_eV(moments) * math.sqrt(max(1.0 - x * x, 0.0))


# Lanczos steps for the spectral bounds: the extreme Ritz values of 30 steps miss hBN's spectrum by 0.13 % of
# its width at 9,800 atoms (60 steps: 0.04 %), inside the 5 % margin; each step costs an S solve
BOUND_STEPS = 30


def spectral_bounds(h: sp.spmatrix, s: sp.spmatrix, margin: float = 0.05, steps: int = BOUND_STEPS,
                    overlap: "OverlapInverse | None" = None) -> tuple[float, float]:
    """Lowest and highest generalized eigenvalue (eV), widened by ``margin`` of the width.

    ``steps`` of Lanczos in the S inner product: the extreme Ritz values converge first, and 30 steps put
    them well inside the 5 % margin (the moments check that the spectrum stays inside). ARPACK asked for
    a converged residual instead and needed hundreds of S solves per end at 10^4 atoms. ``overlap``: S^-1
    already made by :func:`overlap_inverse` (default: a new one)."""
    overlap = overlap or overlap_inverse(s)
    lo, hi = lanczos_extremes(lambda v: h @ v, overlap.matrix, overlap.solve, steps)
    return _widened(lo, hi, margin)


def _widened(lo: float, hi: float, margin: float) -> tuple[float, float]:
    pad = margin * (hi - lo)
    return lo - pad, hi + pad


def lanczos_extremes(apply_h, s, solve, steps: int, seed: int = 0) -> tuple[float, float]:
    """Extreme Ritz values after ``steps`` Lanczos steps with full reorthogonalization: of the pencil
    (H, S) in the S inner product, or of the standard problem of ``apply_h`` when ``solve`` is None (``s``
    then only gives the dimension and dtype). Every product is on whole vectors, so a distributed row-block
    S works as well."""
    n = s.shape[0]
    dtype = np.result_type(s.dtype, np.float64)
    times_s = (lambda v: s @ v) if solve is not None else (lambda v: v)  # noqa: E731
    solve = solve if solve is not None else (lambda v: v)  # noqa: E731
    q = np.random.default_rng(seed).standard_normal(n).astype(dtype)  # the same start on every process
    sq = times_s(q)
    norm = math.sqrt(float(np.vdot(q, sq).real))
    q, sq = q / norm, sq / norm
    basis, s_basis, alphas, betas = [], [], [], []
    for _ in range(min(steps, n)):
        hq = apply_h(q)
        alpha = float(np.vdot(q, hq).real)
        basis.append(q)
        s_basis.append(sq)
        alphas.append(alpha)
        su = hq - alpha * sq - (betas[-1] * s_basis[-2] if betas else 0.0)  # S u, from S A q = H q
        u = solve(hq) - alpha * q - (betas[-1] * basis[-2] if betas else 0.0)
        for _ in range(2):  # full reorthogonalization in the S inner product
            c = np.array([np.vdot(w, u) for w in s_basis])
            u = u - sum(ci * b for ci, b in zip(c, basis))
            su = su - sum(ci * b for ci, b in zip(c, s_basis))
        beta = math.sqrt(max(float(np.vdot(u, su).real), 0.0))
        if beta <= 1e-12 * max(abs(alpha), 1.0):
            break  # invariant subspace: the Ritz values are eigenvalues
        betas.append(beta)
        q, sq = u / beta, su / beta
    import scipy.linalg

    m = len(alphas)
    ritz = scipy.linalg.eigh_tridiagonal(np.array(alphas), np.array(betas[: m - 1]), eigvals_only=True)
    return float(ritz[0]), float(ritz[-1])


def overlap_inverse_sqrt(s, r: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """S^-1/2 r for an (n, R) block, by a Chebyshev expansion of x^-1/2 over S's spectrum (S products only,
    so it works on any matrix-like S with ``@``, a distributed row block too).

    The interval comes from a short Lanczos run on S, widened; the result is checked a posteriori
    (p(S) S p(S) r = r) and the interval widened again if S has eigenvalues the first one missed."""
    low, high = lanczos_extremes(lambda v: s @ v, s, None, 40, seed=1)
    if low <= 0:
        raise DeephError("overlap matrix is not positive definite")
    lo, hi = 0.8 * low, 1.05 * high
    for _ in range(4):
        apply = _chebyshev_inverse_sqrt(s, lo, hi, tol)
        z = apply(r)
        first, z0 = (r[:, :1], z[:, :1]) if r.ndim == 2 else (r, z)  # one column tells whether S fits [lo, hi]
        if np.linalg.norm(apply(s @ z0) - first) <= 1e3 * tol * np.linalg.norm(first):
            return z
        lo *= 0.5
    raise DeephError("S^-1/2 by Chebyshev expansion did not converge: the overlap matrix is (nearly) singular")


def _chebyshev_inverse_sqrt(s, lo: float, hi: float, tol: float):
    """x -> p(S) x with p the Chebyshev interpolant of t^-1/2 on [lo, hi], degree set by ``tol``."""
    from numpy.polynomial import chebyshev

    center, half = 0.5 * (hi + lo), 0.5 * (hi - lo)
    degree = 8
    while True:
        c = chebyshev.chebinterpolate(lambda x: (center + half * x) ** -0.5, degree)
        if np.abs(c[-3:]).max() <= tol * abs(c[0]) or degree > 4000:
            break
        degree *= 2
    keep = np.flatnonzero(np.abs(c) > 0.1 * tol * abs(c[0]))
    c = c[: keep[-1] + 1]

    def apply(x):
        t_prev, t = x, (s @ x - center * x) / half
        out = c[0] * t_prev + c[1] * t
        for ck in c[2:]:
            t_prev, t = t, 2.0 * (s @ t - center * t) / half - t_prev
            out = out + ck * t
        return out

    return apply


DENSE_S_MAX = 6000  # orbitals up to which S^-1 x uses a dense Cholesky factor when no sparse factor is at hand
DENSE_S_MAX_WITH_PARDISO = 1500  # with PARDISO: its single-precision factor solved 16 vectors 1.7x faster at 3,872
# |S_ij| below which the sparse route leaves an entry out of the factorized S. hBN, gth-szv, 10 A blocks: 54 % of
# S's entries go, the Cholesky factor has 38 % fewer entries (9,800 atoms), and the eigenvalues of (H, S) move by
# <= 0.05 meV within 3 eV of the Fermi level, <= 4 meV at the far ends of the spectrum (256 atoms, dense)
OVERLAP_DROP = 1e-5


@dataclass(frozen=True)
class OverlapInverse:
    """S^-1 as the Chebyshev recursion uses it (made by :func:`overlap_inverse`).

    Attributes:
        matrix: the S of the recursion: S itself, or (route "sparse-single") S without its entries below
            :data:`OVERLAP_DROP`, the matrix that is factorized.
        solve: x -> matrix^-1 x for (n,) vectors or (n, R) blocks.
        sample: r -> z with E[z z^H] = matrix^-1 when E[r r^H] = 1 (random +-1 r): the start vectors of a
            stochastic trace of a function of matrix^-1 H.
        route: "dense" (Cholesky), "sparse-single" (single-precision sparse Cholesky factor) or "cg" (Jacobi
            block conjugate gradients, and a Chebyshev series for S^-1/2).
    """

    matrix: object
    solve: Callable[[np.ndarray], np.ndarray]
    sample: Callable[[np.ndarray], np.ndarray]
    route: str


def overlap_route(s, dense_max_dim: int | None = None) -> str:
    """How :func:`overlap_inverse` applies S^-1: "dense" (Cholesky), "sparse-single" (single-precision
    sparse Cholesky factor, PARDISO) or "cg" (Jacobi block conjugate gradients: no MKL, or a distributed S)."""
    from deeph_jax.physics.sparse_solve import available_backends

    pardiso = sp.issparse(s) and "pardiso" in available_backends()
    if dense_max_dim is None:
        dense_max_dim = DENSE_S_MAX_WITH_PARDISO if pardiso else DENSE_S_MAX
    if sp.issparse(s) and s.shape[0] <= dense_max_dim:
        return "dense"
    return "sparse-single" if pardiso else "cg"


def overlap_inverse(s, dense_max_dim: int | None = None, tol: float = 1e-12) -> OverlapInverse:
    """S^-1 for the KPM recursion, by the route of :func:`overlap_route`.

    Small S: a dense Cholesky factor U^H U (SuperLU's many-right-hand-side solve is ~40x slower at 512
    orbitals); start vectors U^-1 r.

    Large sparse S with MKL: the single-precision Cholesky factor of S without its entries below
    :data:`OVERLAP_DROP`, used as it is: the recursion then runs on the pencil (H, S~) with S~ that matrix,
    whose eigenvalues differ from those of (H, S) by the dropped entries (see :data:`OVERLAP_DROP`) and by
    single-precision rounding (~1e-6 relative: micro-eV), far below any KPM resolution; each solve's rounding
    noise (~1e-6) stays that size through the stable Chebyshev recursion. A refinement step in double
    precision would cost a second solve and an S product per moment, the time of three H products at 10^5
    atoms. Start vectors: PARDISO's backward substitution alone, P L^-T r, half a solve.

    Otherwise (no MKL, or a distributed row block): Jacobi-preconditioned block CG to ``tol``, and
    S^-1/2 r by a Chebyshev series (:func:`overlap_inverse_sqrt`).
    """
    import scipy.linalg

    from deeph_jax.physics.sparse_solve import SingularError, make_factorization

    route = overlap_route(s, dense_max_dim)
    not_definite = DeephError("overlap matrix is not positive definite")
    if route == "dense":
        try:
            upper = scipy.linalg.cholesky(s.toarray(), lower=False)  # S = U^H U
        except np.linalg.LinAlgError:
            raise not_definite from None
        return OverlapInverse(s, lambda x: scipy.linalg.cho_solve((upper, False), x),
                              lambda r: scipy.linalg.solve_triangular(upper, r, lower=False), route)
    diag = s.diagonal().real
    if np.any(diag <= 0):
        raise DeephError("overlap matrix has a non-positive diagonal: not positive definite")
    if route == "sparse-single":
        kept = sp.csr_matrix(s, copy=True)
        kept.sum_duplicates()
        kept.data[np.abs(kept.data) < OVERLAP_DROP] = 0.0  # the diagonal (~1) stays
        kept.eliminate_zeros()
        try:
            factor = make_factorization("pardiso", np.iscomplexobj(kept.data), single=True, definite=True)
            factor.factorize(kept)
        except SingularError:
            raise not_definite from None
        dtype = np.result_type(kept.dtype, np.float64)
        return OverlapInverse(kept, lambda b: factor.solve(b).astype(np.result_type(b, dtype)),
                              lambda r: factor.solve_backward(r).astype(np.result_type(r, dtype)), route)
    s = sp.csr_matrix(s) if sp.issparse(s) else s  # or any matrix-like with @ (a distributed row block)
    inv_diag = 1.0 / diag
    return OverlapInverse(s, lambda b: block_cg(s, np.asarray(b), inv_diag, tol),
                          lambda r: overlap_inverse_sqrt(s, r), route)


def default_vectors(dimension: int) -> int:
    """Random vectors for a trace of this dimension: the relative error of each moment falls as
    1 / sqrt(R dimension), so large matrices need few; 16 up to ~4,000 orbitals, then ~65,000 / dimension,
    at least 2 (for an error bar)."""
    return int(min(16, max(2, math.ceil(65000 / dimension))))


def block_cg(a: sp.spmatrix, b: np.ndarray, inv_diag: np.ndarray, tol: float = 1e-12, max_iter: int = 1000):
    """Jacobi-preconditioned conjugate gradients on every column of ``b`` at once (one sparse product
    per iteration for all columns); relative residual ``tol`` per column."""
    vector = b.ndim == 1
    b = b[:, None] if vector else b
    x = np.zeros_like(b, dtype=np.result_type(b, a.dtype))
    r = b.astype(x.dtype, copy=True)
    z = inv_diag[:, None] * r
    p = z.copy()
    rz = np.sum(r.conj() * z, axis=0)
    norm_b = np.linalg.norm(b, axis=0)
    norm_b[norm_b == 0] = 1.0
    for _ in range(max_iter):
        ap = a @ p
        alpha = rz / np.sum(p.conj() * ap, axis=0)
        x += alpha * p
        r -= alpha * ap
        if np.all(np.linalg.norm(r, axis=0) <= tol * norm_b):
            break
        z = inv_diag[:, None] * r
        rz_new = np.sum(r.conj() * z, axis=0)
        p = z + (rz_new / rz) * p
        rz = rz_new
    else:
        raise DeephError(f"conjugate gradients on the overlap matrix did not converge in {max_iter} iterations")
    return x[:, 0] if vector else x


def kpm_moments(h: sp.spmatrix, s: sp.spmatrix, n_moments: int = 400, n_vectors: int = 16, seed: int = 0,
                bounds: tuple[float, float] | None = None, progress: bool = False,
                overlap: OverlapInverse | None = None) -> KPMMoments:
    """Stochastic Chebyshev moments of H c = E S c.

    Args:
        h, s: sparse Hermitian H (eV) and S of one k-point (real at time-reversal-invariant k).
        n_moments: N; resolution ~ pi (E_max - E_min) / (2 N).
        n_vectors: R random +-1 vectors; the error of each moment falls as 1 / sqrt(R dimension).
        bounds: (E_min, E_max) in eV enclosing the spectrum (default: Lanczos, widened by 5 %).
        overlap: S^-1 made by :func:`overlap_inverse` (default: made here).

    The trace is sampled with z = C^-H r (r random +-1, S = C^H C: Cholesky or S^1/2), so that E[z z^H] = S^-1
    and mu_n = E[z^H S T_n(A') z] = E[r^H T_n(C^-H H C^-1) r]: Hutchinson's estimator of H in an orthogonal
    basis. A' = S^-1 H is self-adjoint in the S inner product, so T_2n = 2 T_n^2 - 1 and T_2n+1 = 2 T_n+1 T_n - T_1
    give two moments per product (Weisse et al. sec. II.D): (N - 1) / 2 H products and S solves instead of
    N - 1. S v_n is carried by the same recursion (S A' v = (H v - b S v) / a), so it costs no S product.
    """
    if n_moments < 2 or n_vectors < 1:
        raise DeephError(f"KPM needs >= 2 moments and >= 1 random vector, got {n_moments} and {n_vectors}")
    from deeph_jax.physics.threaded import row_split

    t0 = time.perf_counter()
    h = row_split(sp.csr_matrix(h)) if sp.issparse(h) else h
    overlap = overlap or overlap_inverse(s)
    timings = {"overlap": time.perf_counter() - t0}
    given = bounds is not None
    if not given:  # once, for both margins
        ends = lanczos_extremes(lambda v: h @ v, overlap.matrix, overlap.solve, BOUND_STEPS)
        timings["bounds"] = time.perf_counter() - t0 - timings["overlap"]
    for margin in (0.05, 0.25):
        lo, hi = bounds if given else _widened(*ends, margin)
        t1 = time.perf_counter()
        out = _moments(h, overlap, 0.5 * (hi + lo), 0.5 * (hi - lo), n_moments, n_vectors, seed, progress)
        timings["moments"] = timings.get("moments", 0.0) + time.perf_counter() - t1
        # |r^H T_n(X) r| <= r^H r for a Hermitian X with its spectrum in [-1, 1]: larger moments mean
        # the bounds missed part of the spectrum and the series grows without bound
        if np.all(np.abs(out) <= (1 + 1e-6) * out[:, :1]):
            return KPMMoments(out, 0.5 * (hi + lo), 0.5 * (hi - lo), h.shape[0], time.perf_counter() - t0, timings)
        if given:
            break
    raise DeephError(f"the KPM spectral bounds [{lo:.3f}, {hi:.3f}] eV do not enclose the spectrum "
                     "(the moments grow): give wider bounds")


def _moments(h, overlap: OverlapInverse, center: float, half: float, n_moments: int, n_vectors: int, seed: int,
             progress: bool) -> np.ndarray:
    """(R, N) moments z^H S T_n(A') z, z = C^-H r, two per H product (see :func:`kpm_moments`)."""
    rng = np.random.default_rng(seed)
    r = rng.choice([-1.0, 1.0], size=(h.shape[0], n_vectors))
    dot = lambda x, y: np.einsum("ij,ij->j", x.conj(), y).real  # noqa: E731  (per column)
    s, solve = overlap.matrix, overlap.solve

    v_prev = overlap.sample(r)  # v_0 = z
    w_prev = s @ v_prev  # w_n = S v_n
    u = (h @ v_prev - center * w_prev) / half  # S A' v_0
    v, w = solve(u), u
    out = np.empty((n_vectors, n_moments))
    out[:, 0] = dot(v_prev, w_prev)
    out[:, 1] = dot(v, w_prev)
    mu0, mu1 = out[:, 0].copy(), out[:, 1].copy()
    from tqdm import tqdm

    steps = n_moments // 2  # v_1 .. v_m give mu_0 .. mu_2m, and 2m >= N - 1
    for m in tqdm(range(1, steps + 1), desc="KPM moments", unit="step", disable=not progress):
        # here v = v_m, w = S v_m; v_prev = v_(m-1), w_prev = S v_(m-1)
        if 2 * m < n_moments:
            out[:, 2 * m] = 2.0 * dot(v, w) - mu0
        if 2 * m - 1 < n_moments and m > 1:
            out[:, 2 * m - 1] = 2.0 * dot(v, w_prev) - mu1
        if m == steps:
            break
        u = (h @ v - center * w) / half
        v_prev, v = v, 2.0 * solve(u) - v_prev
        w_prev, w = w, 2.0 * u - w_prev
    return out


def moments_for_resolution(half_width_eV: float, resolution_eV_: float, max_moments: int = 20000) -> int:
    """Moments N whose Jackson resolution pi a / N reaches ``resolution_eV_``, at least 64."""
    n = int(math.ceil(math.pi * half_width_eV / resolution_eV_))
    if n > max_moments:
        raise DeephError(f"a KPM resolution of {resolution_eV_:g} eV over a spectrum of half-width "
                         f"{half_width_eV:.1f} eV needs {n} moments (over {max_moments}): use a larger --sigma")
    return max(64, n)


def kpm_moments_mesh(pairs, n_moments: int | None = None, resolution: float | None = None, n_vectors: int = 16,
                     seed: int = 0, progress: bool = False, bounds: tuple[float, float] | None = None) -> KPMMoments:
    """Moments per cell averaged over k-points: ``pairs`` is a list of sparse (H(k), S(k)), equal weights.

    All k-points share the spectral bounds (their union, or ``bounds`` in eV), so their moments add; give
    ``n_moments`` or the ``resolution`` (eV) it should reach. The random vectors are drawn anew per k (seed + k
    index)."""
    lo, hi = (np.inf, -np.inf) if bounds is None else bounds
    for h, s in pairs if bounds is None else []:
        a, b = spectral_bounds(h, s)
        lo, hi = min(lo, a), max(hi, b)
    if n_moments is None:
        n_moments = moments_for_resolution(0.5 * (hi - lo), resolution)
    t0 = time.perf_counter()
    per_k = [kpm_moments(h, s, n_moments, n_vectors, seed + i, bounds=(lo, hi), progress=progress)
             for i, (h, s) in enumerate(pairs)]
    timings = {stage: sum(m.timings.get(stage, 0.0) for m in per_k) for stage in ("overlap", "moments")}
    return KPMMoments(np.mean([m.per_vector for m in per_k], axis=0), 0.5 * (hi + lo), 0.5 * (hi - lo),
                      pairs[0][0].shape[0], time.perf_counter() - t0, timings)


def _chebyshev_terms(moments: KPMMoments, energies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = (np.asarray(energies, dtype=np.float64) - moments.center) / moments.half_width
    if np.any(np.abs(x) >= 1):
        raise DeephError("energies outside the KPM spectral bounds "
                         f"[{moments.center - moments.half_width:.3f}, {moments.center + moments.half_width:.3f}] eV")
    theta = np.arccos(x)
    return x, theta


def kpm_dos(moments: KPMMoments, energies: np.ndarray, spin_factor: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """DOS (states/eV, spin included) on ``energies`` (eV) and its standard error over the random vectors."""
    x, theta = _chebyshev_terms(moments, energies)
    g = jackson_kernel(moments.n_moments)
    coef = moments.per_vector * g[None, :]
    coef[:, 1:] *= 2.0
    cos_n = np.cos(np.outer(np.arange(moments.n_moments), theta))  # T_n(x) = cos(n theta)
    per = coef @ cos_n / (math.pi * np.sqrt(1.0 - x**2) * moments.half_width) * spin_factor
    err = per.std(axis=0, ddof=1) / math.sqrt(per.shape[0]) if per.shape[0] > 1 else np.zeros(len(x))
    return per.mean(axis=0), err


def kpm_integrated_dos(moments: KPMMoments, energies: np.ndarray, spin_factor: float = 2.0,
                       per_vector: bool = False) -> np.ndarray:
    """States below each energy (spin included): the exact integral of the Jackson-smoothed DOS;
    (R, n_E) per random vector with ``per_vector``."""
    _, theta = _chebyshev_terms(moments, energies)
    g = jackson_kernel(moments.n_moments)
    mu = (moments.per_vector if per_vector else moments.mean[None, :]) * g[None, :]
    n = np.arange(1, moments.n_moments)
    series = mu[:, 1:] @ (np.sin(np.outer(n, theta)) / n[:, None])
    out = spin_factor * (mu[:, :1] * (math.pi - theta)[None, :] - 2.0 * series) / math.pi
    return out if per_vector else out[0]


@dataclass(frozen=True)
class KPMFermi:
    """Fermi level from KPM (eV).

    Attributes:
        fermi_eV: the middle of the gap for an insulator, else where the integrated DOS reaches the count.
        gap_eV: (lower, upper) band edges where the smoothed DOS is half its height next to the gap (see
            :func:`kpm_fermi_level`), or None for a metal.
        count_error: standard error of the integrated DOS at the Fermi level, states.
    """

    fermi_eV: float
    gap_eV: tuple[float, float] | None
    count_error: float


def kpm_fermi_level(moments: KPMMoments, n_electrons: float, spin_factor: float = 2.0,
                    step: float = 0.002) -> KPMFermi:
    """Fermi level from the integrated DOS and the electron count.

    A stochastic trace counts states with an error that grows as sqrt(dimension), so the count inside a
    gap is not exactly the electron number and "where the count is reached" can land inside a band.
    Instead: find the energy where the count is reached; then the low-DOS intervals (below 1 % of the mean
    DOS) whose counts lie within 5 standard errors (and 0.5 % of all states) of the electron number; when
    there is one, the system is an insulator and the Fermi level is the middle of the widest, between band
    edges placed by :func:`_half_height_edge`; otherwise the crossing point is the Fermi level of a metal.
    ``step``: scan grid, eV."""
    lo = moments.center - moments.half_width * 0.999
    hi = moments.center + moments.half_width * 0.999
    grid = np.arange(lo, hi, step)
    per = kpm_integrated_dos(moments, grid, spin_factor, per_vector=True)
    counts = per.mean(axis=0)
    errors = per.std(axis=0, ddof=1) / math.sqrt(per.shape[0]) if per.shape[0] > 1 else np.zeros(len(grid))
    if not counts[0] < n_electrons < counts[-1]:
        raise DeephError(f"{n_electrons} electrons outside the KPM spectrum's 0..{counts[-1]:.1f} states")
    k = int(np.argmax(counts >= n_electrons))
    crossing = float(grid[k])
    dos, _ = kpm_dos(moments, grid, spin_factor)
    threshold = 0.01 * counts[-1] / (hi - lo)
    low = dos < threshold
    best = None
    if low.any():
        idx = np.flatnonzero(low)
        for run in np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1):
            inside = counts[run].mean()
            tolerance = max(5 * errors[run].mean(), 0.005 * counts[-1] / spin_factor, 0.5)
            wide = grid[run[-1]] - grid[run[0]] > 2 * resolution_eV(moments)
            if wide and abs(inside - n_electrons) <= tolerance and (best is None or len(run) > len(best)):
                best = run
    if best is not None:
        e0 = _half_height_edge(moments, float(grid[best[0]]), -1, spin_factor, threshold)
        e1 = _half_height_edge(moments, float(grid[best[-1]]), +1, spin_factor, threshold)
        mid = int(best[len(best) // 2])
        return KPMFermi(0.5 * (e0 + e1), (e0, e1), float(errors[mid]))
    return KPMFermi(crossing, None, float(errors[k]))


EDGE_WIDTHS = 2.0  # kernel widths into the band at which an edge's height is read: a smoothed step has risen 98 %


def _half_height_edge(moments: KPMMoments, end: float, side: int, spin_factor: float, floor: float) -> float:
    """The band edge next to ``end``, an end of a low-DOS interval (side -1: the band below, +1: above): where
    the smoothed DOS is half its value ``EDGE_WIDTHS`` kernel widths inside the band.

    For a step in the DOS (the band edge of a 2D crystal) smoothed by a symmetric kernel that is the step
    itself, whatever its height; a fixed DOS threshold instead lands inside the gap by an amount that depends
    on the height, and the middle of the gap moves by half the difference of the two sides (hBN at 9,800
    atoms, 400 moments: +13 meV by a threshold, +3 meV by half heights, from exact moments). Edges of other
    shapes move by about the same on both sides, which leaves the middle. ``end`` itself when the DOS inside
    is below ``floor`` (no band there)."""
    inner = end + side * EDGE_WIDTHS * kernel_width_eV(moments, end)
    inner = float(np.clip(inner, moments.center - 0.999 * moments.half_width, moments.center + 0.999 * moments.half_width))
    energies = np.linspace(inner, end, 200)
    dos, _ = kpm_dos(moments, energies, spin_factor)
    if dos[0] <= floor:
        return end
    return float(energies[int(np.argmax(dos <= 0.5 * dos[0]))])


def exact_moments(eigenvalues: np.ndarray, center: float, half_width: float, n_moments: int) -> np.ndarray:
    """mu_n = sum_i T_n(x_i) from known eigenvalues (eV): the reference a stochastic estimate converges to."""
    theta = np.arccos((np.asarray(eigenvalues, dtype=np.float64).ravel() - center) / half_width)
    return np.cos(np.outer(np.arange(n_moments), theta)).sum(axis=1)


__all__ = ["KPMFermi", "KPMMoments", "exact_moments", "jackson_kernel", "kpm_dos", "kpm_fermi_level", "kpm_integrated_dos",
           "default_vectors", "kernel_width_eV", "kpm_moments", "lanczos_extremes", "OverlapInverse", "overlap_inverse",
           "overlap_inverse_sqrt", "resolution_eV", "overlap_route", "spectral_bounds"]
