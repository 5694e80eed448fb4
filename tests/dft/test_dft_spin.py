"""Spinful DFT data: SOC (two-component X2C GKS) and collinear UKS molecules, magnetic ZGNR ribbons."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

pytest.importorskip("pyscf")

from deeph_jax.dft.molecules import MoleculeSettings, MoleculeSource, compute_molecule  # noqa: E402
from deeph_jax.dft.spin import (  # noqa: E402
    HALIDES,
    RADICALS,
    compute_collinear_molecule,
    compute_soc_molecule,
    molecule_label,
    su2_from_rotation,
)
from deeph_jax.errors import DeephError  # noqa: E402
from deeph_jax.io import Structure, read_deeph_dir, write_deeph_dir  # noqa: E402
from deeph_jax.units import HARTREE_TO_EV  # noqa: E402

P = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])  # P v = (v_y, v_z, v_x)
BOX = np.eye(3) * 30.0


def _molecule(symbols, positions) -> Structure:
    pos = np.asarray(positions, dtype=float)
    return Structure(tuple(symbols), pos - pos.mean(0) + 15.0, BOX, periodic=False)


def _hbr() -> Structure:
    return _molecule(("H", "Br"), [[0.0, 0.0, 0.0], [0.0, 0.0, 1.4145]])


@pytest.fixture(scope="module")
def hbr_soc(tmp_path_factory):
    """HBr, PBE / def2-SVP, X2C with spin-orbit: written to disk and read back, with PySCF's mf."""
    data, mf = compute_soc_molecule(_hbr(), MoleculeSettings(spin="soc"))
    out = tmp_path_factory.mktemp("soc") / "hbr"
    write_deeph_dir(out, data, compression="gzip")
    return read_deeph_dir(out), mf


def _eigs(data):
    h, s = data.hamiltonian_k([0, 0, 0]), data.overlap_k([0, 0, 0])
    return scipy.linalg.eigh(h, s, eigvals_only=True)


def test_soc_stored_matches_pyscf(hbr_soc):
    """The stored (H, S), read back, give PySCF's mo_energy; H is PySCF's Fock in the reordered basis."""
    stored, mf = hbr_soc
    assert stored.spinful and stored.info["relativity"] == "x2c1e-soc" and stored.info["occupation"] == 36
    assert stored.hamiltonian.is_complex and not stored.overlap.is_complex
    assert tuple(stored.hamiltonian.shapes[0]) == tuple(2 * stored.overlap.shapes[0])
    e = _eigs(stored)
    residual = np.abs(e - mf.mo_energy * HARTREE_TO_EV).max()
    print(f"HBr SOC: max |e_stored - mo_energy| = {residual:.2e} eV")
    assert residual < 2e-5, residual
    # The conversion itself is exact: same spectrum as PySCF's own Fock matrix from the final density.
    f = mf.get_hcore() + mf.get_veff(mf.mol, mf.make_rdm1())
    e_pyscf = scipy.linalg.eigh(f, mf.get_ovlp(), eigvals_only=True) * HARTREE_TO_EV
    assert np.abs(e - e_pyscf).max() < 1e-9
    nocc = 36
    assert abs(stored.info["fermi_energy_eV"] - 0.5 * (e[nocc - 1] + e[nocc])) < 1e-9


def test_soc_kramers_and_hermiticity(hbr_soc):
    stored, _ = hbr_soc
    e = _eigs(stored)
    assert np.abs(e[0::2] - e[1::2]).max() < 1e-6  # Kramers pairs
    assert stored.hamiltonian.hermiticity_error() < 1e-12
    assert stored.hamiltonian.missing_mirrors() == 0
    h = stored.hamiltonian_k([0, 0, 0])
    n = stored.atom_offsets[-1]
    # Time reversal T = i sigma_y K: H_dd = conj(H_uu), H_du = -conj(H_ud).
    assert np.abs(h[n:, n:] - h[:n, :n].conj()).max() < 1e-6
    assert np.abs(h[n:, :n] + h[:n, n:].conj()).max() < 1e-6
    assert np.abs(h[:n, n:]).max() > 0.1  # spin-orbit couples the spins


def _pi_splitting(e, nocc=36):
    """HBr's HOMO is the Br 4p pi level: SOC splits its 4 spin-orbitals 2 + 2."""
    homo4 = e[nocc - 4:nocc]
    return float(homo4[2] - homo4[0])


