"""Electrostatic potential of point charges at the atoms: Ewald sums, split into short and long range.

The potential at atom i of charges q_j (in units of e) is, in eV per e (volts),

    phi_i = k_e sum'_{j, R} q_j / |r_j + R - r_i|,        k_e = e / (4 pi eps0) = 14.3996 eV A,

the sum over all periodic images R, without the term (j = i, R = 0). Ewald splits 1/r =
erfc(alpha r)/r + erf(alpha r)/r: the first part is short-ranged (gone beyond ~3/alpha) and is left to the
local network; the second is smooth and carries the far field that no local model can learn from small
cells (hBN's displaced B+ / N- ions). This module computes that long-range part,

    phi_long_i = k_e sum'_{j, R} q_j erf(alpha |r_j + R - r_i|) / |r_j + R - r_i|,

three ways: as a dense matrix K with phi_long = K q (training cells, :func:`long_range_kernel`), directly in
reciprocal space, and by smooth particle-mesh Ewald with FFTs, O(N log N), for 10^4-10^6 atoms
(:func:`pme_long_range_potential`). Periodic cells are summed in 3D, in the structure's own cell (a sheet
with its vacuum, as the DFT cell), with the neutralizing background of the G = 0 term dropped, so charges
should sum to zero; molecules (no lattice) use open boundaries. The full Ewald potential
(:func:`ewald_potential`) adds the erfc part and is what tests compare with pymatgen's ``EwaldSummation``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf, erfc

COULOMB_EV_A = 14.399645478425668  # e^2 / (4 pi eps0) in eV Angstrom (CODATA 2018)


def _g_max(alpha: float, accuracy: float) -> float:
    """|G| (1/A) beyond which exp(-G^2 / 4 alpha^2) falls under ``accuracy``."""
    return 2 * alpha * math.sqrt(-math.log(accuracy))


DIRECT_MAX_TERMS = 2e7  # atoms x reciprocal vectors of the direct sum (~160 MB per N x N_G array)


def direct_sum_terms(n_atoms: int, cell: np.ndarray, alpha: float, accuracy: float = 1e-10) -> float:
    """About N x N_G for the direct reciprocal sum of :func:`long_range_kernel`: the G vectors within g_max
    number (4/3) pi g_max^3 V / (2 pi)^3. At alpha = 1/A a 1,000-atom sheet needs ~10^6 of them, and the
    direct sum would take ~20 GB."""
    volume = abs(np.linalg.det(np.asarray(cell, dtype=np.float64)))
    return n_atoms * 4.0 / 3.0 * np.pi * _g_max(alpha, accuracy) ** 3 * volume / (2 * np.pi) ** 3


def use_direct_sum(n_atoms: int, cell: np.ndarray | None, alpha: float, direct_max_atoms: int = 2000,
                   direct_max_terms: float = DIRECT_MAX_TERMS) -> bool:
    """Whether :func:`long_range_potential` sums directly: always for molecules; for cells while both the atom
    count and the direct sum's atoms x reciprocal vectors (:func:`direct_sum_terms`) stay small."""
    return cell is None or (n_atoms <= direct_max_atoms
                            and direct_sum_terms(n_atoms, cell, alpha) <= direct_max_terms)


def _reciprocal_vectors(cell: np.ndarray, alpha: float, accuracy: float) -> np.ndarray:
    """All G != 0 of the cell's reciprocal lattice with exp(-G^2 / 4 alpha^2) above ``accuracy`` (1/A): a
    bound on the terms exp(-G^2 / 4 alpha^2) / G^2 that errs on the safe side."""
    recip = 2 * np.pi * np.linalg.inv(cell).T
    g_max = _g_max(alpha, accuracy)
    n_max = [int(math.ceil(g_max * np.linalg.norm(cell[a]) / (2 * np.pi))) for a in range(3)]
    grids = np.meshgrid(*[np.arange(-n, n + 1) for n in n_max], indexing="ij")
    m = np.stack([g.ravel() for g in grids], axis=1)
    g = m @ recip
    g2 = np.einsum("ij,ij->i", g, g)
    keep = (g2 > 0) & (g2 <= g_max**2)
    return g[keep]


