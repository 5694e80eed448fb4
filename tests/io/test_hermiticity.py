"""Hermiticity of real data, and of the dense H(k), S(k) built from it: the shared OpenMX MoTe2
(when ../shared is present) and the project's shipped periodic hBN cell (always)."""

from pathlib import Path

import numpy as np
import pytest

from deeph_jax.io import find_structure_dirs, read_deeph_dir

SHIPPED_HBN = Path(__file__).resolve().parents[2] / "datasets" / "hbn-szv" / "train-2x2" / "00000"


@pytest.fixture(params=["hbn", "shared-MoTe2"])
def periodic_dir(request) -> Path:
    """A periodic structure folder with (i, j, R != 0) blocks; the shared one is skipped when absent."""
    return SHIPPED_HBN if request.param == "hbn" else request.getfixturevalue("mote2_dir")


def test_mote2_blocks_hermitian_to_data_precision(mote2_dir):
    data = read_deeph_dir(mote2_dir)
    assert data.hamiltonian.missing_mirrors() == 0
    err_h = data.hamiltonian.hermiticity_error()
    assert err_h < 1e-7  # OpenMX MoTe2 stores about 1e-8 eV of asymmetry
    assert err_h > 0  # ...and it is not zero: the symmetrization below has something to remove
    assert data.overlap.hermiticity_error() < 1e-9


def test_molecule_blocks_hermitian(molecule_set_dir):
    for d in find_structure_dirs(molecule_set_dir):
        data = read_deeph_dir(d)
        assert data.hamiltonian.hermiticity_error() < 1e-7
        assert data.overlap.hermiticity_error() < 1e-9


@pytest.mark.parametrize("k", [[0.0, 0.0, 0.0], [0.1, 0.27, 0.0], [0.5, 1 / 3, 0.2]])
def test_dense_bloch_matrices_exactly_hermitian(periodic_dir, k):
    data = read_deeph_dir(periodic_dir)
    hk, sk = data.hamiltonian_k(k), data.overlap_k(k)
    assert np.array_equal(hk, hk.conj().T)
    assert np.array_equal(sk, sk.conj().T)
    raw = data.hamiltonian.bloch_dense(k, data.atom_offsets, hermitize=False)
    asymmetry = np.abs(raw - raw.conj().T).max()
    assert asymmetry < 1e-6  # what hermitize removed
    if periodic_dir != SHIPPED_HBN:
        assert asymmetry > 0  # OpenMX's stored asymmetry (the shipped hBN blocks are symmetrized exactly)


def test_bloch_sum_matches_direct_sum(periodic_dir):
    """H(k) = sum_R exp(i 2 pi k.R) H(R), built block by block with plain loops."""
    data = read_deeph_dir(periodic_dir)
    assert np.any(data.hamiltonian.atom_pairs[:, :3]), "want R != 0 blocks"
    k = np.array([0.13, -0.21, 0.0])
    off = data.atom_offsets
    ref = np.zeros((off[-1], off[-1]), complex)
    for key, block in data.hamiltonian.blocks():
        R, i, j = np.array(key[:3]), key[3], key[4]
        ref[off[i] : off[i + 1], off[j] : off[j + 1]] += np.exp(2j * np.pi * k @ R) * block
    np.testing.assert_allclose(data.hamiltonian.bloch_dense(k, off, hermitize=False), ref, atol=1e-12)


def test_symmetrized_blocks_are_hermitian(periodic_dir):
    h = read_deeph_dir(periodic_dir).hamiltonian.symmetrized()
    assert h.hermiticity_error() < 1e-15


@pytest.mark.parametrize("drop_mirror", [False, True])
def test_sparse_bloch_matrix_hermitized_real_and_canonical(periodic_dir, drop_mirror):
    """The sparse H(k) (slots worked out per atom pair) against the plain block loop: hermitized through the
    mirror map (or, with a block's mirror missing, through a sparse transpose), real at Gamma, CSR sorted."""
    from deeph_jax.io.blocks import BlockSparse

    data = read_deeph_dir(periodic_dir)
    h, off = data.hamiltonian, data.atom_offsets
    if drop_mirror:  # the last off-diagonal block loses its mirror
        n = int(np.flatnonzero(h.atom_pairs[:, 3] != h.atom_pairs[:, 4])[-1])
        keep = np.arange(h.n_blocks) != n
        h = BlockSparse.from_arrays(h.atom_pairs[keep], h.shapes[keep],
                                    np.concatenate([h.block(m).reshape(-1) for m in np.flatnonzero(keep)]))
    for k in (np.array([0.13, -0.21, 0.0]), np.zeros(3)):
        ref = np.zeros((off[-1], off[-1]), complex)
        for key, block in h.blocks():
            R, i, j = np.array(key[:3]), key[3], key[4]
            ref[off[i] : off[i + 1], off[j] : off[j + 1]] += np.exp(2j * np.pi * k @ R) * block
        m = h.bloch_sparse(k, off, hermitize=True, real=not np.any(k))
        assert m.has_canonical_format
        np.testing.assert_allclose(m.toarray(), 0.5 * (ref + ref.conj().T) if np.any(k) else 0.5 * (ref + ref.T).real,
                                   atol=1e-12)
