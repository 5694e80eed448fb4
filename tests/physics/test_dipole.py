"""Molecular dipole from the DFT H against PySCF's own dip_moment (def2-SVP water: s, p and d shells)."""

import re

import numpy as np

from deeph_jax.cli import main
from deeph_jax.io import Structure, write_deeph_dir
from deeph_jax.physics.dipole import molecular_dipole
from deeph_jax.units import BOHR_TO_ANGSTROM, E_ANGSTROM_TO_DEBYE


def test_water_dipole_matches_pyscf(tmp_path, capsys):
    from deeph_jax.dft.molecules import MoleculeSettings, compute_molecule

    pos = np.array([[0.0, 0.0, 0.0], [0.97, 0.05, 0.0], [-0.22, 0.94, 0.1]]) + 5.0
    data, mf = compute_molecule(Structure(("O", "H", "H"), pos, np.eye(3) * 10, periodic=False), MoleculeSettings())
    dipole, details = molecular_dipole(data)
    reference_au = mf.dip_moment(unit="au", verbose=0)  # e * Bohr, origin 0, PySCF's own density
    ours_au = dipole / BOHR_TO_ANGSTROM
    debye_per_au = BOHR_TO_ANGSTROM * E_ANGSTROM_TO_DEBYE  # one constant for both sides
    assert np.abs(ours_au - reference_au).max() * debye_per_au < 1e-4
    assert details["nuclear_charges"].tolist() == [8.0, 1.0, 1.0]
    assert abs(details["mulliken_electrons"].sum() - 10.0) < 1e-8

    write_deeph_dir(tmp_path / "water", data)
    assert main(["polarization", str(tmp_path / "water")]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    m = re.match(r"\|dipole\| = (\d+\.\d{6}) Debye", line)
    assert m and abs(float(m.group(1)) - np.linalg.norm(reference_au) * debye_per_au) < 1e-4