def _real_space_images(cell: np.ndarray, r_max: float) -> np.ndarray:
    """Lattice translations (A) that can bring a pair of atoms of the cell within ``r_max`` of each other."""
    inv = np.linalg.inv(cell)
    # The distance between lattice planes bounds how many images a sphere of radius r_max + cell size needs.
    heights = 1.0 / np.linalg.norm(inv, axis=0)
    span = r_max + np.linalg.norm(cell.sum(axis=0)) + max(np.linalg.norm(c) for c in cell)
    n = [int(math.ceil(span / h)) for h in heights]
    grids = np.meshgrid(*[np.arange(-k, k + 1) for k in n], indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=1) @ cell


_KERNEL_SLICE = 1 << 21  # atoms x reciprocal vectors per slice of long_range_kernel's sum (16 MB arrays)


def _open_kernel_rows(pos: np.ndarray, start: int, stop: int, alpha: float) -> np.ndarray:
    """Rows start..stop-1 of the open-boundary kernel erf(alpha r_ij) / r_ij (1/A), zero on the diagonal."""
    r = np.linalg.norm(pos[None, :, :] - pos[start:stop, None, :], axis=-1)
    rows = np.arange(stop - start)
    r[rows, start + rows] = 1.0
    k = erf(alpha * r) / r
    k[rows, start + rows] = 0.0
    return k