def test_hbr_pi_splitting_with_and_without_soc(hbr_soc):
    stored, _ = hbr_soc
    with_soc = _pi_splitting(_eigs(stored))
    plain, _ = compute_molecule(_hbr(), MoleculeSettings())
    e = scipy.linalg.eigh(plain.hamiltonian_k([0, 0, 0]).real, plain.overlap_k([0, 0, 0]).real, eigvals_only=True)
    without = float(e[17] - e[16])  # spatial orbitals: the pi pair is 16, 17 (0-based), 18 electron pairs
    print(f"HBr pi HOMO splitting: {with_soc:.4f} eV with SOC, {without:.2e} eV without")
    assert with_soc > 0.1 and without < 1e-3
    assert 0.2 < with_soc < 0.35  # 0.27 eV at PBE / def2-SVP


def test_soc_splittings_find_the_hbr_pi_pair(hbr_soc):
    """physics.spin_levels on PySCF's HBr: Kramers pairs degenerate, and among the 4 valence levels the pi
    pair (Kramers levels 16, 17 of 18) is the one degenerate without spin-orbit coupling and 0.27 eV apart
    with it; every reported pair's spacing moves by at least SOC_SPLIT_MIN_EV."""
    from deeph_jax.physics.spin_levels import SOC_SPLIT_MIN_EV, kramers_levels, soc_splittings, valence_levels

    stored, _ = hbr_soc
    h, s = stored.hamiltonian_k([0, 0, 0]), stored.overlap_k([0, 0, 0])
    levels, pair_splitting = kramers_levels(h, s)
    assert pair_splitting < 1e-6 and len(levels) == h.shape[0] // 2
    assert abs(levels[17] - levels[16] - _pi_splitting(_eigs(stored))) < 1e-6
    assert valence_levels(("H", "Br")) == 4
    pairs = soc_splittings(h, s, n_occupied=18, n_valence=4)
    pi = [p for p in pairs if p.lower == 16]
    assert len(pi) == 1 and abs(pi[0].scalar_spacing_eV) < 1e-3 and 0.2 < pi[0].spacing_eV < 0.35
    assert all(14 <= p.lower <= 16 and abs(p.spacing_eV - p.scalar_spacing_eV) >= SOC_SPLIT_MIN_EV for p in pairs)


def _wigner(basis, symbols, Q):
    import e3nn_jax as e3nn
    import jax

    ds = {}
    with jax.enable_x64(True):
        for l in range(basis.lmax + 1):
            ds[l] = np.asarray(e3nn.Irrep(l, (-1) ** l).D_from_matrix(P @ Q @ P.T), dtype=np.float64)
    return [scipy.linalg.block_diag(*[ds[l] for l in basis.shells[s]]) for s in symbols]


def test_soc_block_covariance():
    """Rotate and invert HBr (Q improper): each spinful block transforms as (U x D_i) H_ij (U x D_j)^dagger, U in
    SU(2) of the proper part -Q (inversion acts on space only). Hartree-Fock has no grid, so the residual is the
    SCF convergence; STO-3G (Br with s, p, d shells) keeps it fast."""
    from scipy.spatial.transform import Rotation

    mol = _molecule(("H", "Br"), [[0.0, 0.0, 0.0], [0.3, -0.2, 1.40]])
    centre = mol.positions.mean(0)
    Q = -Rotation.from_euler("zyx", [0.7, -1.1, 2.3]).as_matrix()
    moved = Structure(mol.symbols, (mol.positions - centre) @ Q.T + centre, BOX, periodic=False)
    settings = MoleculeSettings(basis="sto-3g", xc="HF", spin="soc")
    a, _ = compute_soc_molecule(mol, settings)
    b, _ = compute_soc_molecule(moved, settings)
    D = _wigner(a.basis, mol.symbols, Q)
    err, err_s, wrong = 0.0, 0.0, 0.0
    for U, kind in ((su2_from_rotation(Q), "U"), (su2_from_rotation(Q).conj().T, "U^dagger")):
        for (key, hb), (_, sb) in zip(a.hamiltonian.blocks(), a.overlap.blocks()):
            i, j = key[3], key[4]
            left, right = np.kron(U, D[i]), np.kron(U, D[j])
            e = np.abs(b.hamiltonian.get((0, 0, 0), i, j) - left @ hb @ right.conj().T).max()
            if kind == "U":
                err = max(err, e)
                err_s = max(err_s, np.abs(b.overlap.get((0, 0, 0), i, j) - D[i] @ sb @ D[j].T).max())
            else:  # the inverse spin rotation must fail: the check sees the spin part
                wrong = max(wrong, e)
    print(f"SOC covariance: H {err:.2e} eV, S {err_s:.2e}; with U^dagger instead of U: {wrong:.2e} eV")
    assert err < 1e-5 and err_s < 1e-12
    assert wrong > 1e-2


