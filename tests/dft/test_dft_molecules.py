"""Molecular DFT generator: eigenvalues, covariance of the stored blocks, bad input, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

pytest.importorskip("pyscf")

from deeph_jax.dft.molecules import (  # noqa: E402
    MoleculeSettings,
    MoleculeSource,
    compute_molecule,
    generate_molecules,
    rng_for,
    water_geometry,
)
from deeph_jax.errors import DeephError  # noqa: E402
from deeph_jax.io import Structure, find_structure_dirs, read_deeph_dir  # noqa: E402
from deeph_jax.units import HARTREE_TO_EV  # noqa: E402

P = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])  # P v = (v_y, v_z, v_x)


def _water(seed=3, index=0) -> Structure:
    return water_geometry(rng_for(seed, index))


def _dense(data):
    return data.hamiltonian_k([0, 0, 0]).real, data.overlap_k([0, 0, 0]).real


def test_water_eigenvalues_match_pyscf(tmp_path):
    """Generalized eigenvalues of the stored (H, S), read back from disk, equal PySCF's mo_energy."""
    generate_molecules(tmp_path / "w", n=1, seed=5, progress=False)
    stored = read_deeph_dir(tmp_path / "w" / "00000")
    assert stored.info["basis"] == "def2-SVP" and stored.info["xc"] == "PBE"
    assert stored.info["occupation"] == 10
    assert stored.basis.to_orbital_map() == {"H": [0, 0, 1], "O": [0, 0, 0, 1, 1, 2]}
    assert stored.hamiltonian.n_blocks == 9 and stored.hamiltonian.missing_mirrors() == 0
    # O at the centre of the 30 A box.
    np.testing.assert_allclose(stored.structure.positions[0], [15.0, 15.0, 15.0], atol=1e-12)
    _, mf = compute_molecule(stored.structure, MoleculeSettings())
    h, s = _dense(stored)
    e = scipy.linalg.eigh(h, s, eigvals_only=True)
    residual = np.abs(e - mf.mo_energy * HARTREE_TO_EV).max()
    assert residual < 3e-4, residual
    nocc = 5
    assert abs(stored.info["fermi_energy_eV"] - 0.5 * (e[nocc - 1] + e[nocc])) < 1e-9


def _wigner_blocks(basis, symbols, Q):
    import e3nn_jax as e3nn
    import jax

    ds = {}
    with jax.enable_x64(True):  # float32 Wigner matrices would limit the check to ~1e-7
        for l in range(basis.lmax + 1):
            ds[l] = np.asarray(e3nn.Irrep(l, (-1) ** l).D_from_matrix(P @ Q @ P.T), dtype=np.float64)
    out = []
    for sym in symbols:
        out.append(scipy.linalg.block_diag(*[ds[l] for l in basis.shells[sym]]))
    return out


def _covariance_errors(grid_level):
    """(max |S' - D S D^T|, max |H' - D H D^T| in eV) for a water molecule rotated and inverted."""
    from scipy.spatial.transform import Rotation

    w = _water()
    centre = w.positions[0]
    Q = -Rotation.from_euler("zyx", [0.7, -1.1, 2.3]).as_matrix()  # improper: rotation times inversion
    moved = Structure(w.symbols, (w.positions - centre) @ Q.T + centre, w.cell, periodic=False)
    settings = MoleculeSettings(grid_level=grid_level)
    a, _ = compute_molecule(w, settings)
    b, _ = compute_molecule(moved, settings)
    D = _wigner_blocks(a.basis, w.symbols, Q)
    err_s = err_h = 0.0
    for (key, hb), (_, sb) in zip(a.hamiltonian.blocks(), a.overlap.blocks()):
        _, _, _, i, j = key
        err_h = max(err_h, np.abs(b.hamiltonian.get((0, 0, 0), i, j) - D[i] @ hb @ D[j].T).max())
        err_s = max(err_s, np.abs(b.overlap.get((0, 0, 0), i, j) - D[i] @ sb @ D[j].T).max())
    print(f"covariance errors (grid level {grid_level}): S {err_s:.2e}, H {err_h:.2e} eV")
    return err_s, err_h


def test_covariance_default_grid():
    err_s, err_h = _covariance_errors(None)
    assert err_s < 1e-10, err_s
    assert err_h < 1e-4, err_h


