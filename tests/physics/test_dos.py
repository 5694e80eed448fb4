"""DOS: normalization and the CLI on MoTe2."""

import shutil

import numpy as np

from deeph_jax.cli import main
from deeph_jax.physics.dos import energy_grid, gaussian_dos


def test_gaussian_dos_integrates_to_the_number_of_states():
    e = np.random.default_rng(0).normal(size=(5, 7))
    grid = energy_grid(e, 0.05, 0.005)
    dos = gaussian_dos(e, grid, 0.05)
    assert abs(np.trapezoid(dos, grid) - 2 * 7) < 1e-6  # spin factor 2 x 7 bands


def test_cli_dos_mote2(mote2_dir, tmp_path, capsys):
    folder = tmp_path / "MoTe2"
    shutil.copytree(mote2_dir, folder)
    assert main(["dos", str(folder), "--kmesh", "3", "3", "1", "--sigma", "0.2"]) == 0
    out = np.load(folder / "dos.npz")
    assert abs(float(out["fermi_energy_eV"]) - 8.89) < 0.1
    occupied = out["energies_eV"] < out["fermi_energy_eV"]
    assert abs(np.trapezoid(out["dos_per_eV"][occupied], out["energies_eV"][occupied]) - 46) < 0.5
    assert (folder / "dos.png").is_file() and "E_F" in capsys.readouterr().out