def test_soc_refuses_open_shell():
    with pytest.raises(DeephError, match="closed shell"):
        compute_soc_molecule(_molecule(("H", "Br"), [[0, 0, 0], [0, 0, 1.41]]),
                             MoleculeSettings(basis="sto-3g", charge=1, spin="soc"))


def _nh2() -> Structure:
    symbols, local = RADICALS["NH2"][0]
    return _molecule(symbols, local)


def test_uks_stored_matches_pyscf(tmp_path):
    data, mf = compute_collinear_molecule(_nh2(), MoleculeSettings(spin="collinear"), unpaired=1)
    write_deeph_dir(tmp_path / "nh2", data)
    stored = read_deeph_dir(tmp_path / "nh2")
    n = stored.atom_offsets[-1]
    h, s = stored.hamiltonian_k([0, 0, 0]), stored.overlap_k([0, 0, 0])
    assert np.abs(h[:n, n:]).max() == 0 and np.abs(h.imag).max() == 0
    e_up = scipy.linalg.eigh(h[:n, :n].real, s[:n, :n].real, eigvals_only=True)
    e_dn = scipy.linalg.eigh(h[n:, n:].real, s[n:, n:].real, eigvals_only=True)
    r_up = np.abs(e_up - mf.mo_energy[0] * HARTREE_TO_EV).max()
    r_dn = np.abs(e_dn - mf.mo_energy[1] * HARTREE_TO_EV).max()
    print(f"NH2 UKS: residuals up {r_up:.2e} eV, down {r_dn:.2e} eV")
    assert r_up < 2e-5 and r_dn < 2e-5
    info = stored.info
    assert info["spin_polarized"] and info["collinear_spin"] and info["occupation"] == 9
    assert (info["occupation_up"], info["occupation_down"]) == (5, 4)
    m = np.asarray(info["magnetic_moments_muB"])
    assert abs(m.sum() - 1.0) < 1e-8 and m[0] > 0.9  # the unpaired electron sits on N
    assert stored.hamiltonian.hermiticity_error() < 1e-12


def test_uks_flipped_moment_swaps_channels():
    """O2 with n_alpha - n_beta = +2 and -2: H_up of one is H_down of the other, moments flip."""
    symbols, local = RADICALS["O2"][0]
    o2 = _molecule(symbols, local)
    settings = MoleculeSettings(basis="sto-3g", spin="collinear")
    a, _ = compute_collinear_molecule(o2, settings, unpaired=2)
    b, _ = compute_collinear_molecule(o2, settings, unpaired=-2)
    ha, hb = a.hamiltonian_k([0, 0, 0]), b.hamiltonian_k([0, 0, 0])
    n = a.atom_offsets[-1]
    err = max(np.abs(ha[:n, :n] - hb[n:, n:]).max(), np.abs(ha[n:, n:] - hb[:n, :n]).max())
    print(f"O2 flip: max |H_up(+2) - H_down(-2)| = {err:.2e} eV")
    assert err < 1e-5
    assert np.abs(ha[:n, :n] - ha[n:, n:]).max() > 0.5  # the channels differ
    np.testing.assert_allclose(a.info["magnetic_moments_muB"], -np.asarray(b.info["magnetic_moments_muB"]), atol=1e-6)


def test_named_distributions_cycle_and_rattle():
    src = MoleculeSource(name="halides", rattle=0.06)
    for i in range(18):
        s = src.geometry(0, i, [])
        assert tuple(s.symbols) == HALIDES[molecule_label("halides", i)][0]
    a, b = src.geometry(0, 3, []), src.geometry(0, 3, [])
    np.testing.assert_array_equal(a.positions, b.positions)
    assert not np.allclose(a.positions, src.geometry(1, 3, []).positions)
    r = MoleculeSource(name="radicals", rattle=0.06).geometry(0, 0, [])
    assert r.symbols == ("O", "O") and abs(np.linalg.norm(r.positions[1] - r.positions[0]) - 1.2075) < 0.4


