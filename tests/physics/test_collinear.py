"""Spin-resolved bands and DOS of collinear spinful H: a shipped DFT hBN cell as the spin-up channel and the
same H shifted by +0.3 eV (H + 0.3 S) as the spin-down channel, stored in the DeepH spinful layout."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from deeph_jax.io import read_deeph_dir, write_deeph_dir
from deeph_jax.io.blocks import BlockSparse
from deeph_jax.physics.bands import bands_at
from deeph_jax.physics.collinear import is_collinear, spin_channels, spin_quarters

SMALL = Path(__file__).resolve().parents[2] / "datasets" / "hbn-szv" / "train-2x2" / "00000"
SHIFT = 0.3  # eV, spin down above spin up


def _spinful(data, shift: float):
    """The (2a, 2b) blocks [[H, 0], [0, H + shift S]] of every stored (R, i, j)."""
    blocks = {}
    for key, h in data.hamiltonian.blocks():
        s = data.overlap.get(key[:3], key[3], key[4])
        a, b = h.shape
        block = np.zeros((2 * a, 2 * b), complex)
        block[:a, :b], block[a:, b:] = h, h + shift * (0.0 if s is None else s)
        blocks[key] = block
    return replace(data, hamiltonian=BlockSparse.from_blocks(blocks), info={**data.info, "spinful": True})


@pytest.fixture(scope="module")
def collinear(tmp_path_factory):
    small = read_deeph_dir(SMALL)
    folder = tmp_path_factory.mktemp("collinear") / "hbn"
    write_deeph_dir(folder, _spinful(small, SHIFT))
    return small, folder


def test_quarters_round_trip_and_detection(collinear):
    small, folder = collinear
    data = read_deeph_dir(folder)
    up, down, mixing = spin_quarters(data.hamiltonian)
    assert mixing == 0.0 and is_collinear(data)
    assert np.abs(up.entries - small.hamiltonian.entries).max() < 1e-12
    spinless_up, _ = spin_channels(data)
    assert not spinless_up.spinful and not np.iscomplexobj(spinless_up.hamiltonian.entries)
    assert not is_collinear(small)
    mixed = data.hamiltonian.entries.copy()
    width = int(data.hamiltonian.shapes[0, 1])
    mixed[width // 2] = 1e-3  # one spin-mixing entry: row 0 of the first block, first column of its ud quarter
    mixing = replace(data, hamiltonian=BlockSparse.from_arrays(data.hamiltonian.atom_pairs, data.hamiltonian.shapes,
                                                               mixed))
    assert not is_collinear(mixing) and spin_channels(mixing) is None and spin_channels(small) is None


def test_spin_resolved_bands_and_dos_equal_each_channel(collinear, tmp_path):
    from deeph_jax.physics.workflows import run_bands, run_dos

    small, folder = collinear
    result = run_bands(folder, method="dense", npoints=30, out=tmp_path / "bands.npz", plot=True)
    reference = bands_at(small, result["kpoints"])  # the spinless cell, independently
    assert np.abs(result["energies_up_eV"] - reference).max() < 1e-8
    assert np.abs(result["energies_down_eV"] - reference - SHIFT).max() < 1e-8
    merged = np.sort(np.concatenate([reference, reference + SHIFT], axis=1), axis=1)
    assert np.abs(result["energies_eV"] - merged).max() < 1e-8
    assert (tmp_path / "bands.png").is_file()

    dos = run_dos(folder, (4, 4, 1), method="dense", sigma=0.1, out=tmp_path / "dos.npz")
    up, down, grid = dos["dos_up_per_eV"], dos["dos_down_per_eV"], dos["energies_eV"]
    assert np.abs(up + down - dos["dos_per_eV"]).max() < 1e-9 * dos["dos_per_eV"].max()
    step = grid[1] - grid[0]
    n_bands = reference.shape[1]
    assert abs(up.sum() * step - n_bands) < 1e-2 * n_bands and abs(down.sum() * step - n_bands) < 1e-2 * n_bands
    # spin down is spin up moved by SHIFT: compare the means of the two distributions
    assert abs((grid * down).sum() / down.sum() - (grid * up).sum() / up.sum() - SHIFT) < 1e-6
    assert (tmp_path / "dos.png").is_file()
