"""Periodic generator: Wigner-Seitz inverse Bloch transform, bands vs PySCF's get_bands, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

pytest.importorskip("pyscf")

from deeph_jax.dft.crystals import (  # noqa: E402
    CrystalSettings,
    CrystalSource,
    bands_check,
    compute_crystal,
    generate_crystals,
    named_cell,
    supercell,
    vacuum_directions,
)
from deeph_jax.dft.realspace import bvk_vectors, mesh_fractions, wigner_seitz_blocks  # noqa: E402
from deeph_jax.errors import DeephError  # noqa: E402
from deeph_jax.io import read_deeph_dir, write_deeph_dir  # noqa: E402
from deeph_jax.io.atomic import atomic_directory  # noqa: E402


def test_wigner_seitz_recovers_short_ranged_model():
    """A model with blocks up to 4 A, sampled on a mesh with a 12 A BvK cell, comes back exactly."""
    rng = np.random.default_rng(0)
    cell = np.array([[3.0, 0.0, 0.0], [-1.5, 2.6, 0.0], [0.0, 0.0, 20.0]])
    pos = np.array([[0.1, 0.2, 10.0], [1.4, 1.0, 10.3]])
    offsets = np.array([0, 1, 4])
    true = {}
    for R in np.ndindex(5, 5, 1):
        R = np.array(R) - [2, 2, 0]
        for i in range(2):
            for j in range(2):
                if np.linalg.norm(pos[j] + R @ cell - pos[i]) <= 4.0:
                    key = (int(R[0]), int(R[1]), int(R[2]), i, j)
                    mirror = (-key[0], -key[1], -key[2], j, i)
                    if mirror in true:
                        true[key] = true[mirror].T
                    else:
                        true[key] = rng.normal(size=(offsets[i + 1] - offsets[i], offsets[j + 1] - offsets[j]))
    mesh = (4, 4, 1)
    kf = mesh_fractions(mesh)
    hk = np.zeros((len(kf), 4, 4), complex)
    for (r1, r2, r3, i, j), b in true.items():
        ph = np.exp(2j * np.pi * kf @ np.array([r1, r2, r3]))
        hk[:, offsets[i]:offsets[i + 1], offsets[j]:offsets[j + 1]] += ph[:, None, None] * b
    got, imag = wigner_seitz_blocks(hk, kf, mesh, pos, cell, offsets, cutoff=4.0)
    assert imag < 1e-12
    assert set(got) == set(true)
    for k, b in true.items():
        np.testing.assert_allclose(got[k], b, atol=1e-12)
    assert len(bvk_vectors(mesh)) == 16


def test_named_cells_and_supercells():
    hbn = named_cell("hbn", 12.0)
    assert hbn.symbols == ("B", "N")
    assert vacuum_directions(hbn) == (False, False, True)
    assert vacuum_directions(named_cell("diamond")) == (False, False, False)
    big = supercell(hbn, (4, 4, 1))
    assert big.n_atoms == 32 and np.allclose(big.cell[2], [0, 0, 12.0])
    d = np.linalg.norm(big.positions[:, None] - big.positions[None], axis=-1) + np.eye(32) * 9
    assert d.min() > 1.4
    s = CrystalSettings()
    assert s.meshes(supercell(hbn, (2, 2, 1)))[:2] == ((2, 2, 1), (4, 4, 1))
    assert s.meshes(big)[:2] == ((1, 1, 1), (2, 2, 1))


@pytest.mark.slow
def test_primitive_hbn_bands_match_pyscf(tmp_path):
    """Stored H(R), S(R) reproduce PySCF's non-self-consistent bands at k on neither mesh (<= 10 meV)."""
    settings = CrystalSettings(kmesh=(2, 2, 1))  # SCF 2x2 (cheap), dense 8x8 (BvK 20.03 A), cutoff 10 A
    data, mf, extras = compute_crystal(named_cell("hbn", 12.0), settings)
    assert extras["dense_mesh"] == (8, 8, 1)
    # PySCF's multigrid integrates this cell right (checked before the SCF), and the converged density too.
    assert data.info["xc_integrator"] == "multigrid" and abs(data.info["grid_electrons"] - 8.0) < 1e-6
    with atomic_directory(tmp_path / "hbn") as tmp:
        write_deeph_dir(tmp, data, compression="gzip")
    stored = read_deeph_dir(tmp_path / "hbn")
    assert stored.info["pseudopotential"] == "gth-pbe" and stored.info["occupation"] == 8
    assert stored.basis.to_orbital_map() == {"B": [0, 1], "N": [0, 1]}
    assert stored.hamiltonian.missing_mirrors() == 0 and stored.hamiltonian.hermiticity_error() < 1e-12
    assert stored.hamiltonian.get((0, 0, 0), 0, 0) is not None  # on-site blocks present
    # Every block within the cutoff, none beyond.
    pos, cell = stored.structure.positions, stored.structure.cell
    dist = [np.linalg.norm(pos[j] + np.array(R) @ cell - pos[i]) for (*R, i, j), _ in stored.hamiltonian.blocks()]
    assert max(dist) <= 10.0
    # k-points on neither the 2x2 SCF mesh nor the 8x8 dense mesh.
    ks = np.array([[0.13, 0.29, 0.0], [0.41, 0.07, 0.0], [0.071, 0.213, 0.0], [1 / 3, 2 / 3, 0.0], [0.45, 0.45, 0.0]])
    err = bands_check(stored, mf, ks, n_empty=4)
    print("band error (eV) per k:", err)
    assert err.max() <= 0.010, err
    # Gamma is on both meshes: the transform itself is exact there up to the dropped tail.
    e = scipy.linalg.eigh(stored.hamiltonian_k([0, 0, 0]), stored.overlap_k([0, 0, 0]), eigvals_only=True)
    vbm = e[3]
    assert stored.info["fermi_energy_eV"] > vbm  # mid-gap of an insulator