def test_cli_halides_and_radicals_write_readable_sets(tmp_path):
    from deeph_jax.cli import main
    from deeph_jax.io import find_structure_dirs

    out = tmp_path / "hal"
    assert main(["generate", "molecules", "--name", "halides", "--basis", "sto-3g", "--n", "2", "--seed", "4",
                 "--out", str(out), "--no-progress", "--threads", "1"]) == 0
    dirs = find_structure_dirs(out)
    assert [read_deeph_dir(d).info["molecule"] for d in dirs] == ["HCl", "HBr"]
    d = read_deeph_dir(dirs[1])
    assert d.spinful and d.info["relativity"] == "x2c1e-soc" and d.info["mo_energy_residual_eV"] < 1e-4
    out = tmp_path / "rad"
    assert main(["generate", "molecules", "--name", "radicals", "--basis", "sto-3g", "--n", "2", "--seed", "4",
                 "--out", str(out), "--no-progress", "--threads", "1"]) == 0
    d = read_deeph_dir(out / "00001")
    assert d.info["molecule"] == "NH" and d.info["occupation_up"] - d.info["occupation_down"] == 2
    import json

    meta = json.loads((out / "metadata.json").read_text())
    assert meta["spin"] == "collinear" and meta["conv_tol_grad"] == 1e-7
    assert meta["sampling"]["distribution"] == "radicals"


@pytest.mark.parametrize("argv, message", [
    (["--name", "halides", "--spin-polarized"], "generated with soc"),
    (["--name", "water", "--unpaired", "2"], "--unpaired needs --spin-polarized"),
])
def test_cli_spin_errors(tmp_path, capsys, argv, message):
    from deeph_jax.cli import main

    code = main(["generate", "molecules", *argv, "--n", "1", "--out", str(tmp_path / "x"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


# -- magnetic ribbons -----------------------------------------------------------------------------
def test_zgnr_geometry():
    from deeph_jax.dft.ribbons import RibbonSource, edge_atoms, zgnr_cell

    s = zgnr_cell(3)
    assert s.symbols == ("C",) * 6 + ("H", "H")
    # distances to every image along x: (3 images, n, n)
    d = np.stack([np.linalg.norm(s.positions[None, :] + m * s.cell[0] - s.positions[:, None], axis=-1)
                  for m in (-1, 0, 1)])
    d[1][np.diag_indices(8)] = np.inf
    assert np.isclose(d[:, :6, :6].min(), 2.467 / np.sqrt(3))
    bottom, top = edge_atoms(3)
    assert np.isclose(d[:, 6, bottom].min(), 1.09) and np.isclose(d[:, 7, top].min(), 1.09)
    # every interior C has 3 C neighbours, the edge carbons 2 C + 1 H
    n_cc = (d[:, :6, :6] < 1.5).sum((0, 2))
    assert n_cc[bottom] == 2 and n_cc[top] == 2 and all(n_cc[k] == 3 for k in range(6) if k not in (bottom, top))
    assert (d[:, :, 6:] < 1.2).sum() == 2  # each H has one C neighbour
    src = RibbonSource(width=3, magnetic="alternate")
    assert [src.state(i) for i in range(3)] == ["afm", "fm", "afm"]


@pytest.mark.slow
def test_zgnr_tiny_ribbon_bands_and_states():
    """1-ZGNR (2 C + 2 H) in a small cell, SCF mesh 2, dense mesh 8 (cutoff 9.8 A): the stored spin channels give
    PySCF's get_bands at a k-point on neither mesh, and the AFM guess keeps antiparallel edge moments."""
    from deeph_jax.dft.ribbons import RibbonSettings, RibbonSource, bands_check, compute_ribbon

    src = RibbonSource(width=1, magnetic="afm", rattle=0.03, gap=7.0, height=7.0)
    settings = RibbonSettings(kmesh=(2, 1, 1), dense_kmesh=(8, 1, 1), cutoff=9.8, conv_tol=1e-8)
    data, mf, _ = compute_ribbon(src.geometry(0, 0), 1, "afm", settings)
    info = data.info
    print("1-ZGNR AFM:", info["magnetic_state"], info["edge_moments_muB"], info["total_magnetic_moment_muB"])
    assert info["spinful"] and info["collinear_spin"]
    assert data.hamiltonian.hermiticity_error() < 1e-10 and data.hamiltonian.missing_mirrors() == 0
    n = data.atom_offsets[-1]
    h = data.hamiltonian_k([0.3, 0, 0])
    assert np.abs(h[:n, n:]).max() == 0
    err = bands_check(data, mf, [[0.3, 0.0, 0.0], [0.4375, 0.0, 0.0]])
    print(f"1-ZGNR bands (both spins, occupied + 4) vs get_bands off the meshes: {err * 1e3:.3f} meV")
    assert err < 0.01
    assert info["magnetic_state"] == "afm" and abs(info["total_magnetic_moment_muB"]) < 0.05
