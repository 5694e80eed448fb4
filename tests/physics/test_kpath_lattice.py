"""Band paths of rattled and strained supercells follow their lattice (Gamma-M-K-Gamma for hexagonal sheets)."""

import warnings

import numpy as np

from deeph_jax.dft.crystals import CrystalSource, named_cell
from deeph_jax.io import Structure
from deeph_jax.physics.kpath import auto_segments, build_path

IN_PLANE = np.array([True, True, False])


def labels(segments):
    return [s.labels for s in segments]


def test_rattled_strained_hbn_supercell_takes_the_hexagonal_path():
    src = CrystalSource(supercell=(3, 3, 1), rattle=0.0, rattle_max=0.15, strain=0.02)
    import seekpath

    with warnings.catch_warnings():
        warnings.simplefilter("error", seekpath.hpkot.EdgeCaseWarning)  # no edge-case chatter reaches users
        for index in (1, 2):
            s = src.geometry(11, index)
            segs = auto_segments(s, IN_PLANE)
            assert labels(segs) == [("Γ", "M"), ("M", "K"), ("K", "Γ")]
            # M and K are the supercell's own zone-boundary points (|M| = |b1| / 2, |K| = |b1| / sqrt(3)).
            path = build_path(segs, s.cell)
            b = 2 * np.pi * np.linalg.inv(s.cell).T
            m, k = segs[0].end @ b, segs[1].end @ b
            assert abs(np.linalg.norm(m) / np.linalg.norm(b[0]) - 0.5) < 0.02
            assert abs(np.linalg.norm(k) / np.linalg.norm(b[0]) - 1 / np.sqrt(3)) < 0.02
            assert path.kpoints.shape[1] == 3


def test_a_structure_with_a_lower_symmetry_lattice_keeps_its_own_path():
    # An orthorhombic lattice: the bare lattice is no more symmetric than the atoms' own description needs.
    cell = np.diag([3.0, 4.0, 5.0])
    s = Structure(("C", "C"), np.array([[0.0, 0.0, 0.0], [1.5, 2.0, 2.5]]), cell, periodic=True)
    assert labels(auto_segments(s))[0][0] == "Γ"
    hexagonal = named_cell("graphene")
    assert labels(auto_segments(hexagonal, IN_PLANE)) == [("Γ", "M"), ("M", "K"), ("K", "Γ")]
