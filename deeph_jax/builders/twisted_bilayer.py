"""Bilayer graphene cells: commensurate twisted supercells and shifted (untwisted) bilayers. Angstrom, degrees.

Commensurate twist, the (m, m + 1) family: layer 1's lattice vector L1 = m a1 + (m + 1) a2 and layer 2's
(m + 1) a1' + m a2' (a' = the rotated lattice) have the same length, so rotating layer 2 by the angle between
(m + 1, m) and (m, m + 1) makes them coincide, and with them L2 = R(60) L1 (a hexagonal lattice holds the
60-degree rotation of every lattice vector). Then

    cos(theta) = (3 m^2 + 3 m + 1/2) / (3 m^2 + 3 m + 1),     N = 4 (3 m^2 + 3 m + 1) atoms,

m = 1: 21.79 degrees, 28 atoms; m = 2: 13.17, 76; m = 31: 1.05, 11,908 (Lopes dos Santos, Peres and Castro
Neto, PRB 86, 155449 (2012); Shallcross et al., PRB 81, 165105 (2010)). The rotation is about a vertical axis
through an atom of each layer (AA stacking at the origin), so the cell has D3 symmetry.
"""

from __future__ import annotations

import math

import numpy as np

from deeph_jax.errors import DeephError
from deeph_jax.io.structures import Structure

GRAPHENE_A = 2.467  # Angstrom: the lattice constant of the project's graphene data (deeph_jax.dft.crystals)
INTERLAYER = 3.35  # Angstrom
CELL_HEIGHT = 15.0  # Angstrom: the DFT cells' height (>= 11 A of vacuum); the energy zero depends on it, keep it fixed


def twist_angle(m: int) -> float:
    """Twist angle (degrees) of the (m, m + 1) commensurate cell."""
    n = 3 * m * m + 3 * m + 1
    return math.degrees(math.acos((n - 0.5) / n))


def n_atoms_twisted(m: int) -> int:
    return 4 * (3 * m * m + 3 * m + 1)


def _primitive(a: float) -> tuple[np.ndarray, np.ndarray]:
    """Graphene lattice vectors a1, a2 (60 degrees apart, rows) and the A, B sites (Cartesian, z = 0)."""
    lat = a * np.array([[1.0, 0.0], [0.5, math.sqrt(3) / 2]])
    sites = np.array([[0.0, 0.0], (lat[0] + lat[1]) / 3])
    return lat, sites


def _layer_in_cell(lat: np.ndarray, sites: np.ndarray, super_lat: np.ndarray, expected: int) -> np.ndarray:
    """Every site of the lattice ``lat`` (rows) inside the supercell spanned by ``super_lat`` (rows), (n, 2)."""
    inv = np.linalg.inv(super_lat)
    # Integer lattice coefficients covering the supercell's corners.
    corners = np.array([[0, 0], [1, 0], [0, 1], [1, 1]]) @ super_lat
    coef = corners @ np.linalg.inv(lat)
    lo, hi = np.floor(coef.min(axis=0)) - 1, np.ceil(coef.max(axis=0)) + 1
    i, j = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1), indexing="ij")
    points = np.stack([i.ravel(), j.ravel()], axis=1) @ lat
    cart = (points[:, None, :] + sites[None, :, :]).reshape(-1, 2)
    frac = cart @ inv
    eps = 1e-9
    keep = np.all((frac >= -eps) & (frac < 1 - eps), axis=1)
    frac = np.mod(frac[keep] + eps, 1.0) - eps
    if len(frac) != expected:
        raise DeephError(f"twisted cell construction found {len(frac)} sites, expected {expected}")
    return frac @ super_lat


