"""The near-range pencil: H and S kept only between atoms closer than a radius, a sparser stand-in for the
full pencil wherever an approximation serves (start vectors and preconditioners of
:class:`deeph_jax.physics.bands.PathTracker`).

The blocks dropped between the radius and the cutoff are small (hBN in gth-szv: |H_ij| of tens of meV at
5.5 A falling to ~0.1 meV at 10 A), so the eigenvectors of the near-range pencil are close to the full ones
and a factorization of its H - shift S is a good preconditioner near the shift; the answers come from
Davidson on the full pencil, to the same tolerance. What it saves is the fill of the factorization: at
9,800 atoms (hBN, 10.2 A cutoff, real, single precision) the factor of the 5.5 A pencil held 35 million
entries instead of 94 million and was made in 1.6 s instead of 8.3 s; the full one's grows faster than the
matrix with size (nested dissection of a 2D sheet), and at 10^5 atoms it did not fit a 23 GB machine.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from deeph_jax.errors import DeephError

NEAR_RANGE_MIN_A = 2.0  # below this no hBN-like bond survives: the pencil would not be near the full one
# The default radius, as a fraction of the longest stored block. Too short a radius breaks the overlap: on a
# 288-atom hBN sheet (10.2 A) S kept within 3 A had a negative eigenvalue, and within 3.5-5 A its pencil had
# ghost states 2-4 eV into the gap; from 5.5 A its 20 states nearest E_F were within 17-33 meV of the full
# pencil's. A poor near-range pencil costs time, not accuracy: Davidson fails and the full pencil is solved.
NEAR_RANGE_FRACTION = 0.55


def block_distances(structure, atom_pairs: np.ndarray) -> np.ndarray:
    """|r_j + R - r_i| (Angstrom) of each block (R1, R2, R3, i, j)."""
    R, i, j = atom_pairs[:, :3], atom_pairs[:, 3], atom_pairs[:, 4]
    return np.linalg.norm(structure.positions[j] + R @ structure.cell - structure.positions[i], axis=1)


def default_radius_A(data) -> float:
    """NEAR_RANGE_FRACTION of the longest block distance of H (Angstrom)."""
    return NEAR_RANGE_FRACTION * float(block_distances(data.structure, data.hamiltonian.atom_pairs).max())


def stored_entries_within(matrix, structure, radius_A: float) -> int:
    """Entries of the blocks at most ``radius_A`` apart: the near-range pencil's size, before building it."""
    keep = block_distances(structure, matrix.atom_pairs) <= radius_A
    return int((matrix.shapes[keep, 0] * matrix.shapes[keep, 1]).sum())


def within_distance(data, radius_A: float):
    """A copy of the :class:`~deeph_jax.io.DeephStructure` whose H and S keep only the blocks of atom pairs at
    most ``radius_A`` apart (on-site blocks always)."""
    if not radius_A >= NEAR_RANGE_MIN_A:
        raise DeephError(f"a near-range radius of {radius_A} A is below {NEAR_RANGE_MIN_A} A: it would drop the "
                         "bonds themselves", data.path)
    kept = {}
    for name in ("hamiltonian", "overlap"):
        m = getattr(data, name)
        kept[name] = None if m is None else m.select(
            np.flatnonzero(block_distances(data.structure, m.atom_pairs) <= radius_A))
    return dataclasses.replace(data, **kept)


__all__ = ["block_distances", "default_radius_A", "stored_entries_within", "within_distance", "NEAR_RANGE_FRACTION",
           "NEAR_RANGE_MIN_A"]
