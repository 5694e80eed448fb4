"""Bands: MoTe2 against DeepH-dock's stored output, sparse vs dense, k-paths, Fermi level, bad input."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from deeph_jax.cli import main
from deeph_jax.errors import DeephError
from deeph_jax.io import BlockSparse, read_deeph_dir, read_matrix, write_matrix
from deeph_jax.physics.bands import bands_at, nearest_bands, solve_dense
from deeph_jax.physics.fermi import fermi_level
from deeph_jax.physics.kpath import auto_segments, build_path, parse_kpath, read_kpath

DATA = Path(__file__).parent / "data"


@pytest.fixture
def mote2_copy(mote2_dir, tmp_path):
    dst = tmp_path / "MoTe2"
    shutil.copytree(mote2_dir, dst)
    return dst


def test_mote2_matches_deepx_dock(mote2_dir):
    """Reference made by bench/deepx_dock_bands.py in DeepH-dock's own venv (dense eigh, unshifted)."""
    ref = np.load(DATA / "mote2_deepx_dock_bands.npz")
    data = read_deeph_dir(mote2_dir)
    path = build_path(read_kpath(mote2_dir / "K_PATH"), data.structure.cell)
    assert path.kpoints.shape == (50 + 30 + 60, 3)  # each segment includes both of its ends
    np.testing.assert_allclose(path.kpoints, ref["kpoints"], atol=1e-12)
    np.testing.assert_allclose(path.distances / (2 * np.pi), ref["distances"], atol=1e-12)
    assert path.tick_labels == ("GAMMA", "M", "K", "GAMMA")
    e = bands_at(data, path.kpoints)
    assert np.abs(e - ref["energies_eV"]).max() < 1e-6


def test_sparse_shift_invert_matches_dense(mote2_dir):
    data = read_deeph_dir(mote2_dir)
    ks = build_path(read_kpath(mote2_dir / "K_PATH"), data.structure.cell).kpoints[::7]
    sigma = data.fermi_energy_eV
    dense = nearest_bands(bands_at(data, ks), sigma, 12)
    sparse = bands_at(data, ks, n_bands=12, sigma=sigma)
    assert np.abs(sparse - dense).max() < 1e-8


def test_cli_bands_with_prediction_overlay(mote2_copy, capsys):
    h, s = read_matrix(mote2_copy / "hamiltonian.h5"), read_matrix(mote2_copy / "overlap.h5")
    assert np.array_equal(h.atom_pairs, s.atom_pairs)
    pred = BlockSparse(h.atom_pairs, h.shapes, h.boundaries, h.entries + 0.01 * s.entries)  # H + 0.01 eV S
    write_matrix(mote2_copy / "hamiltonian_pred.h5", pred)
    (mote2_copy / "K_PATH").write_text("6 0 0 0 0.5 0 0 GAMMA M\n4 0.5 0 0 0.3333333333 0.3333333333 0 M K\n")
    assert main(["bands", str(mote2_copy), "--kpath", str(mote2_copy / "K_PATH")]) == 0
    out = np.load(mote2_copy / "bands.npz")
    assert str(out["hamiltonian"]) == "pred"
    assert out["energies_eV"].shape == (10, 57) and out["energies_dft_eV"].shape == (10, 57)
    assert abs(float(out["max_abs_diff_eV"]) - 0.01) < 1e-9  # every band moves by exactly 0.01 eV
    assert abs(float(out["band_mae_near_fermi_eV"]) - 0.01) < 1e-9
    assert (mote2_copy / "bands.png").stat().st_size > 1000
    assert "max |pred - DFT|" in capsys.readouterr().out


def test_cli_bands_auto_path_h5(mote2_copy):
    import h5py

    out = mote2_copy / "b.h5"
    assert main(["bands", str(mote2_copy), "--npoints", "20", "--hamiltonian", "dft", "--out", str(out)]) == 0
    with h5py.File(out) as f:
        assert f["energies_eV"].shape[1] == 57
        assert [s.decode() for s in f["tick_labels"][()]] == ["Γ", "M", "K", "Γ"]
        assert abs(f["fermi_energy_eV"][()] - 8.8946) < 0.01  # mid-gap from the electron count
    assert out.with_suffix(".png").is_file()


