"""Commensurate twisted bilayer graphene: angle and atom count against the closed formulas, geometry checks."""

import math

import numpy as np
import pytest

from deeph_jax.builders.twisted_bilayer import (GRAPHENE_A, moire_kpath, n_atoms_twisted, shifted_bilayer,
                                                twist_angle, twisted_bilayer)
from deeph_jax.errors import DeephError


def _min_distance(structure, mask_a, mask_b):
    """Shortest distance between atoms of mask_a and mask_b over in-plane periodic images (Angstrom)."""
    pos, cell = structure.positions, structure.cell
    best = np.inf
    for i in (-1, 0, 1):
        for j in (-1, 0, 1):
            d = pos[mask_a][:, None, :] - (pos[mask_b] + i * cell[0] + j * cell[1])[None, :, :]
            r = np.linalg.norm(d, axis=-1)
            r[r < 1e-8] = np.inf
            best = min(best, r.min())
    return best


@pytest.mark.parametrize("m, degrees, atoms", [(1, 21.787, 28), (2, 13.174, 76), (31, 1.050, 11908)])
def test_known_angles_and_counts(m, degrees, atoms):
    assert abs(twist_angle(m) - degrees) < 1e-3
    assert n_atoms_twisted(m) == atoms


@pytest.mark.parametrize("m", [1, 2, 3, 5])
def test_twisted_cell_geometry(m):
    s = twisted_bilayer(m, interlayer=3.35)
    n = s.n_atoms
    assert n == 4 * (3 * m * m + 3 * m + 1)
    layer1 = s.positions[:, 2] < s.cell[2, 2] / 2
    assert layer1.sum() == n // 2
    # Each layer is intact graphene: nearest neighbours at a / sqrt(3), three each, no duplicates.
    bond = GRAPHENE_A / math.sqrt(3)
    for layer in (layer1, ~layer1):
        assert abs(_min_distance(s, layer, layer) - bond) < 1e-8
    assert abs(_min_distance(s, layer1, ~layer1) - 3.35) < 1e-8  # AA site at the origin
    # The twist: the in-plane angle between the two layers' bond directions is the formula's angle.
    cell = s.cell[:2, :2]
    assert abs(np.linalg.norm(cell[0]) - np.linalg.norm(cell[1])) < 1e-9
    cos60 = cell[0] @ cell[1] / np.linalg.norm(cell[0]) ** 2
    assert abs(cos60 - 0.5) < 1e-12
    area = abs(np.linalg.det(cell))
    assert abs(area / (GRAPHENE_A**2 * math.sqrt(3) / 2) - n / 4) < 1e-9


def test_layer_two_is_layer_one_rotated_by_the_angle():
    m = 2
    s = twisted_bilayer(m)
    half = s.n_atoms // 2
    theta = math.radians(twist_angle(m))
    # Rotating layer 1 by +-theta about the origin atom maps it onto layer 2 modulo the supercell.
    inv = np.linalg.inv(s.cell[:2, :2])
    l2 = np.mod(s.positions[half:, :2] @ inv, 1.0)
    ok = False
    for sign in (1, -1):
        c, sn = math.cos(sign * theta), math.sin(sign * theta)
        rot = np.array([[c, -sn], [sn, c]])
        l1 = np.mod(s.positions[:half, :2] @ rot.T @ inv, 1.0)
        d = np.abs(l1[:, None, :] - l2[None, :, :])
        d = np.minimum(d, 1 - d).max(axis=-1)
        ok |= bool(np.all(d.min(axis=1) < 1e-8))
    assert ok


def test_shifted_bilayers_and_bad_input():
    ab = shifted_bilayer((1 / 3, 1 / 3), interlayer=3.4, reps=(2, 2))
    assert ab.n_atoms == 16
    layer1 = ab.positions[:, 2] < ab.cell[2, 2] / 2
    assert abs(_min_distance(ab, layer1, ~layer1) - 3.4) < 1e-8  # AB: half the atoms sit on top of one another
    aa = shifted_bilayer((0, 0), reps=(1, 1))
    np.testing.assert_allclose(aa.positions[2:, :2], aa.positions[:2, :2], atol=1e-12)
    with pytest.raises(DeephError, match="integer >= 1"):
        twisted_bilayer(0)
    with pytest.raises(DeephError, match="interlayer"):
        twisted_bilayer(1, interlayer=12.0)


def test_moire_path_hits_the_zone_corner():
    s = twisted_bilayer(3)
    k, ticks = moire_kpath(s, 60)
    assert [t[1] for t in ticks] == ["K", "Gamma", "M", "K"]
    recip = 2 * math.pi * np.linalg.inv(s.cell).T
    cart = k @ recip
    kk = cart[ticks[0][0]]
    # |K| = |b| / sqrt(3), and K is as far from Gamma as from the nearest reciprocal lattice point.
    b = np.linalg.norm(recip[0])
    assert abs(np.linalg.norm(kk) - b / math.sqrt(3)) < 1e-9
    g = np.array([i * recip[0] + j * recip[1] for i in (-1, 0, 1) for j in (-1, 0, 1) if (i, j) != (0, 0)])
    assert abs(np.linalg.norm(g - kk, axis=1).min() - np.linalg.norm(kk)) < 1e-9
    np.testing.assert_allclose(cart[ticks[1][0]], 0.0, atol=1e-12)
    assert abs(np.linalg.norm(cart[ticks[2][0]]) - b / 2) < 1e-9
