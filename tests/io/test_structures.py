"""Structures from POSCAR, CIF, extended XYZ and pymatgen objects."""

import numpy as np
import pytest
from ase.build import bulk, molecule

from deeph_jax.errors import DeephError
from deeph_jax.io import load_structure, load_structures, read_poscar, write_poscar
from deeph_jax.io.structures import Structure


@pytest.mark.parametrize("fmt,name", [("vasp", "POSCAR"), ("cif", "x.cif"), ("extxyz", "x.xyz")])
def test_periodic_formats(tmp_path, fmt, name):
    atoms = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    atoms.write(tmp_path / name, format=fmt)
    s = load_structure(tmp_path / name)
    assert s.periodic and s.symbols == tuple(atoms.get_chemical_symbols())
    np.testing.assert_allclose(s.positions, atoms.positions, atol=1e-6)
    np.testing.assert_allclose(s.cell, atoms.cell[:], atol=1e-6)


def test_plain_xyz_is_a_molecule_and_trajectory_frames(tmp_path):
    frames = [molecule("H2O"), molecule("H2O")]
    frames[1].positions[0, 0] += 0.1
    from ase.io import write

    write(tmp_path / "traj.xyz", frames, format="xyz")
    structures = load_structures(tmp_path / "traj.xyz")
    assert len(structures) == 2 and not structures[0].periodic
    assert structures[1].positions[0, 0] == pytest.approx(frames[1].positions[0, 0])


def test_pymatgen_objects():
    from pymatgen.core import Lattice, Molecule
    from pymatgen.core import Structure as PmgStructure

    crystal = PmgStructure(Lattice.cubic(4.2), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    s = load_structure(crystal)
    assert s.periodic and s.symbols == ("Mg", "O")
    mol = Molecule(["O", "H", "H"], [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    m = load_structure(mol)
    assert not m.periodic and m.n_atoms == 3


def test_molecule_in_a_box_forced_non_periodic(tmp_path):
    atoms = molecule("CH4")
    atoms.center(vacuum=5.0)
    atoms.pbc = True
    atoms.write(tmp_path / "POSCAR", format="vasp")
    assert load_structure(tmp_path / "POSCAR").periodic
    assert not load_structure(tmp_path / "POSCAR", molecule=True).periodic


def test_poscar_roundtrip_keeps_interleaved_atom_order(tmp_path):
    s = Structure(("H", "O", "H"), [[0, 0, 0], [0.7, 0.5, 0], [1.4, 0, 0]], np.eye(3) * 10)
    write_poscar(tmp_path / "POSCAR", s)
    back = read_poscar(tmp_path / "POSCAR")
    assert back.symbols == s.symbols
    np.testing.assert_array_equal(back.positions, s.positions)


def test_unreadable_structure_file(tmp_path):
    (tmp_path / "junk.cif").write_text("this is not a cif\n")
    with pytest.raises(DeephError, match="junk.cif"):
        load_structure(tmp_path / "junk.cif")
    with pytest.raises(DeephError, match="not found"):
        load_structure(tmp_path / "missing.xyz")