def test_auto_path_stays_in_plane_for_a_sheet():
    from deeph_jax.dft.crystals import named_cell

    segs = auto_segments(named_cell("hbn"), np.array([True, True, False]), 60)
    assert [s.labels for s in segs] == [("Γ", "M"), ("M", "K"), ("K", "Γ")]
    assert all(abs(s.start[2]) < 1e-12 and abs(s.end[2]) < 1e-12 for s in segs)
    bulk = auto_segments(named_cell("hbn"), np.array([True, True, True]), 60)
    assert any(abs(s.end[2]) > 0.1 for s in bulk)  # Gamma-A leaves the plane when c is periodic


def test_fermi_level_metal_and_insulator():
    ks = np.linspace(0, 1, 400, endpoint=False)
    band = -2.0 * np.cos(2 * np.pi * ks)[:, None]  # one tight-binding band, half filled with 1 electron
    ef, gap = fermi_level(band, 1.0, sigma=0.01)
    assert gap is None and abs(ef) < 1e-3
    ef, gap = fermi_level(np.hstack([band, band + 10.0]), 2.0)
    assert gap == (2.0, 8.0)
    assert abs(ef - 0.5 * (gap[0] + gap[1])) < 1e-12


# -- bad input -------------------------------------------------------------------------------------
def test_bad_kpath_is_one_line(tmp_path):
    bad = tmp_path / "K_PATH"
    bad.write_text("50 0 0 0 0.5 0 0 G M\n30 0.5 0 zero 1/3 1/3 0 M K\n")
    with pytest.raises(DeephError, match=r"K_PATH: line 2: .*numbers") as exc:
        read_kpath(bad)
    assert "\n" not in str(exc.value)
    with pytest.raises(DeephError, match="line 1: expected"):
        parse_kpath("50 0 0 0 0.5 0 0 G\n")
    with pytest.raises(DeephError, match="at least 2 points"):
        parse_kpath("1 0 0 0 0.5 0 0 G M\n")


