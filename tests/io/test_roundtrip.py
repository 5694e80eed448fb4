"""Read -> write -> read of real DeepH data is bit-identical; legacy conversion matches DeepH-dock's."""

import json

import numpy as np
import pytest

from deeph_jax.cli import main as cli
from deeph_jax.io import (
    BlockSparse,
    DeephStructure,
    OrbitalBasis,
    Structure,
    find_structure_dirs,
    read_deeph_dir,
    read_legacy_dir,
    write_deeph_dir,
)


def assert_same_blocks(a: BlockSparse, b: BlockSparse, atol: float = 0.0):
    assert a.n_blocks == b.n_blocks
    for key, block in a.blocks():
        other = b.get(key[:3], key[3], key[4])
        assert other is not None, f"block {key} missing"
        if atol == 0.0:
            assert np.array_equal(block, other), f"block {key} differs"
        else:
            np.testing.assert_allclose(other, block, rtol=0, atol=atol, err_msg=f"block {key}")


def roundtrip(src, tmp_path, name):
    first = read_deeph_dir(src)
    write_deeph_dir(tmp_path / name, first)
    second = read_deeph_dir(tmp_path / name)
    assert second.structure.symbols == first.structure.symbols
    assert np.array_equal(second.structure.positions, first.structure.positions)
    assert np.array_equal(second.structure.cell, first.structure.cell)
    assert second.basis == first.basis
    for m in ("hamiltonian", "overlap"):
        a, b = getattr(first, m), getattr(second, m)
        assert np.array_equal(a.atom_pairs, b.atom_pairs)
        assert a.entries.dtype == b.entries.dtype
        assert_same_blocks(a, b)


def test_roundtrip_mote2_bit_identical(mote2_dir, tmp_path):
    roundtrip(mote2_dir, tmp_path, "MoTe2")


def test_roundtrip_molecule_set_bit_identical(molecule_set_dir, tmp_path):
    dirs = find_structure_dirs(molecule_set_dir)
    assert len(dirs) == 13
    for d in dirs:
        roundtrip(d, tmp_path, d.name)


def test_molecules_are_not_periodic(molecule_set_dir, mote2_dir):
    assert not read_deeph_dir(molecule_set_dir / "1000").structure.periodic
    assert read_deeph_dir(mote2_dir).structure.periodic


def test_legacy_conversion_matches_updated(legacy_mote2_dir, updated_mote2_dir, tmp_path):
    assert cli(["convert", "legacy", str(legacy_mote2_dir), str(tmp_path / "out")]) == 0
    ours = read_deeph_dir(tmp_path / "out")
    ref = read_deeph_dir(updated_mote2_dir)
    assert ours.structure.symbols == ref.structure.symbols  # atom order kept
    np.testing.assert_allclose(ours.structure.positions, ref.structure.positions, atol=1e-10)
    assert_same_blocks(ref.hamiltonian, ours.hamiltonian, atol=1e-10)
    assert_same_blocks(ref.overlap, ours.overlap, atol=1e-10)
    info = json.loads((tmp_path / "out" / "info.json").read_text())
    assert info["elements_orbital_map"] == {"Te": [0, 0, 0, 1, 1, 2, 2], "Mo": [0, 0, 0, 1, 1, 2, 2]}


def test_legacy_conversion_of_several_structures(legacy_mote2_dir, tmp_path):
    import shutil

    tree = tmp_path / "legacy"
    for name in ("a", "b"):
        shutil.copytree(legacy_mote2_dir, tree / name)
    assert cli(["convert", "legacy", str(tree), str(tmp_path / "new")]) == 0
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["a", "b"]
    direct = read_legacy_dir(legacy_mote2_dir)
    assert_same_blocks(direct.hamiltonian, read_deeph_dir(tmp_path / "new" / "b").hamiltonian)


def spinful_fixture() -> DeephStructure:
    """A random Hermitian spinful two-atom chain (a unit-test fixture, not physics)."""
    rng = np.random.default_rng(0)
    basis = OrbitalBasis({"C": (0, 1), "H": (0,)})
    structure = Structure(("C", "H"), [[0, 0, 0], [1.1, 0, 0]], np.diag([2.5, 10, 10]))
    n = {0: 4, 1: 1}
    h, s = {}, {}
    for R in (-1, 0, 1):
        for i in (0, 1):
            for j in (0, 1):
                if (R, i, j) in [(k[0], k[3], k[4]) for k in h]:
                    continue
                b = rng.normal(size=(2 * n[i], 2 * n[j])) + 1j * rng.normal(size=(2 * n[i], 2 * n[j]))
                o = rng.normal(size=(n[i], n[j]))
                if (R, i) == (0, j):
                    b, o = b + b.conj().T, o + o.T + 4 * np.eye(n[i])
                h[(R, 0, 0, i, j)] = b
                h[(-R, 0, 0, j, i)] = b.conj().T
                s[(R, 0, 0, i, j)] = o
                s[(-R, 0, 0, j, i)] = o.T
    info = {"spinful": True, "fermi_energy_eV": 0.5, "orthogonal_basis": False}
    return DeephStructure(structure, basis, info, BlockSparse.from_blocks(s), BlockSparse.from_blocks(h))


def test_spinful_roundtrip_and_bloch_layout(tmp_path):
    data = spinful_fixture()
    write_deeph_dir(tmp_path / "spin", data)
    back = read_deeph_dir(tmp_path / "spin")
    assert back.spinful and back.hamiltonian.is_complex
    assert_same_blocks(data.hamiltonian, back.hamiltonian)
    k = [0.3, 0.0, 0.0]
    hk = back.hamiltonian_k(k)
    assert hk.shape == (10, 10)
    assert np.array_equal(hk, hk.conj().T)
    # Spin-major layout: H(k)[up i, down j] holds the ud quarter of block (i, j).
    expected = sum(
        np.exp(2j * np.pi * k[0] * R) * data.hamiltonian.get((R, 0, 0), 0, 1)[:4, 1:] for R in (-1, 0, 1)
    )
    np.testing.assert_allclose(hk[0:4, 9:10], expected, atol=1e-12)
