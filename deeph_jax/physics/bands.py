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

from deeph_jax.errors import DeephError
from deeph_jax.physics.lanczos import RitzPairs, block_lanczos
from deeph_jax.physics.sparse_solve import SingularError, make_factorization
from deeph_jax.physics.threaded import row_split

logger = logging.getLogger(__name__)

S_FIXES = ("the usual fixes: check that overlap.h5 belongs to this structure and keeps every block within the "
           "cutoff (both (i, j, R) and (j, i, -R)), or drop near-linearly-dependent (diffuse) basis functions")


def _fmt_k(k) -> str:
    if k is None:
        return "(given)"
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


# A side of sigma whose nearest state is farther than this is a gap edge, solved from a shift next to it.
EDGE_GAP_EV = 0.1
# The edge shift sits this far from the edge's estimate toward sigma (at most half way).
EDGE_OFFSET_EV = 0.01
# The rough pass at sigma stops when both edge estimates moved less than this in a block step (the
# estimates creep toward the edge from inside the band; ~20 meV from it when they crawl this slowly).
EDGE_SETTLED_EV = 0.005
ROUGH_STEPS = (4, 30)  # fewest and most block steps of the rough pass
ROUGH_SINGLE_MIN = 20_000  # matrices at least this large get a single-precision factorization for the rough pass
MAX_RESTARTS = 20


def single_precision_rough(factor, n: int) -> bool:
    """Whether the rough pass that locates the band edges gets its own single-precision factorization
    (PARDISO, matrices of ROUGH_SINGLE_MIN rows or more) instead of reusing ``factor``."""
    return factor.name == "pardiso" and n >= ROUGH_SINGLE_MIN


def _factor_pair(solver: str, is_complex: bool, n: int):
    """(factor, rough factor) for :func:`solve_shift_invert` on n x n matrices: the rough pass gets its own
    single-precision PARDISO factor where :func:`single_precision_rough` says so, else shares ``factor``."""
    f = make_factorization(solver, is_complex)
    return f, make_factorization("pardiso", is_complex, single=True) if single_precision_rough(f, n) else f