def test_crystal_bad_inputs(tmp_path):
    bad = tmp_path / "POSCAR_close"
    bad.write_text("x\n1.0\n5 0 0\n0 5 0\n0 0 5\nB N\n1 1\nCartesian\n0 0 0\n0.01 0 0\n")
    with pytest.raises(DeephError, match="POSCAR_close: .*overlapping atoms"):
        generate_crystals(tmp_path / "o", n=1, source=CrystalSource(name=None, path=str(bad), supercell=(1, 1, 1)),
                          progress=False)
    exotic = tmp_path / "POSCAR_pu"
    exotic.write_text("x\n1.0\n5 0 0\n0 5 0\n0 0 5\nPu\n1\nCartesian\n0 0 0\n")
    with pytest.raises(DeephError, match="POSCAR_pu: element Pu is not in basis 'gth-szv'"):
        generate_crystals(tmp_path / "o", n=1, source=CrystalSource(name=None, path=str(exotic), supercell=(1, 1, 1)),
                          progress=False)
    junk = tmp_path / "junk.cif"
    junk.write_text("data_\n_this is not a cif\n")
    with pytest.raises(DeephError, match="junk.cif: "):
        generate_crystals(tmp_path / "o", n=1, source=CrystalSource(name=None, path=str(junk)), progress=False)
    with pytest.raises(DeephError, match="needs a Born-von Karman supercell"):
        generate_crystals(tmp_path / "o2", n=1, settings=CrystalSettings(cutoff=12.0), progress=False)


def test_multigrid_charge_check_picks_another_basis_or_fftdf(monkeypatch):
    """Where the multigrid XC grid misses charge of the guess density, the SCF runs in another basis of the same
    lattice, or with FFTDF where every basis fails; a converged density short of electrons on the grid (the broken
    twisted bilayer: 111.41 of 112) raises, naming the folder."""
    from types import SimpleNamespace

    from deeph_jax.dft import crystals

    sheet = named_cell("hbn", 12.0)
    cell = crystals.build_cell(sheet, CrystalSettings())
    assert crystals.multigrid_charge_error(cell, cell.make_kpts((1, 1, 1)), CrystalSettings()) < 1e-9
    same, settings = crystals.exact_integrator(sheet, CrystalSettings())
    assert same is sheet and settings.multigrid

    calls = []

    def fails_first(cell, kpts, settings):
        calls.append(cell.lattice_vectors().copy())
        return 7.6e-3 / 8 if len(calls) == 1 else 1e-11

    monkeypatch.setattr(crystals, "multigrid_charge_error", fails_first)
    other, settings = crystals.exact_integrator(sheet, CrystalSettings(), "hbn/00000")
    assert settings.multigrid and len(calls) == 2
    np.testing.assert_allclose(other.cell[:2], [sheet.cell[0], sheet.cell[1] - sheet.cell[0]], atol=1e-12)
    np.testing.assert_allclose(other.positions, sheet.positions, atol=0)
    assert np.isclose(np.linalg.det(other.cell), np.linalg.det(sheet.cell))
    monkeypatch.setattr(crystals, "multigrid_charge_error", lambda *a: 1e-3)
    same, settings = crystals.exact_integrator(sheet, CrystalSettings(), "hbn/00000")
    assert same is sheet and not settings.multigrid

    def fake_mf(count, spin=False):
        dm = np.zeros((2, 1, 2, 2) if spin else (1, 2, 2))
        nr = lambda *a, **k: (count, 0.0, None)  # noqa: E731
        return SimpleNamespace(make_rdm1=lambda: dm, _numint=SimpleNamespace(nr_rks=nr, nr_uks=nr),
                               cell=SimpleNamespace(nelectron=112), grids=None, xc="PBE", kpts=None)

    with pytest.raises(DeephError, match="twisted/00000: the SCF density integrates to 111.4109 electrons"):
        crystals.grid_electron_count(fake_mf(111.41086), "twisted/00000")
    assert crystals.grid_electron_count(fake_mf(112.0 + 1e-9)) == pytest.approx(112.0)
    assert crystals.grid_electron_count(fake_mf(np.array([56.0, 56.0]), spin=True)) == pytest.approx(112.0)


