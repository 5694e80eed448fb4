"""The irreps <-> blocks map: exact inverses, equivariant, and covariant on real DFT blocks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deeph_jax.graph import build_graph, padded_edge_blocks
from deeph_jax.io.basis import OrbitalBasis
from deeph_jax.model import (block_to_irreps, blocks_to_irreps, build_layout, irreps_to_block, irreps_to_blocks,
                             pair_kind, random_rotation, shell_pair_irreps, species_pair_masks, wigner_D)
from deeph_jax.model.testing import shared_dir
from deeph_jax.units import HARTREE_TO_EV

LS = [(l1, l2) for l1 in range(4) for l2 in range(4)]


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def irreps_D(l1, l2, Q):
    """Block-diagonal D over the irreps of a (l1, l2) block, parity (-1)^(l1 + l2)."""
    from scipy.linalg import block_diag

    return block_diag(*[wigner_D(L, Q, parity=(-1) ** (l1 + l2)) for L in range(abs(l1 - l2), l1 + l2 + 1)])


@pytest.mark.parametrize("l1,l2", LS)
def test_round_trip_exact(l1, l2):
    rng = np.random.default_rng(l1 * 4 + l2)
    block = rng.normal(size=(5, 2 * l1 + 1, 2 * l2 + 1))
    x = rng.normal(size=(5, shell_pair_irreps(l1, l2).dim))
    assert np.abs(np.asarray(irreps_to_block(block_to_irreps(jnp.asarray(block), l1, l2), l1, l2)) - block).max() <= 1e-12
    assert np.abs(np.asarray(block_to_irreps(irreps_to_block(jnp.asarray(x), l1, l2), l1, l2)) - x).max() <= 1e-12


@pytest.mark.parametrize("l1,l2", LS)
def test_commutes_with_rotation_and_inversion(l1, l2):
    rng = np.random.default_rng(100 + l1 * 4 + l2)
    x = rng.normal(size=shell_pair_irreps(l1, l2).dim)
    for Q in (random_rotation(rng), -np.eye(3), -random_rotation(rng)):
        lhs = np.asarray(irreps_to_block(jnp.asarray(irreps_D(l1, l2, Q) @ x), l1, l2))
        rhs = wigner_D(l1, Q) @ np.asarray(irreps_to_block(jnp.asarray(x), l1, l2)) @ wigner_D(l2, Q).T
        assert np.abs(lhs - rhs).max() <= 1e-12


def test_layout_round_trip_on_mote2_blocks():
    path = shared_dir() / "data/deeph-dock/compute/eigen/eigen.clean/MoTe2"
    if not path.is_dir():
        pytest.skip(f"shared data absent: {path}")
    from deeph_jax.io.deeph import read_deeph_dir

    data = read_deeph_dir(path)
    graph = build_graph(data.structure, 6.0)
    blocks, present = padded_edge_blocks(graph, data.hamiltonian, data.basis)
    layout = build_layout(data.basis)
    index = {e: k for k, e in enumerate(layout.elements)}
    sp = np.asarray([index[s] for s in data.structure.symbols])
    kind = pair_kind(jnp.asarray(sp[graph.senders]), jnp.asarray(sp[graph.receivers]),
                     jnp.asarray(np.linalg.norm(graph.vectors, axis=1) == 0), len(layout.elements))
    x = blocks_to_irreps(jnp.asarray(blocks), kind, layout)
    back = np.asarray(irreps_to_blocks(x, kind, layout))
    assert np.abs(back - blocks).max() <= 1e-12 * max(1.0, np.abs(blocks).max())
    masks = species_pair_masks(data.basis)
    assert masks[("Mo", "Te")].sum() == data.basis.n_orbitals("Mo") * data.basis.n_orbitals("Te")


def _water_blocks(positions, basis="def2-svp"):
    """HF H (eV) and S of water in DeepH order, as {(i, j): block}; p shells reordered to (y, z, x)."""
    from pyscf import gto, scf

    from deeph_jax.dft.pyscf_common import ao_permutation

    mol = gto.M(atom=[("O", positions[0]), ("H", positions[1]), ("H", positions[2])], basis=basis,
                unit="Angstrom", verbose=0)
    mf = scf.RHF(mol)
    mf.conv_tol = 1e-12
    mf.conv_tol_grad = 1e-9
    mf.kernel()
    perm = ao_permutation(mol)
    H = (mf.get_fock() * HARTREE_TO_EV)[np.ix_(perm, perm)]
    S = mf.get_ovlp()[np.ix_(perm, perm)]
    return mol, H, S


def test_covariance_on_pyscf_water():
    pytest.importorskip("pyscf")
    from deeph_jax.dft.pyscf_common import orbital_basis

    pos = np.array([[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]])
    Q = random_rotation(np.random.default_rng(7))
    mol, H0, S0 = _water_blocks(pos)
    _, H1, S1 = _water_blocks(pos @ Q.T)
    basis: OrbitalBasis = orbital_basis(mol, ["O", "H", "H"])
    offsets = basis.atom_offsets(["O", "H", "H"])
    symbols = ["O", "H", "H"]
    worst = {"H": 0.0, "S": 0.0}
    for name, M0, M1, tol in (("H", H0, H1, 1e-8), ("S", S0, S1, 1e-12)):
        for i in range(3):
            for j in range(3):
                si, sj = basis.shell_offsets(symbols[i]), basis.shell_offsets(symbols[j])
                for a, l1 in enumerate(basis.shells[symbols[i]]):
                    for b, l2 in enumerate(basis.shells[symbols[j]]):
                        r0, c0 = offsets[i] + si[a], offsets[j] + sj[b]
                        b0 = M0[r0: r0 + 2 * l1 + 1, c0: c0 + 2 * l2 + 1]
                        b1 = M1[r0: r0 + 2 * l1 + 1, c0: c0 + 2 * l2 + 1]
                        x0 = np.asarray(block_to_irreps(jnp.asarray(b0), l1, l2))
                        x1 = np.asarray(block_to_irreps(jnp.asarray(b1), l1, l2))
                        err = np.abs(x1 - irreps_D(l1, l2, Q) @ x0).max()
                        worst[name] = max(worst[name], err)
        print(f"water HF/def2-SVP {name}: max |x(Qr) - D x(r)| = {worst[name]:.2g}")
        assert worst[name] <= tol, (name, worst[name])