def _start_block(n: int, width: int, dtype, v0=None, seed: int = 0) -> np.ndarray:
    """A start block (n, width): the columns of ``v0`` (a neighbouring k's eigenvectors) first, random after."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, width))
    if np.issubdtype(dtype, np.complexfloating):
        x = x + 1j * rng.standard_normal((n, width))
    if v0 is not None:
        v0 = np.asarray(v0).reshape(n, -1)[:, :width]
        x[:, : v0.shape[1]] = v0 if np.issubdtype(dtype, np.complexfloating) else v0.real
    return x.astype(dtype)


def solve_shift_invert(h: sp.spmatrix, s: sp.spmatrix, sigma: float, n_bands: int, k=None, path=None, tol: float = 1e-9,
                       solver: str = "auto", factor=None, v0: np.ndarray | None = None, vectors: bool = False,
                       block: int | None = None, slicing: bool = True, stats: dict | None = None,
                       rough_factor=None, edges: tuple[float, float] | None = None):
    """The ``n_bands`` eigenvalues closest to ``sigma`` (eV), ascending, by shift-invert block Lanczos.

    Inside a gap (an insulator's E_F) the wanted states crowd at the two band edges, ~gap / 2 from sigma,
    where 1 / (e - sigma) barely separates them from the next ones (9,800-atom hBN: ARPACK took 935
    solves). So a few block steps at sigma locate the edges, and each needed side is then solved from a
    shift just inside the gap next to its edge (one more factorization each, ~7x fewer solves). In real
    arithmetic the inertia of the factorizations (Sylvester) checks that no state between the shifts was
    missed; otherwise, or with ``slicing=False``, or when states lie near sigma (a metal), the Lanczos runs
    at sigma.

    Args:
        tol: relative residual of nu = 1 / (e - sigma) at convergence; eigenvalue errors are below
            tol * |e - sigma| and in practice ~1e-14 eV.
        solver: "auto" (PARDISO when MKL is installed, else SuperLU), "pardiso" or "superlu".
        factor: a factorization object from :func:`~deeph_jax.physics.sparse_solve.make_factorization`
            to reuse its ordering and symbolic analysis (same sparsity pattern, e.g. another k).
        v0: (n,) or (n, m) start vectors: the eigenvectors of a neighbouring k-point.
        vectors: also return the S-orthonormal eigenvectors (n, n_bands).
        block: Lanczos block size (default n_bands / 2 + 2, at least 8: PARDISO solves 20 right-hand sides
            for 1.3x the time of 10; 12 and 20 took the same time at 9,800 atoms).
        stats: filled with the shifts, the number of solves and the Lanczos steps.
        rough_factor: the factorization for the rough pass that locates the edges (default: a single-precision
            PARDISO one for matrices of ROUGH_SINGLE_MIN rows or more, else ``factor``); reusable across k.
        edges: (highest state below sigma, lowest above), eV, of a neighbouring k (``stats["edges"]`` of its
            solve): along a band path the edges move little from one k to the next, so the shifts go next to
            them at once and the rough pass is skipped. Both sides are then solved, and in real arithmetic
            the inertia at the two shifts must count the states found between them; complex H has no
            inertia, so there no state may lie between a shift and sigma and each edge must have moved by
            less than half its slice's radius. A failed check falls back to the rough pass.

    ``stats["edges"]`` receives this k's edges when sigma lies in a gap.
    """
    n = h.shape[0]
    if n_bands >= n - 1:
        raise DeephError(f"--nbands {n_bands} needs a matrix larger than {n}: use the dense solver", path)
    h, s = h.tocsr(), s.tocsr()
    is_complex = np.iscomplexobj(h.data) or np.iscomplexobj(s.data)
    dtype = np.complex128 if is_complex else np.float64
    if factor is None:
        factor = make_factorization(solver, is_complex)
        logger.info("sparse shift-invert with %s", factor.name)
    stats = {} if stats is None else stats
    stats.update(shifts=[], solves=0, steps=0, passes=[])
    width = min(block or max(8, n_bands // 2 + 2), max(1, (n - 1) // 4))
    own_rough = rough_factor is None
    if own_rough:
        single = slicing and single_precision_rough(factor, n)
        rough_factor = make_factorization("pardiso", is_complex, single=True) if single else factor

    same_pattern = h.has_canonical_format and s.has_canonical_format and np.array_equal(h.indptr, s.indptr) \
        and np.array_equal(h.indices, s.indices)

    def shifted(shift: float) -> sp.csr_matrix:  # H - shift S, on H's pattern when S shares it (no sparse add)
        if same_pattern:
            return sp.csr_matrix((h.data - shift * s.data, h.indices, h.indptr), shape=h.shape)
        return (h - shift * s).tocsr()

    def factor_at(shift: float, factor=factor):
        try:
            factor.factorize(shifted(shift))
        except SingularError as exc:  # exactly singular: the shift is an eigenvalue
            raise DeephError(f"H - sigma S is singular at k = {_fmt_k(k)} (sigma {shift:.6f} eV, {exc}); move "
                             f"--sigma slightly", path) from None
        stats["shifts"].append(float(shift))
        return getattr(factor, "n_negative", None)

    def lanczos(start, factor=factor, **kw):
        def solve(b):
            return np.asarray(factor.solve(np.asarray(b, dtype=factor.dtype)), dtype=dtype)

        out = block_lanczos(s, solve, start, n_bands, tol, **kw)
        stats["solves"] += out.solves
        stats["steps"] += out.steps
        stats["passes"].append({"shift_eV": stats["shifts"][-1], "steps": out.steps, "solves": out.solves})
        return out

    if slicing and edges is not None and min(abs(edges[0] - sigma), abs(edges[1] - sigma)) >= EDGE_GAP_EV:
        sides = _sides_from_edges(edges, sigma, n, width, dtype, v0)
        result = _edge_slices(sides, sigma, n_bands, None, factor_at, lanczos, tol, both=True)
        if result is not None:
            return _finish(result, sigma, stats, vectors)
        logger.info("the previous k's band edges did not hold at k = %s; locating them anew", _fmt_k(k))

    below_sigma = factor_at(sigma, rough_factor)
    rough = lanczos(_start_block(n, width, dtype, v0), rough_factor, min_steps=ROUGH_STEPS[0],
                    max_steps=ROUGH_STEPS[1], until=_edges_settled(sigma) if slicing else None)
    final = rough_factor is factor  # a single-precision rough pass locates edges, it is never the answer
    if own_rough and not final:
        rough_factor.release()  # at 10^5 atoms its factor is ~5 GB
    result = None
    if slicing and not (final and _converged(rough, n_bands, tol)):
        sides = _sides_from_rough(rough, sigma, width)
        if sides is not None:
            result = _edge_slices(sides, sigma, n_bands, below_sigma, factor_at, lanczos, tol)
    if result is None:
        if stats["shifts"][-1] != sigma or not final:
            factor_at(sigma)
        pairs = rough if final else lanczos(rough.vectors(max(width, n_bands)))
        for _ in range(MAX_RESTARTS):
            if _converged(pairs, n_bands, tol):
                break
            pairs = lanczos(pairs.vectors(max(width, n_bands)))  # thick restart from the best Ritz vectors
        if not _converged(pairs, n_bands, tol):
            raise DeephError(f"shift-invert Lanczos did not converge at k = {_fmt_k(k)} (residual "
                             f"{pairs.residual[:n_bands].max():.1e}); S(k) may not be positive definite: {S_FIXES}",
                             path)
        result = pairs.energies(sigma)[:n_bands], pairs.vectors(n_bands)
    return _finish(result, sigma, stats, vectors)


def _finish(result, sigma: float, stats: dict, vectors: bool):
    """Sort the (energies, vectors) found, record this k's band edges around sigma in ``stats``."""
    energies, vecs = result
    order = np.argsort(energies)
    below, above = energies[energies < sigma], energies[energies > sigma]
    stats["edges"] = (float(below.max()), float(above.min())) if len(below) and len(above) else None
    return (energies[order], vecs[:, order]) if vectors else energies[order]


def _edges_settled(sigma: float):
    """A stopping rule for the rough pass: the nearest Ritz value on each side of sigma (or a state near
    sigma, when there is no gap to find) moved less than EDGE_SETTLED_EV since the last step."""
    last = {}

    def until(nu, residual) -> bool:
        e = sigma + 1.0 / nu
        below, above = e[e < sigma], e[e > sigma]
        edges = np.array([below.max() if len(below) else -np.inf, above.min() if len(above) else np.inf])
        if np.any(np.abs(edges - sigma) < EDGE_GAP_EV):
            return True
        moved = np.abs(edges - last.get("edges", np.full(2, np.nan)))
        last["edges"] = edges
        return bool(np.all(moved < EDGE_SETTLED_EV))

    return until


def _converged(pairs: RitzPairs, n_wanted: int, tol: float) -> bool:
    m = min(n_wanted, len(pairs.nu))
    return m == n_wanted and bool(np.all(pairs.residual[:m] <= tol * np.abs(pairs.nu[:m])))


def _sides_from_rough(rough: RitzPairs, sigma: float, width: int) -> dict | None:
    """Per side of sigma: (distance of its edge from sigma, at least; the shift next to the edge; start
    vectors), from the rough pass's Ritz pairs; None when sigma is not inside a gap."""
    e = rough.energies(sigma)
    err = rough.energy_errors()
    sides = {}
    for side, mask in (("valence", e < sigma), ("conduction", e > sigma)):
        if not mask.any():
            return None
        i = np.flatnonzero(mask)[np.argmin(np.abs(e[mask] - sigma))]
        distance = abs(e[i] - sigma)
        if distance < EDGE_GAP_EV:
            return None  # states near sigma: no gap to slice
        # Ritz values lie inside the band (interlacing): the edge is between e[i] and e[i] + err[i] toward
        # sigma. A shift a little inside the band is fine (the slice reaches both ways; the checks below
        # catch a miss), and much better separated than one err[i] (a loose bound) into the gap.
        offset = min(EDGE_OFFSET_EV, 0.5 * distance)
        shift = e[i] + offset if side == "valence" else e[i] - offset
        sides[side] = (distance - err[i], shift, lambda mask=mask: rough.vectors(np.flatnonzero(mask)[:width]))
    return sides


def _sides_from_edges(edges: tuple[float, float], sigma: float, n: int, width: int, dtype, v0) -> dict:
    """Per side of sigma as :func:`_sides_from_rough`, from a neighbouring k's edges; the start block is that
    k's eigenvectors (``v0``, if given) and random columns."""
    sides = {}
    for side, edge in (("valence", edges[0]), ("conduction", edges[1])):
        distance = abs(edge - sigma)
        offset = min(EDGE_OFFSET_EV, 0.5 * distance)
        shift = edge + offset if side == "valence" else edge - offset
        sides[side] = (distance, shift, lambda: _start_block(n, width, dtype, v0))
    return sides


def _edge_slices(sides: dict, sigma: float, n_bands: int, below_sigma, factor_at, lanczos, tol: float,
                 both: bool = False):
    """The ``n_bands`` states nearest sigma from shifts next to the band edges of ``sides``
    (:func:`_sides_from_rough`), or None when a check fails (the caller then solves otherwise).

    Checks: with the inertia at sigma (``below_sigma``), each shift's inertia must count the states found
    between it and sigma; without it (``both``: every side is solved), the two shifts' inertias must count
    the states found between them; in every case the slices must reach the n_bands-th state from sigma."""
    found, vecs, reach, counted = [], [], {}, []
    for side in sorted(sides, key=lambda x: sides[x][0]):  # the nearer edge first
        if found and not both:  # the other side is needed only if its edge is nearer than the n_bands-th state
            kth = np.sort(np.abs(np.concatenate(found) - sigma))[min(n_bands, sum(map(len, found))) - 1]
            if sum(map(len, found)) >= n_bands and kth < sides[side][0]:
                break
        _, shift, start = sides[side]
        below_shift = factor_at(shift)
        pairs = lanczos(start())
        if not _converged(pairs, n_bands, tol):
            return None
        vals = pairs.energies(shift)[:n_bands]
        keep = vals < sigma if side == "valence" else vals > sigma
        # the slice covers [shift - rho, shift + rho]: every state of this side from the edge out to rho
        rho = np.abs(vals - shift).max()
        lo, hi = sorted((shift, sigma))
        between = np.count_nonzero((vals >= lo) & (vals < hi))  # states found between shift and sigma
        if below_sigma is not None and below_shift is not None:  # Sylvester: states between shift and sigma
            if abs(below_sigma - below_shift) != between:
                logger.warning("edge slicing missed a state between %.4f and %.4f eV; solving at sigma", lo, hi)
                return None
        if both and below_shift is None and not _edge_held(between, vals, sigma, sides[side][0], rho):
            logger.info("the previous k's %s edge moved too far to trust without inertia", side)
            return None
        counted.append((below_shift, between))
        found.append(vals[keep])
        vecs.append(pairs.vectors(n_bands)[:, keep])
        reach[side] = abs(shift - sigma) + rho
    if below_sigma is None and len(counted) == 2 and None not in (counted[0][0], counted[1][0]):
        if abs(counted[0][0] - counted[1][0]) != counted[0][1] + counted[1][1]:
            logger.warning("edge slicing from the previous k's edges missed a state between the shifts")
            return None
    vals, vecs = np.concatenate(found), np.hstack(vecs)
    pick = np.argsort(np.abs(vals - sigma), kind="stable")[:n_bands]
    if len(pick) < n_bands or any(np.abs(vals[pick] - sigma).max() > r for r in reach.values()):
        logger.info("edge slices do not reach the %d-th state from sigma; solving at sigma", n_bands)
        return None
    return vals[pick], vecs[:, pick]


def _edge_held(between: int, vals: np.ndarray, sigma: float, old_distance: float, rho: float) -> bool:
    """Without inertia (complex H), whether a slice placed from a neighbouring k's edge can be trusted: no
    state found between the shift and sigma (``between``; else the edge moved into the gap, and further
    states may lie beyond the slice), and this k's edge within rho / 2 of the neighbour's (bands move
    continuously along a path; a jump comparable to the slice's radius is where a faster band could have
    passed it unseen)."""
    return between == 0 and abs(np.abs(vals - sigma).min() - old_distance) <= 0.5 * rho


def bloch_pencil(data, k) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Sparse Hermitian H(k), S(k) of a DeephStructure (spinful: S doubled), real where the phases allow."""
    offsets, spinful = data.atom_offsets, data.spinful
    trim = is_time_reversal_point(k)
    real_h = trim and not data.hamiltonian.is_complex
    h = data.hamiltonian.bloch_sparse(k, offsets, spinful, hermitize=True, real=real_h)
    if not spinful:
        data.overlap.share_pattern(data.hamiltonian)
    s = data.overlap.bloch_sparse(k, offsets, False, hermitize=True, real=trim)
    if spinful:
        s = sp.block_diag([s, s], format="csr")
    return h, s


# Along a path, a k whose Davidson needed more iterations than this refactorizes the preconditioner at the next k.
# 72-atom hBN sheet: 10-11 iterations a k with fresh factorizations, 10-17 with ones from up to 9 k before; at
# 9,800 atoms (2 threads) a single-precision complex factorization took ~7 s and an iteration ~1.3 s, so
# they are renewed rarely.
TRACK_REFRESH_ITERATIONS = 16
TRACK_MAX_ITERATIONS = 15  # Davidson iterations before refactorizing at this k (then a full shift-invert solve)
TRACK_GUARD = 4  # Ritz pairs beyond the wanted ones followed along the path
TRACK_OFFSET_MIN_EV = 0.001  # the closest a preconditioner's shift comes to its band edge
NEAR_START_ITERATIONS = 6  # Davidson iterations from the near-range pencil's rough start before its edges are used


class PathTracker:
    """Follows the ``n_bands`` states nearest sigma from one k of a path to the next by block Davidson
    (:func:`deeph_jax.physics.davidson.davidson_nearest`): the previous k's eigenvectors start it, and
    factorizations of H - shift S made at an earlier k, next to each band edge, precondition it. They are
    renewed when Davidson slows down (the k-point moved away from theirs); the first k, and any k where
    Davidson fails even with fresh factorizations, gets the full shift-invert solve.

    At 9,800 atoms (2 threads) a single-precision complex factorization took ~7 s and a Davidson iteration
    ~1.3 s; a 40-point path made 14 factorizations after its first k instead of two or three at every k.
    Single-precision factorizations (PARDISO) serve as preconditioners: Davidson's residuals are computed with
    the exact H and S in double precision, so the answer does not depend on the preconditioner's precision.

    Without inertia (complex H) nothing counts the states between the shifts; the guard pairs, the
    ``TRACK_GUARD`` states just outside the wanted window, are followed too, so that a band entering the
    window along the path is already in the basis. Steps along the path must be small enough that bands move
    by less than the guards' spread in one step (40-point paths of a large supercell are).
    """

    def __init__(self, sigma: float, n_bands: int, solver: str = "auto", tol_eV: float = 1e-5):
        self.sigma, self.n_bands, self.solver, self.tol_eV = sigma, n_bands, solver, tol_eV
        self.vectors = None  # (n, m) the previous k's Ritz vectors
        self.edges = None  # (highest state below sigma, lowest above) of the previous k; None for a side without
        self.factors = None  # {side: (shift, factorization)}
        self.refresh = True
        self.spreads = (None, None)  # energy spread (eV) of the wanted states below and above sigma
        self._full = {}  # per arithmetic: (factor, rough factor) of the full solve, analysis reused across k

    def _precondition(self, r: np.ndarray, theta: np.ndarray) -> np.ndarray:
        out = np.empty(r.shape, dtype=np.result_type(r.dtype, np.float64))
        for side, mask in (("valence", theta < self.sigma), ("conduction", theta >= self.sigma)):
            if mask.any():
                f = (self.factors.get(side) or next(iter(self.factors.values())))[1]  # a side without states: the other
                b = r[:, mask]
                if np.iscomplexobj(b) and not np.issubdtype(f.dtype, np.complexfloating):
                    out[:, mask] = f.solve(b.real) + 1j * f.solve(b.imag)
                else:
                    out[:, mask] = f.solve(b)
        return out

    def _shifts(self) -> dict:
        """{side: shift}: next to each band edge, as solve_shift_invert places them; at sigma for a metal."""
        if self.edges is None:
            return {"valence": self.sigma}
        shifts = {}
        for side, edge in (("valence", self.edges[0]), ("conduction", self.edges[1])):
            if edge is not None:
                # closer than EDGE_OFFSET_EV when the wanted states of this side crowd within a few meV (10^5
                # atoms: 20 in 2.3 meV), else the shift is as near the next, unwanted states as the wanted ones
                spread = self.spreads[0 if side == "valence" else 1]
                offset = min(EDGE_OFFSET_EV, 0.5 * abs(edge - self.sigma),
                             max(TRACK_OFFSET_MIN_EV, 0.5 * spread) if spread is not None else EDGE_OFFSET_EV)
                shifts[side] = edge + offset if side == "valence" else edge - offset
        return shifts

    def _factorize(self, h, s, stats) -> None:
        """Preconditioners at this k: single precision at :meth:`_shifts`, analysis reused from the last ones
        when the pattern and arithmetic are the same."""
        is_complex = np.iscomplexobj(h.data) or np.iscomplexobj(s.data)
        old = self.factors or {}
        self.factors = {}
        for side, shift in self._shifts().items():
            f = old.get(side, (None, None))[1]
            if f is None or np.issubdtype(f.dtype, np.complexfloating) != is_complex:
                f = make_factorization(self.solver, is_complex, single=True)
            try:
                f.factorize((h - shift * s).tocsr())
            except SingularError:  # the shift is an eigenvalue: move it a little
                shift += 1e-4 if side == "valence" else -1e-4
                f.factorize((h - shift * s).tocsr())
            self.factors[side] = (shift, f)
            stats["shifts"].append(float(shift))
        self.refresh = False

    def _full_solve(self, h, s, k, path, stats) -> tuple[np.ndarray, np.ndarray]:
        is_complex = np.iscomplexobj(h.data) or np.iscomplexobj(s.data)
        if is_complex not in self._full:
            self._full[is_complex] = _factor_pair(self.solver, is_complex, h.shape[0])
        f, rough = self._full[is_complex]
        sub = {}
        edges = self.edges if self.edges is not None and None not in self.edges else None
        e, x = solve_shift_invert(h, s, self.sigma, self.n_bands, k, path, solver=self.solver, factor=f,
                                  rough_factor=rough, v0=self.vectors, vectors=True, stats=sub, edges=edges)
        stats["shifts"] += sub["shifts"]
        stats["solves"] += sub["solves"]
        return e, x

    def _start_from_near(self, near, stats) -> None:
        """Start vectors and band edges from the near-range pencil: the rough pass of :func:`solve_shift_invert`
        alone (block Lanczos at sigma on a single-precision factorization, until both edge estimates settle).
        Converging them there would cost a double-precision factorization per edge; Davidson converges them on
        the full pencil anyway. (At 10^5 atoms, solving the near-range pencil to convergence first took over
        20 minutes.)"""
        h_near, s_near = near
        n, m = h_near.shape[0], self.n_bands + TRACK_GUARD
        is_complex = np.iscomplexobj(h_near.data) or np.iscomplexobj(s_near.data)
        dtype = np.complex128 if is_complex else np.float64
        factor = make_factorization(self.solver, is_complex, single=True)
        shift = self.sigma
        try:
            factor.factorize((h_near - shift * s_near).tocsr())
        except SingularError:  # sigma is an eigenvalue of the near-range pencil: move it a little
            shift += 1e-4
            factor.factorize((h_near - shift * s_near).tocsr())
        stats["shifts"].append(float(shift))

        def solve(b):
            return np.asarray(factor.solve(np.asarray(b, dtype=factor.dtype)), dtype=dtype)

        width = min(max(8, self.n_bands // 2 + 2), max(1, (n - 1) // 4))
        rough = block_lanczos(s_near, solve, _start_block(n, max(width, m), dtype), m, min_steps=ROUGH_STEPS[0],
                              max_steps=ROUGH_STEPS[1], until=_edges_settled(shift))
        stats["solves"] += rough.solves
        factor.release()
        self.vectors, self.refresh = rough.vectors(m), True
        self._set_edges(rough.energies(shift)[:m])

    def _set_edges(self, e: np.ndarray) -> None:
        """Band edges (and each side's spread) from the wanted energies ``e`` (eV)."""
        below, above = e[e < self.sigma], e[e > self.sigma]
        self.edges = (float(below.max()) if len(below) else None, float(above.min()) if len(above) else None)
        self.spreads = tuple(float(x.max() - x.min()) if len(x) else None for x in (below, above))
        if min(abs(x - self.sigma) for x in self.edges if x is not None) < EDGE_GAP_EV:
            self.edges = None  # states at sigma (a metal): no edges to sit next to

    def solve(self, h, s, k=None, path=None, stats: dict | None = None, near=None) -> np.ndarray:
        """The ``n_bands`` eigenvalues nearest sigma at this k (eV, ascending); ``stats`` gets the method,
        Davidson iterations, solves and the shifts factorized here.

        ``near``: (H, S) of the near-range pencil at this k (:mod:`deeph_jax.physics.near_range`). Its states
        start the first k and its factorizations precondition every k (a metal's at sigma), so the full
        pencil is never factorized unless Davidson fails even with fresh ones."""
        from deeph_jax.physics.davidson import davidson_nearest

        stats = {} if stats is None else stats
        stats.update(method="davidson", shifts=[], solves=0, iterations=0)
        n, m = h.shape[0], self.n_bands + TRACK_GUARD
        result = None
        budgets = [TRACK_MAX_ITERATIONS] * 2  # later attempts go on from the earlier one's vectors
        if near is not None and self.vectors is None and m < n - 1:
            self._start_from_near(near, stats)
            # the rough pass's edges lie inside the bands (by 16 meV at 10^5 atoms, where the 20 states span
            # 2.3 meV): a few iterations place them, then the preconditioners are made again next to them
            budgets = [NEAR_START_ITERATIONS] + budgets
        if self.vectors is not None and (self.edges is not None or near is not None) and m < n - 1:
            start = _start_block(n, m, np.result_type(h.dtype, s.dtype, self.vectors.dtype), self.vectors)
            made = None  # the shifts of the preconditioners made at this k
            h_threads, s_threads = row_split(h), row_split(s)  # Davidson's sparse products on every core
            for attempt, budget in enumerate(budgets):
                if self.refresh or (attempt and _shifts_moved(made, self._shifts())):
                    self._factorize(*(near or (h, s)), stats)
                    made = self._shifts()
                out = davidson_nearest(h_threads, s_threads, self.sigma, self.n_bands, self._precondition, start,
                                       self.tol_eV, TRACK_GUARD, budget)
                stats["iterations"] += out.iterations
                stats["solves"] += out.solves
                if out.converged:
                    result = out
                    break
                start = out.vectors
                self._set_edges(out.energies[: self.n_bands])  # nearest sigma first: where the bands are now
            for m_ in (h_threads, s_threads):
                getattr(m_, "close", lambda: None)()
        if result is None:
            stats["method"] = "shift-invert"
            e, x = self._full_solve(h, s, k, path, stats)
            self.vectors, self.refresh = x, True
        else:
            self.refresh = result.iterations > TRACK_REFRESH_ITERATIONS
            order = np.argsort(np.abs(result.energies - self.sigma), kind="stable")
            self.vectors = result.vectors[:, order]
            e = np.sort(result.energies[order[: self.n_bands]])
        self._set_edges(e)
        return e


def _shifts_moved(made: dict | None, now: dict) -> bool:
    """Whether preconditioners made at ``made`` ({side: shift}, or None) are off from ``now`` by more than
    TRACK_OFFSET_MIN_EV somewhere."""
    return made is None or made.keys() != now.keys() or any(abs(made[k] - now[k]) > TRACK_OFFSET_MIN_EV for k in now)


def bands_at(data, kpoints: np.ndarray, n_bands: int | None = None, sigma: float | None = None,
             progress=None, solver: str = "auto", warm_start: bool = False, stats: list | None = None,
             track: bool = False, near_range: float | None = None) -> np.ndarray:
    """Eigenvalues (eV) of a :class:`~deeph_jax.io.DeephStructure` at each k.

    Args:
        kpoints: (n_k, 3) reciprocal lattice units.
        n_bands, sigma: with both, the ``n_bands`` eigenvalues closest to ``sigma`` (eV) by sparse
            shift-invert; otherwise all bands (dense).
        progress: wraps the k-point iterable (e.g. ``tqdm.tqdm``, which shows an ETA).
        solver: the sparse factorization ("auto", "pardiso", "superlu"); one per arithmetic (real at
            time-reversal-invariant k, complex elsewhere), its ordering reused across k.
        warm_start: the previous k's eigenvectors start the next k's Lanczos block.
        stats: if a list, one dict per k of :func:`solve_shift_invert`'s statistics (shifts, passes, solves).
        track: follow the states from k to k by preconditioned Davidson (:class:`PathTracker`): a
            factorization every few k instead of two per k, for paths of large cells.
        near_range: Angstrom, or None: Davidson (as ``track``, at every k, the first included) starts from and
            is preconditioned by the pencil kept within this distance (:mod:`deeph_jax.physics.near_range`),
            whose factorizations are sparser; the answers are the full pencil's. For cells whose full
            factorization is too large (10^5 atoms).

    Along a path the previous k's band edges place the next k's shifts at once (``edges`` of
    :func:`solve_shift_invert`), so only the first k (and any k where they fail the checks) pays for the
    rough pass that locates them.

    Returns:
        (n_k, n_bands) ascending per k.
    """
    if data.hamiltonian is None or data.overlap is None:
        raise DeephError("bands need both a Hamiltonian and overlap.h5", data.path)
    kpoints = np.asarray(kpoints, dtype=np.float64).reshape(-1, 3)
    real_h = not data.hamiltonian.is_complex
    path = data.path / "overlap.h5" if data.path is not None else None
    out, factors, previous, edges = [], {}, None, None
    sparse = n_bands is not None and sigma is not None
    tracker = PathTracker(sigma, n_bands, solver) if sparse and (track or near_range is not None) else None
    near = None
    if tracker is not None and near_range is not None:
        from deeph_jax.physics.near_range import within_distance

        near = within_distance(data, near_range)
    it = kpoints if progress is None else progress(kpoints)
    for k in it:
        if tracker is not None:
            k_stats = {}
            near_pencil = None if near is None else bloch_pencil(near, k)
            out.append(tracker.solve(*bloch_pencil(data, k), k, path, k_stats, near=near_pencil))
            if stats is not None:
                stats.append(k_stats)
        elif n_bands is not None and sigma is not None:
            h, s = bloch_pencil(data, k)
            is_complex = np.iscomplexobj(h.data) or np.iscomplexobj(s.data)
            if is_complex not in factors:
                factors[is_complex] = _factor_pair(solver, is_complex, h.shape[0])
                logger.info("sparse shift-invert with %s (%s arithmetic)", factors[is_complex][0].name,
                            "complex" if is_complex else "real")
            f, rough = factors[is_complex]
            k_stats = {}
            e = solve_shift_invert(h, s, sigma, n_bands, k, path, solver=solver, factor=f, rough_factor=rough,
                                   v0=previous, vectors=warm_start, stats=k_stats, edges=edges)
            edges = k_stats.get("edges")
            if stats is not None:
                stats.append(k_stats)
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