@pytest.mark.parametrize("g_chunk", [None, 1000])
def test_fast_hcore_equals_pyscf_multigrid_hcore(monkeypatch, g_chunk):
    """The analytic non-local projector h_core is PySCF's multigrid h_core (the SCF and the dense Fock use it),
    also when the local pseudopotential is summed over G in chunks (as a 72-atom cell needs)."""
    from deeph_jax.dft import crystals
    from deeph_jax.dft.crystals import build_cell, make_kmf

    if g_chunk is not None:
        monkeypatch.setattr(crystals, "_G_CHUNK", g_chunk)

    settings = CrystalSettings()
    cell = build_cell(supercell(named_cell("hbn"), (1, 1, 1)), settings)
    mf = make_kmf(cell, cell.make_kpts((2, 2, 1)), settings)
    assert "get_hcore" in mf.__dict__  # installed
    kpts = cell.get_abs_kpts(np.array([[0.0, 0.0, 0.0], [0.13, 0.29, 0.0]]))
    ours = mf.get_hcore(cell, kpts)
    ref = type(mf).get_hcore(mf, cell, kpts)
    assert np.abs(ours - ref).max() < 1e-10


def test_dense_mesh_reaches_bvk_min_in_a_sheared_cell():
    """The per-edge rule ceil(20 A / |a_i|) misses a sheared 4x4 hBN cell whose supercell diagonal is shorter
    than its edges (seen in the 4x4 training set: 19.61 A); the mesh grows until every BvK vector is >= 20 A."""
    from deeph_jax.dft.crystals import _dense_mesh
    from deeph_jax.dft.realspace import shortest_bvk_length

    ideal = supercell(named_cell("hbn"), (4, 4, 1)).cell
    strain = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    strain[:2, :2] += np.array([[0.0, -0.02], [-0.02, 0.0]])  # 2 % shear: |a_1|, |a_2| > 10 A, |a_1 + a_2| < 10 A
    cell = ideal @ strain
    vac = (False, False, True)
    per_edge = tuple(int(np.ceil(20.0 / L - 1e-6)) if not v else 1 for v, L in zip(vac, np.linalg.norm(cell, axis=1)))
    assert shortest_bvk_length(cell, per_edge, (True, True, False)) < 20.0  # the case the old rule missed
    mesh = _dense_mesh(cell, vac, 20.0)
    assert shortest_bvk_length(cell, mesh, (True, True, False)) >= 20.0 and mesh[2] == 1
    assert np.prod(mesh) <= 6
    assert _dense_mesh(ideal, vac, 20.0) == (2, 2, 1)  # unchanged where the edges already suffice


def test_settings_of_structure_reads_the_recorded_settings(tmp_path):
    """A reference recomputation takes the dataset's own basis, smearing, tolerance and meshes (a mesh recorded
    per structure wins over the dataset's); a folder without metadata.json is refused, naming the file."""
    import json

    meta = {"basis": "gth-dzvp", "pseudopotential": "gth-pbe", "functional": "PBE", "scf_kmesh": [3, 3, 1],
            "dense_kmesh": [6, 6, 1], "cutoff_A": 9.0, "smearing": {"method": "fermi-dirac", "width_eV": 0.1},
            "conv_tol_hartree_per_cell": 1e-8, "method": "restricted Kohn-Sham, pyscf.pbc KRKS (FFTDF)"}
    (tmp_path / "set" / "00000").mkdir(parents=True)
    (tmp_path / "set" / "00001").mkdir()
    (tmp_path / "set" / "metadata.json").write_text(json.dumps(meta))
    (tmp_path / "set" / "00001" / "info.json").write_text(json.dumps({"scf_kmesh": [2, 2, 1], "dense_kmesh": [4, 4, 1]}))
    plain = CrystalSettings.of_structure(tmp_path / "set" / "00000")
    assert (plain.basis, plain.kmesh, plain.dense_kmesh, plain.cutoff) == ("gth-dzvp", (3, 3, 1), (6, 6, 1), 9.0)
    assert (plain.smearing_eV, plain.conv_tol, plain.multigrid) == (0.1, 1e-8, False)
    own_mesh = CrystalSettings.of_structure(tmp_path / "set" / "00001")
    assert (own_mesh.kmesh, own_mesh.dense_kmesh) == ((2, 2, 1), (4, 4, 1))
    (tmp_path / "lone").mkdir()
    with pytest.raises(DeephError, match="metadata.json"):
        CrystalSettings.of_structure(tmp_path / "lone")
    (tmp_path / "set" / "metadata.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "cutoff_A"}))
    with pytest.raises(DeephError, match=r"metadata.json.*'cutoff_A'"):
        CrystalSettings.of_structure(tmp_path / "set" / "00000")
    (tmp_path / "set" / "metadata.json").write_text(json.dumps(meta)[:-9])
    with pytest.raises(DeephError, match=r"metadata.json.*not valid JSON"):
        CrystalSettings.of_structure(tmp_path / "set" / "00000")