def test_covariance_grid_level_5():
    err_s, err_h = _covariance_errors(5)
    assert err_s < 1e-10, err_s
    assert err_h < 2e-6, err_h


def test_water_geometry_distribution_and_determinism():
    a, b = water_geometry(rng_for(0, 7)), water_geometry(rng_for(0, 7))
    np.testing.assert_array_equal(a.positions, b.positions)
    assert not np.allclose(a.positions, water_geometry(rng_for(1, 7)).positions)
    for i in range(50):
        s = water_geometry(rng_for(0, i))
        d1, d2 = (np.linalg.norm(s.positions[k] - s.positions[0]) for k in (1, 2))
        cosang = np.dot(s.positions[1] - s.positions[0], s.positions[2] - s.positions[0]) / (d1 * d2)
        assert 0.85 <= d1 <= 1.15 and 0.85 <= d2 <= 1.15
        assert 95.0 <= np.degrees(np.arccos(cosang)) <= 120.0


def test_file_source_frames_and_rattle(tmp_path):
    xyz = tmp_path / "traj.xyz"
    frame = "3\n\nO 0 0 0\nH 0.96 0 0\nH -0.24 0.93 0\n"
    xyz.write_text(frame + frame.replace("0.96", "1.00"))
    out = tmp_path / "asis"
    summary = generate_molecules(out, n=None, source=MoleculeSource(name=None, path=str(xyz)),
                                 settings=MoleculeSettings(basis="sto-3g"), progress=False)
    assert summary["written"] == 2  # one structure per frame
    s0 = read_deeph_dir(out / "00000").structure
    assert abs(np.linalg.norm(s0.positions[1] - s0.positions[0]) - 0.96) < 1e-9
    out2 = tmp_path / "rattled"
    generate_molecules(out2, n=3, seed=2, source=MoleculeSource(name=None, path=str(xyz), rattle=0.02),
                       settings=MoleculeSettings(basis="sto-3g"), progress=False)
    assert len(find_structure_dirs(out2)) == 3


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_bad_input_unknown_element_for_basis(tmp_path):
    path = _write(tmp_path, "au.xyz", "2\n\nAu 0 0 0\nH 0 0 1.6\n")
    with pytest.raises(DeephError, match=r"au\.xyz: element Au is not in basis '6-31g'"):
        generate_molecules(tmp_path / "o", source=MoleculeSource(name=None, path=path),
                           settings=MoleculeSettings(basis="6-31g"), progress=False)


def test_bad_input_overlapping_atoms(tmp_path):
    path = _write(tmp_path, "close.xyz", "3\n\nO 0 0 0\nH 0.05 0 0\nH 0 0.9 0\n")
    with pytest.raises(DeephError, match=r"close\.xyz: .*overlapping atoms") as exc:
        generate_molecules(tmp_path / "o", source=MoleculeSource(name=None, path=path), progress=False)
    assert "\n" not in str(exc.value)


def test_bad_input_unreadable_file(tmp_path):
    path = tmp_path / "junk.xyz"
    path.write_bytes(b"\x00\x01 this is not xyz\nat all\n")
    with pytest.raises(DeephError, match=r"junk\.xyz: cannot read structure"):
        generate_molecules(tmp_path / "o", source=MoleculeSource(name=None, path=str(path)), progress=False)
    with pytest.raises(DeephError, match="structure file not found"):
        generate_molecules(tmp_path / "o", source=MoleculeSource(name=None, path=str(tmp_path / "missing.xyz")),
                           progress=False)


def test_resume_refuses_other_settings(tmp_path):
    generate_molecules(tmp_path / "w", n=1, settings=MoleculeSettings(basis="sto-3g"), progress=False)
    with pytest.raises(DeephError, match="metadata.json: dataset was generated with other settings"):
        generate_molecules(tmp_path / "w", n=2, settings=MoleculeSettings(basis="def2-SVP"), progress=False)


def test_unconverged_scf_is_left_out(tmp_path):
    """An SCF that does not converge (even after the damped retry) is reported and never written."""
    summary = generate_molecules(tmp_path / "w", n=2, settings=MoleculeSettings(basis="sto-3g", max_cycle=2),
                                 progress=False)
    assert summary["not_converged"] == [0, 1] and summary["written"] == 0
    assert find_structure_dirs(tmp_path / "w") == []
    assert not [p for p in (tmp_path / "w").iterdir() if p.name.startswith(".")]