def test_folder_without_hamiltonian(mote2_copy, capsys):
    (mote2_copy / "hamiltonian.h5").unlink()
    assert main(["bands", str(mote2_copy)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no hamiltonian.h5" in err and str(mote2_copy) in err


def test_overlap_not_positive_definite_names_k_and_eigenvalue(mote2_copy, capsys):
    s = read_matrix(mote2_copy / "overlap.h5")
    entries = s.entries.copy()
    n = next(n for n, k in enumerate(s.atom_pairs) if k[3] == k[4] == 0 and not k[:3].any())
    entries[s.boundaries[n]] = -0.5  # first orbital's norm made negative
    write_matrix(mote2_copy / "overlap.h5", BlockSparse(s.atom_pairs, s.shapes, s.boundaries, entries))
    (mote2_copy / "K_PATH").write_text("3 0 0 0 0.5 0 0 GAMMA M\n")
    assert main(["bands", str(mote2_copy), "--kpath", str(mote2_copy / "K_PATH")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "not positive definite at k = (0.000000, 0.000000, 0.000000)" in err
    assert "smallest eigenvalue -" in err and "usual fixes" in err and "overlap.h5" in err


def test_solve_dense_rejects_indefinite_overlap():
    with pytest.raises(DeephError, match=r"smallest eigenvalue -1\.000e\+00"):
        solve_dense(np.eye(2), np.diag([1.0, -1.0]), (0.25, 0, 0))


HBN_CELL = Path(__file__).resolve().parents[2] / "datasets" / "hbn-szv" / "train-2x2" / "00000"


def test_bands_method_by_size():
    from deeph_jax.physics.workflows import DENSE_LIMIT, bands_method

    assert bands_method("auto", DENSE_LIMIT, None, False) == "dense"
    assert bands_method("auto", DENSE_LIMIT + 1, None, False) == "sparse"
    assert bands_method("auto", 100, 10, False) == "sparse"
    assert bands_method("dense", 10**6, None, False) == "dense"  # the memory check decides, not the size
    with pytest.raises(DeephError, match="every band"):
        bands_method("dense", 100, 10, False)
    with pytest.raises(DeephError, match="auto, dense or sparse"):
        bands_method("lanczos", 100, None, False)


def test_cli_bands_sparse_method_defaults_to_20_near_fermi(tmp_path, capsys):
    """--method sparse without --nbands: the 20 eigenvalues nearest E_F at every k, equal to the dense ones."""
    cell = tmp_path / "hbn"
    shutil.copytree(HBN_CELL, cell)
    assert main(["bands", str(cell), "--npoints", "6", "--method", "sparse", "--out", str(tmp_path / "s.npz")]) == 0
    assert "the 20 nearest" in capsys.readouterr().out
    assert main(["bands", str(cell), "--npoints", "6", "--method", "dense", "--out", str(tmp_path / "d.npz")]) == 0
    sparse, dense = np.load(tmp_path / "s.npz"), np.load(tmp_path / "d.npz")
    assert sparse["energies_eV"].shape[1] == 20
    expected = nearest_bands(dense["energies_eV"], float(sparse["sigma_eV"]), 20)
    np.testing.assert_allclose(sparse["energies_eV"], expected, atol=1e-8)
    # --track: Davidson from k to k gives the same bands
    assert main(["bands", str(cell), "--npoints", "6", "--method", "sparse", "--track",
                 "--out", str(tmp_path / "t.npz")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "t.npz")["energies_eV"], expected, atol=1e-8)
    # --near-range: Davidson started and preconditioned by the pencil within 6 A, the same bands
    capsys.readouterr()
    assert main(["bands", str(cell), "--npoints", "6", "--method", "sparse", "--near-range", "6",
                 "--out", str(tmp_path / "n.npz")]) == 0
    assert "near-range pencil within 6.00 A" in capsys.readouterr().out
    np.testing.assert_allclose(np.load(tmp_path / "n.npz")["energies_eV"], expected, atol=1e-8)


def test_sparse_plan_takes_the_near_range_pencil_when_the_full_one_would_not_fit(monkeypatch):
    from deeph_jax.io import read_deeph_dir
    from deeph_jax.physics import memory
    from deeph_jax.physics.near_range import stored_entries_within
    from deeph_jax.physics.workflows import sparse_plan

    data = read_deeph_dir(HBN_CELL)
    n, nnz = 32, data.hamiltonian.entries.shape[0]
    full = memory.shift_invert_bytes(n, nnz, True)
    monkeypatch.setattr(memory, "available_bytes", lambda: 2 * full)
    assert sparse_plan(data, n, True) is None  # the full pencil fits
    assert sparse_plan(data, n, True, 6.0) == 6.0
    radius = 0.55 * 10.2  # the shipped cell stores blocks out to ~10.2 A
    near = memory.near_range_bytes(n, nnz, stored_entries_within(data.hamiltonian, data.structure, radius), True)
    assert near < full
    monkeypatch.setattr(memory, "available_bytes", lambda: (near + full) / 2 / 0.9)
    assert sparse_plan(data, n, True) == pytest.approx(radius, abs=0.3)
    with pytest.raises(DeephError, match="needs about"):
        sparse_plan(data, n, True, "off")
    with pytest.raises(DeephError, match="at least 2 A"):
        sparse_plan(data, n, True, "1.0")
    with pytest.raises(DeephError, match="auto, off or a radius"):
        sparse_plan(data, n, True, "near")


def test_cli_bands_refused_when_memory_would_not_fit(tmp_path, monkeypatch, capsys):
    from deeph_jax.physics import memory

    cell = tmp_path / "hbn"
    shutil.copytree(HBN_CELL, cell)
    monkeypatch.setattr(memory, "available_bytes", lambda: 1e4)
    assert main(["bands", str(cell), "--npoints", "6"]) != 0
    err = capsys.readouterr().err
    assert "dense bands of 32 orbitals needs about" in err and "--method sparse" in err