def twisted_bilayer(m: int, a: float = GRAPHENE_A, interlayer: float = INTERLAYER, height: float = CELL_HEIGHT,
                    element: str = "C") -> Structure:
    """The (m, m + 1) commensurate twisted bilayer, layer 1 then layer 2 atoms, centred at z = height / 2.

    Args:
        m: >= 1; the twist angle is :func:`twist_angle` (m).
        a: in-plane lattice constant; interlayer: layer distance; height: cell height (all Angstrom).
    """
    if int(m) != m or m < 1:
        raise DeephError(f"twisted bilayer index m must be an integer >= 1, got {m}")
    if not 0 < interlayer < height / 2:
        raise DeephError(f"interlayer distance {interlayer} A must be in (0, height / 2 = {height / 2}) A")
    m = int(m)
    lat, sites = _primitive(a)
    super_lat = np.array([[m, m + 1], [-(m + 1), 2 * m + 1]]) @ lat
    theta = math.radians(twist_angle(m))
    # Rotate layer 2 so that its (m + 1, m) vector lands on layer 1's (m, m + 1) vector.
    target, source = super_lat[0], np.array([m + 1, m]) @ lat
    phi = math.atan2(target[1], target[0]) - math.atan2(source[1], source[0])
    assert abs(abs(phi) - theta) < 1e-9
    rot = np.array([[math.cos(phi), -math.sin(phi)], [math.sin(phi), math.cos(phi)]])
    per_layer = n_atoms_twisted(m) // 2
    layer1 = _layer_in_cell(lat, sites, super_lat, per_layer)
    layer2 = _layer_in_cell(lat @ rot.T, sites @ rot.T, super_lat, per_layer)
    z1, z2 = height / 2 - interlayer / 2, height / 2 + interlayer / 2
    pos = np.concatenate([np.column_stack([layer1, np.full(per_layer, z1)]),
                          np.column_stack([layer2, np.full(per_layer, z2)])])
    cell = np.zeros((3, 3))
    cell[:2, :2] = super_lat
    cell[2, 2] = height
    return Structure((element,) * len(pos), pos, cell, periodic=True)


def shifted_bilayer(shift_frac, interlayer: float = INTERLAYER, reps=(1, 1), a: float = GRAPHENE_A,
                    height: float = CELL_HEIGHT, element: str = "C") -> Structure:
    """An untwisted bilayer: layer 2 is layer 1 moved by ``shift_frac`` (fractions of a1, a2) in-plane.

    (0, 0) is AA stacking, (1/3, 1/3) AB (Bernal), (1/6, 1/6) the saddle point (SP) between them. ``reps``
    repeats the 4-atom cell in-plane (layer 1 atoms first, then layer 2, image by image within each)."""
    lat, sites = _primitive(a)
    shift = np.asarray(shift_frac, dtype=np.float64)[:2] @ lat
    n1, n2 = (int(r) for r in reps)
    images = np.array([(i, j) for i in range(n1) for j in range(n2)], dtype=np.float64) @ lat
    layer = (images[:, None, :] + sites[None, :, :]).reshape(-1, 2)
    z1, z2 = height / 2 - interlayer / 2, height / 2 + interlayer / 2
    pos = np.concatenate([np.column_stack([layer, np.full(len(layer), z1)]),
                          np.column_stack([layer + shift, np.full(len(layer), z2)])])
    cell = np.zeros((3, 3))
    cell[:2, :2] = lat * np.array([[n1], [n2]])
    cell[2, 2] = height
    frac = np.linalg.solve(cell.T, pos.T).T
    frac[:, :2] %= 1.0
    return Structure((element,) * len(pos), frac @ cell, cell, periodic=True)


def moire_kpath(structure: Structure, n_points: int = 120) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """K - Gamma - M - K of a hexagonal in-plane cell (the moire Brillouin zone), reduced coordinates.

    Returns (n_points, 3) k-points (reduced) spaced evenly in |k| and the (index, label) ticks."""
    cell = structure.cell
    recip = 2 * math.pi * np.linalg.inv(cell).T  # rows b_i
    b1, b2 = recip[0], recip[1]
    gamma = np.zeros(3)
    m_point = b1 / 2
    # K: the zone corner, equidistant from Gamma, b1 and the third reciprocal vector next to them.
    third = b2 if np.dot(b1, b2) > 0 else b1 + b2
    k_point = (b1 + third) / 3
    corners = [k_point, gamma, m_point, k_point]
    labels = ["K", "Gamma", "M", "K"]
    lengths = [np.linalg.norm(corners[i + 1] - corners[i]) for i in range(3)]
    total = sum(lengths)
    counts = [max(2, int(round((n_points - 1) * L / total))) for L in lengths]
    path, ticks = [], [(0, labels[0])]
    for seg, n in enumerate(counts):
        t = np.linspace(0.0, 1.0, n + 1)[1 if seg else 0:]
        path.extend(corners[seg] + np.outer(t, corners[seg + 1] - corners[seg]))
        ticks.append((len(path) - 1, labels[seg + 1]))
    cart = np.asarray(path)
    return cart @ cell.T / (2 * math.pi), ticks