def long_range_kernel(positions: np.ndarray, cell: np.ndarray | None, alpha: float,
                      accuracy: float = 1e-10) -> np.ndarray:
    """K (N x N, eV per e) with phi_long = K q; direct sums, for cells of up to a few thousand atoms.

    Args:
        positions: (N, 3) Cartesian, Angstrom.
        cell: (3, 3) lattice vectors as rows (Angstrom), or None for a molecule (open boundaries).
        alpha: Ewald splitting parameter, 1/Angstrom.
        accuracy: relative size of the last reciprocal-space term kept.
    """
    pos = np.asarray(positions, dtype=np.float64)
    if cell is None:
        return COULOMB_EV_A * _open_kernel_rows(pos, 0, len(pos), alpha)
    cell = np.asarray(cell, dtype=np.float64)
    volume = abs(np.linalg.det(cell))
    g = _reciprocal_vectors(cell, alpha, accuracy)
    g2 = np.einsum("ij,ij->i", g, g)
    weight = 4 * np.pi / volume * np.exp(-g2 / (4 * alpha**2)) / g2
    # cos(G . (r_j - r_i)) = cos(G.r_j) cos(G.r_i) + sin(G.r_j) sin(G.r_i): N x N_G work, not N^2 x N_G; in
    # slices of G, so that no N x N_G array is held (~1e5 G per atom at alpha = 1/A in a 1,000-atom sheet).
    k = np.zeros((len(pos), len(pos)))
    step = max(1, _KERNEL_SLICE // max(1, len(pos)))
    for start in range(0, len(g), step):
        phase = pos @ g[start:start + step].T
        c, s = np.cos(phase), np.sin(phase)
        w = weight[start:start + step]
        k += (c * w) @ c.T + (s * w) @ s.T
    # The reciprocal sum includes the atom's own smeared charge at R = 0; its value there is 2 alpha / sqrt(pi).
    k[np.diag_indices_from(k)] -= 2 * alpha / math.sqrt(math.pi)
    return COULOMB_EV_A * k


def short_range_potential(positions: np.ndarray, cell: np.ndarray | None, charges: np.ndarray, alpha: float,
                          accuracy: float = 1e-10) -> np.ndarray:
    """k_e sum'_{j, R} q_j erfc(alpha r) / r at each atom (eV per e), direct sum over images."""
    pos = np.asarray(positions, dtype=np.float64)
    q = np.asarray(charges, dtype=np.float64)
    r_max = _erfc_range(alpha, accuracy)
    shifts = np.zeros((1, 3)) if cell is None else _real_space_images(np.asarray(cell, dtype=np.float64), r_max)
    phi = np.zeros(len(pos))
    for t in shifts:
        d = np.linalg.norm(pos[None, :, :] + t - pos[:, None, :], axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            term = np.where((d > 1e-12) & (d <= r_max), erfc(alpha * d) / d, 0.0)
        phi += term @ q
    return COULOMB_EV_A * phi


def _erfc_range(alpha: float, accuracy: float) -> float:
    """r beyond which erfc(alpha r) < accuracy."""
    lo, hi = 0.0, 1.0
    while erfc(alpha * hi) > accuracy:
        hi *= 2
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if erfc(alpha * mid) > accuracy else (lo, mid)
    return hi


def ewald_potential(positions: np.ndarray, cell: np.ndarray | None, charges: np.ndarray,
                    alpha: float | None = None, accuracy: float = 1e-10) -> np.ndarray:
    """The full electrostatic potential at each atom (eV per e): short (erfc) + long (erf) parts.

    For a periodic cell it is independent of ``alpha`` (the default balances the two sums) up to
    ``accuracy``; with open boundaries it is the plain Coulomb sum."""
    if alpha is None:
        alpha = 0.3 if cell is None else math.sqrt(math.pi) * (len(positions) / abs(np.linalg.det(cell))) ** (1 / 3)
    q = np.asarray(charges, dtype=np.float64)
    return short_range_potential(positions, cell, q, alpha, accuracy) + long_range_kernel(positions, cell, alpha,
                                                                                          accuracy) @ q


# -- particle-mesh Ewald ---------------------------------------------------------------------------
def _bspline_weights(u: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Cardinal B-spline weights M_order at u - floor(u) + k, k = 0..order-1, and the first grid index.

    Args:
        u: (N,) scaled fractional coordinates (grid units).
    Returns:
        (N, order) weights w[:, k] for grid point floor(u) - k, and floor(u) (N,) as integers.
    """
    base = np.floor(u)
    x = u - base  # in [0, 1)
    # M_2 on the two points, then the recursion M_n(x) = x/(n-1) M_{n-1}(x) + (n-x)/(n-1) M_{n-1}(x-1).
    w = np.stack([x, 1.0 - x], axis=1)  # M_2(x), M_2(x + 1)
    for n in range(3, order + 1):
        shifted = x[:, None] + np.arange(n)[None, :]  # arguments x + k
        prev = np.concatenate([w, np.zeros((len(u), 1))], axis=1)  # M_{n-1}(x + k)
        prev_m1 = np.concatenate([np.zeros((len(u), 1)), w], axis=1)  # M_{n-1}(x + k - 1)
        w = (shifted * prev + (n - shifted) * prev_m1) / (n - 1)
    return w, base.astype(np.int64)


def _bspline_modulus(n_grid: int, order: int) -> np.ndarray:
    """1 / |b(m)|^2 of smooth PME for one lattice direction (Essmann et al. 1995, eq. 4.4), m = 0..n_grid-1."""
    # M_order(k + 1), k = 0..order-2: the weights at u = 0 of grid points 1..order-1.
    integer_values = _bspline_weights(np.zeros(1), order)[0][0, 1:]
    m = np.arange(n_grid)
    mod = np.abs(np.exp(2j * np.pi * np.outer(m, np.arange(order - 1)) / n_grid) @ integer_values) ** 2
    # Odd orders vanish at the Nyquist frequency; the usual fix averages the neighbours.
    for i in np.flatnonzero(mod < 1e-10):
        mod[i] = 0.5 * (mod[i - 1] + mod[(i + 1) % n_grid])
    return mod


def pme_grid_shape(cell: np.ndarray, spacing: float = 0.8) -> tuple[int, int, int]:
    """Grid points per lattice direction: at most ``spacing`` Angstrom apart, rounded up to FFT-friendly sizes."""
    from scipy.fft import next_fast_len

    return tuple(int(next_fast_len(max(8, int(math.ceil(np.linalg.norm(c) / spacing))))) for c in cell)


def pme_long_range_potential(positions: np.ndarray, cell: np.ndarray, charges: np.ndarray, alpha: float,
                             spacing: float = 0.8, order: int = 6) -> np.ndarray:
    """phi_long at each atom (eV per e) by smooth particle-mesh Ewald: O(N log N) in the number of atoms.

    The charges are spread on a grid of the cell with B-splines of ``order``, convolved with the
    reciprocal-space Ewald kernel by FFTs and interpolated back; the atom's own smeared charge is removed
    as in :func:`long_range_kernel`. The charges must be neutral (:func:`check_neutral`). Accuracy ~1e-6
    relative with the defaults (grid spacing 0.8 A, order 6, alpha <= 0.35 / A), tested against the direct sum.
    """
    from scipy import fft

    check_neutral(charges)
    cell = np.asarray(cell, dtype=np.float64)
    pos = np.asarray(positions, dtype=np.float64)
    q = np.asarray(charges, dtype=np.float64)
    shape = pme_grid_shape(cell, spacing)
    volume = abs(np.linalg.det(cell))
    frac = pos @ np.linalg.inv(cell)
    u = (frac % 1.0) * np.asarray(shape)
    weights, base = [], []
    for a in range(3):
        w, b = _bspline_weights(u[:, a], order)
        weights.append(w)
        base.append(b)
    # Flat grid indices of the order^3 points each atom touches, and their weights.
    ka = (base[0][:, None] - np.arange(order)[None, :]) % shape[0]
    kb = (base[1][:, None] - np.arange(order)[None, :]) % shape[1]
    kc = (base[2][:, None] - np.arange(order)[None, :]) % shape[2]
    flat = (ka[:, :, None, None] * shape[1] + kb[:, None, :, None]) * shape[2] + kc[:, None, None, :]
    wgt = weights[0][:, :, None, None] * weights[1][:, None, :, None] * weights[2][:, None, None, :]
    grid = np.bincount(flat.ravel(), (wgt * q[:, None, None, None]).ravel(), minlength=int(np.prod(shape)))
    grid = grid.reshape(shape)
    # Influence function: (4 pi / V) exp(-G^2 / 4 alpha^2) / G^2 divided by the B-spline moduli.
    recip = 2 * np.pi * np.linalg.inv(cell).T
    ms = [np.fft.fftfreq(n, 1.0 / n) for n in shape]
    m1, m2, m3 = np.meshgrid(*ms, indexing="ij")
    g = m1[..., None] * recip[0] + m2[..., None] * recip[1] + m3[..., None] * recip[2]
    g2 = np.einsum("...i,...i->...", g, g)
    g2[0, 0, 0] = 1.0
    influence = 4 * np.pi / volume * np.exp(-g2 / (4 * alpha**2)) / g2
    influence[0, 0, 0] = 0.0
    bmod = (_bspline_modulus(shape[0], order)[:, None, None] * _bspline_modulus(shape[1], order)[None, :, None]
            * _bspline_modulus(shape[2], order)[None, None, :])
    potential_grid = fft.ifftn(fft.fftn(grid) * influence / bmod).real * np.prod(shape)
    phi = np.einsum("nabc,nabc->n", wgt, potential_grid.ravel()[flat])
    phi -= 2 * alpha / math.sqrt(math.pi) * q
    return COULOMB_EV_A * phi


PME_ALPHA_MAX = 0.35  # 1/A: the largest alpha the default PME grid (0.8 A spacing, order 6) resolves to ~1e-6


def erf_difference_potential(positions: np.ndarray, cell: np.ndarray, charges: np.ndarray, alpha_low: float,
                             alpha_high: float, accuracy: float = 1e-9) -> np.ndarray:
    """k_e sum'_{j, R} q_j [erf(alpha_high r) - erf(alpha_low r)] / r at each atom (eV per e).

    The difference of two long-range kernels is short-ranged (it is erfc(alpha_low r) - erfc(alpha_high r)), so
    a neighbour list within the erfc range of ``alpha_low`` sums it in O(N): with it, particle-mesh Ewald at a
    coarse alpha gives the potential of any larger alpha without a finer grid.
    """
    import vesin

    pos = np.asarray(positions, dtype=np.float64)
    cell = np.asarray(cell, dtype=np.float64)
    q = np.asarray(charges, dtype=np.float64)
    r_max = _erfc_range(alpha_low, accuracy)
    i, j, d = vesin.NeighborList(cutoff=r_max, full_list=True).compute(points=pos, box=cell, periodic=True,
                                                                       quantities="ijd")
    d = np.asarray(d, dtype=np.float64)
    keep = d > 1e-12
    i, j, d = i[keep], j[keep], d[keep]
    term = (erfc(alpha_low * d) - erfc(alpha_high * d)) / d * q[j]
    return COULOMB_EV_A * np.bincount(i, term, minlength=len(pos))


NEUTRALITY_TOLERANCE = 1e-6  # |sum q| allowed, relative to max(1, sum |q|)


def check_neutral(charges: np.ndarray) -> None:
    """Raise ValueError unless the charges (e) sum to zero. In a periodic cell the dropped G = 0 term of a net
    charge Q is a constant -k_e pi Q / (alpha^2 V) that depends on alpha, so the direct and mesh routes, and a
    structure and its supercell, would disagree by it."""
    q = np.asarray(charges, dtype=np.float64)
    total = float(q.sum())
    if abs(total) > NEUTRALITY_TOLERANCE * max(1.0, float(np.abs(q).sum())):
        raise ValueError(f"the long-range potential of a periodic cell needs neutral charges; these sum to "
                         f"{total:.3g} e")


_OPEN_ROWS = 2048  # atoms per block of the open-boundary sum: 2048 x N distances at a time


def open_long_range_potential(positions: np.ndarray, charges: np.ndarray, alpha: float) -> np.ndarray:
    """phi_long (eV per e) with open boundaries (a molecule, a flake): k_e sum'_j q_j erf(alpha r_ij) / r_ij,
    in blocks of rows, so memory is O(N) (time O(N^2): ~10^5 atoms in minutes)."""
    pos = np.asarray(positions, dtype=np.float64)
    q = np.asarray(charges, dtype=np.float64)
    phi = np.concatenate([_open_kernel_rows(pos, start, min(start + _OPEN_ROWS, len(pos)), alpha) @ q
                          for start in range(0, len(pos), _OPEN_ROWS)])
    return COULOMB_EV_A * phi


def long_range_potential(positions: np.ndarray, cell: np.ndarray | None, charges: np.ndarray, alpha: float,
                         direct_max_atoms: int = 2000, direct_max_terms: float = DIRECT_MAX_TERMS) -> np.ndarray:
    """phi_long (eV per e): the direct kernel for small structures, particle-mesh Ewald for large cells
    (:func:`use_direct_sum`); periodic cells need neutral charges (:func:`check_neutral`).

    Molecules (``cell`` None) use the direct sum in blocks of rows (:func:`open_long_range_potential`). Above
    :data:`PME_ALPHA_MAX` the mesh runs at that alpha and :func:`erf_difference_potential` adds the rest in real
    space."""
    if cell is None:
        return open_long_range_potential(positions, charges, alpha)
    check_neutral(charges)
    if use_direct_sum(len(positions), cell, alpha, direct_max_atoms, direct_max_terms):
        return long_range_kernel(positions, cell, alpha) @ np.asarray(charges, dtype=np.float64)
    alpha_mesh = min(alpha, PME_ALPHA_MAX)
    phi = pme_long_range_potential(positions, cell, charges, alpha_mesh)
    if alpha > alpha_mesh:
        phi += erf_difference_potential(positions, cell, charges, alpha_mesh, alpha)
    return phi


__all__ = ["COULOMB_EV_A", "DIRECT_MAX_TERMS", "PME_ALPHA_MAX", "check_neutral", "direct_sum_terms",
           "erf_difference_potential", "ewald_potential", "long_range_kernel", "long_range_potential",
           "open_long_range_potential", "pme_long_range_potential", "short_range_potential", "use_direct_sum"]
