"""`deeph-jax dos --method kpm` on a tiled shipped DFT cell, against the dense command on the same H, and the
method choice and memory refusal."""

from pathlib import Path

import numpy as np
import pytest

from deeph_jax.cli import main
from deeph_jax.io import read_deeph_dir, write_deeph_dir
from deeph_jax.io.tiling import tile_deeph

SMALL = Path(__file__).resolve().parents[2] / "datasets" / "hbn-szv" / "train-2x2" / "00000"


@pytest.fixture(scope="module")
def tiled(tmp_path_factory):
    """The 8-atom DFT cell tiled 3x3 (72 atoms, 288 orbitals): Gamma of the tile is the 3x3 mesh of the cell."""
    folder = tmp_path_factory.mktemp("kpm") / "hbn-3x3"
    write_deeph_dir(folder, tile_deeph(read_deeph_dir(SMALL), (3, 3, 1)))
    return folder


def test_kpm_dos_matches_dense_on_the_same_hamiltonian(tiled, capsys):
    assert main(["dos", str(tiled), "--kmesh", "1", "1", "1", "--method", "dense", "--sigma", "0.1",
                 "--out", str(tiled / "dense.npz")]) == 0
    assert main(["dos", str(tiled), "--kmesh", "1", "1", "1", "--method", "kpm", "--sigma", "0.1", "--vectors", "8",
                 "--out", str(tiled / "kpm.npz")]) == 0
    out = capsys.readouterr().out
    assert "KPM" in out and "dense diagonalization" in out
    dense, kpm = np.load(tiled / "dense.npz"), np.load(tiled / "kpm.npz")
    assert str(kpm["method"]) == "kpm" and np.all(kpm["dos_stderr_per_eV"] >= 0)
    # The same insulator: E_F mid-gap from both, within the KPM resolution (the gap is 4.6 eV).
    assert abs(float(kpm["fermi_energy_eV"]) - float(dense["fermi_energy_eV"])) < 2 * float(kpm["resolution_eV"])
    # Both count 2 x 4 x 72 / 2 = 288 states in all, and 144 x 2 = 288 electrons' worth below E_F.
    e, rho = kpm["energies_eV"], kpm["dos_per_eV"]
    total = np.trapezoid(rho, e)
    assert abs(total - 2 * 288) < 0.03 * 2 * 288
    below = np.trapezoid(np.where(e < kpm["fermi_energy_eV"], rho, 0.0), e)
    assert abs(below - 288) < 0.03 * 288
    assert (tiled / "kpm.png").is_file()


def test_auto_picks_dense_for_small_cells(tiled, capsys):
    assert main(["dos", str(tiled), "--kmesh", "1", "1", "1", "--out", str(tiled / "auto.npz")]) == 0
    assert str(np.load(tiled / "auto.npz")["method"]) == "dense"
    from deeph_jax.physics.workflows import choose_dos_method

    assert choose_dos_method("auto", 10_000) == "kpm" and choose_dos_method("dense", 10_000) == "dense"


def test_a_job_that_does_not_fit_is_refused_before_it_starts(tiled, capsys, monkeypatch):
    from deeph_jax.physics import memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 1e5)
    out = tiled / "refused.npz"
    assert main(["dos", str(tiled), "--kmesh", "1", "1", "1", "--method", "dense", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs about" in err[0] and "--method kpm" in err[0]
    assert not out.exists()


def test_kpm_memory_estimate_counts_the_overlap_inverse(tiled, capsys, monkeypatch):
    """The KPM check counts what comes on top of H and S: refused in one line when that does not fit, and
    the sparse factor route costs more than conjugate gradients, which keep no factor."""
    from deeph_jax.physics import memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 1e5)
    out = tiled / "refused-kpm.npz"
    assert main(["dos", str(tiled), "--kmesh", "1", "1", "1", "--method", "kpm", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "KPM of" in err[0] and "needs about" in err[0] and not out.exists()
    sparse = memory.kpm_bytes(401_408, 179_429_376, 2, False, "sparse-single")
    assert memory.kpm_bytes(401_408, 179_429_376, 2, False, "cg") < 0.01 * sparse
    assert 5e9 < sparse < 1e10  # measured at 100,352 atoms: ~5 GB for the trimmed copy and its factor


@pytest.mark.parametrize("args, message", [(["--vectors", "1"], "--vectors"), (["--moments", "10"], "--moments")])
def test_bad_kpm_options_are_one_line(tiled, capsys, args, message):
    assert main(["dos", str(tiled), "--kmesh", "1", "1", "1", "--method", "kpm", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
