"""Berry-phase polarization: Rice-Mele against an independent Wilson loop, invariances, water in a box."""

from pathlib import Path

import numpy as np
import pytest

from deeph_jax.io import BlockSparse, DeephStructure, OrbitalBasis, Structure, read_deeph_dir
from deeph_jax.physics.berry import berry_polarization, valence_charges, wrap

REPO = Path(__file__).resolve().parents[2]
HBN = REPO / "datasets" / "hbn-szv" / "train-2x2" / "00000"
A = 3.0  # Angstrom, chain period
XB = 0.4  # B site at XB * A (not the bond centre, so the position phases matter)
ORIGIN = np.array([1.0, 2.0, 3.0])


def rice_mele(delta, gap, t=-1.0, positions=None, sign=1):
    """Two s orbitals per cell on a chain along x: on-site +-gap, hoppings t + delta (intra), t - delta (inter)."""
    pos = np.array([[0.0, 0, 0], [XB * A, 0, 0]]) + ORIGIN if positions is None else positions
    st = Structure(("H", "Li"), pos, np.diag([A, 10.0, 10.0]))
    h = {(0, 0, 0, 0, 0): [[gap]], (0, 0, 0, 1, 1): [[-gap]], (0, 0, 0, 0, 1): [[t + delta]],
         (0, 0, 0, 1, 0): [[t + delta]], (sign, 0, 0, 1, 0): [[t - delta]], (-sign, 0, 0, 0, 1): [[t - delta]]}
    s = {(0, 0, 0, 0, 0): [[1.0]], (0, 0, 0, 1, 1): [[1.0]]}
    basis = OrbitalBasis.from_orbital_map({"H": [0], "Li": [0]})
    return DeephStructure(st, basis, {"spinful": False, "occupation": 2}, overlap=BlockSparse.from_blocks(s),
                          hamiltonian=BlockSparse.from_blocks(h))


def wilson_loop_reference(delta, gap, n, t=-1.0):
    """Independent: tight-binding convention (position phases inside H(k)), orthonormal basis, direct
    overlaps of cell-periodic eigenvectors, closure u(k + G) = exp(-i G x) u(k). Reduced p_x, Z = 1 per site."""
    x = np.array([0.0, XB * A]) + ORIGIN[0]
    us = []
    for k in 2 * np.pi / A * np.arange(n) / n:
        hab = (t + delta) * np.exp(1j * k * (x[1] - x[0])) + (t - delta) * np.exp(1j * k * (x[1] - A - x[0]))
        us.append(np.linalg.eigh(np.array([[gap, hab], [np.conj(hab), -gap]]))[1][:, 0])
    us.append(np.exp(-1j * 2 * np.pi / A * x) * us[0])
    phi = -np.angle(np.prod([np.vdot(us[j], us[j + 1]) for j in range(n)]))
    return float(wrap(x.sum() / A - 2 * phi / (2 * np.pi)))


CYCLE = [(0.3 * np.cos(th), 0.5 * np.sin(th)) for th in np.linspace(0, 2 * np.pi, 9)[:-1]]


@pytest.mark.parametrize("delta,gap", CYCLE)
def test_rice_mele_matches_wilson_loop(delta, gap):
    p = berry_polarization(rice_mele(delta, gap), np.ones(2), (48, 1, 1))
    assert abs(wrap(p.reduced[0] - wilson_loop_reference(delta, gap, 48))) < 1e-10
    assert abs(p.reduced[1]) < 1e-12 and abs(p.reduced[2]) < 1e-12


@pytest.mark.parametrize("delta,gap", CYCLE[1:4])
def test_rice_mele_continuum_limit(delta, gap):
    """Richardson extrapolation (error O(1/N^2)) of ours at N = 64, 128 against the reference at N = 6000."""
    p64, p128 = (berry_polarization(rice_mele(delta, gap), np.ones(2), (n, 1, 1)).reduced[0] for n in (64, 128))
    extrapolated = (4 * p128 - p64) / 3
    assert abs(wrap(extrapolated - wilson_loop_reference(delta, gap, 6000))) < 1e-6


def test_rice_mele_inversion_and_translation():
    delta, gap = CYCLE[1]
    p = berry_polarization(rice_mele(delta, gap), np.ones(2), (32, 1, 1)).reduced
    base = np.array([[0.0, 0, 0], [XB * A, 0, 0]]) + ORIGIN
    inverted = berry_polarization(rice_mele(delta, gap, positions=-base, sign=-1), np.ones(2), (32, 1, 1)).reduced
    assert np.abs(wrap(inverted + p)).max() < 1e-10
    shifted = berry_polarization(rice_mele(delta, gap, positions=base + [0.37, 1.1, -2.0]), np.ones(2), (32, 1, 1)).reduced
    assert np.abs(wrap(shifted - p)).max() < 1e-10


def _move_atom(data, atom, lattice_shift):
    """Atom ``atom`` moved by the lattice vector n.a: blocks re-labelled so every displacement is kept."""
    n = np.asarray(lattice_shift)
    pos = data.structure.positions.copy()
    pos[atom] += n @ data.structure.cell

    def relabel(m):
        ap = m.atom_pairs.copy()
        ap[ap[:, 4] == atom, :3] -= n
        ap[ap[:, 3] == atom, :3] += n
        return BlockSparse.from_arrays(ap, m.shapes, m.entries)

    st = Structure(data.structure.symbols, pos, data.structure.cell)
    return DeephStructure(st, data.basis, data.info, overlap=relabel(data.overlap), hamiltonian=relabel(data.hamiltonian))


def _invert(data):
    """r -> -r: positions negated, H_ij(R) -> P_i H_ij(-R) P_j with P = (-1)^l on each orbital."""
    parity = {el: np.concatenate([np.full(2 * l + 1, (-1.0) ** l) for l in ls])
              for el, ls in data.info["elements_orbital_map"].items()}
    sym = data.structure.symbols

    def flip(m):
        ap = m.atom_pairs.copy()
        ap[:, :3] *= -1
        entries = m.entries.copy()
        for k in range(m.n_blocks):
            i, j = ap[k, 3], ap[k, 4]
            blk = m.block(k) * parity[sym[i]][:, None] * parity[sym[j]][None, :]
            entries[m.boundaries[k]:m.boundaries[k + 1]] = blk.reshape(-1)
        return BlockSparse.from_arrays(ap, m.shapes, entries)

    st = Structure(sym, -data.structure.positions, data.structure.cell)
    return DeephStructure(st, data.basis, data.info, overlap=flip(data.overlap), hamiltonian=flip(data.hamiltonian))


def test_hbn_translation_and_inversion():
    """A rattled 2x2 hBN sheet (real PySCF H, S with s and p shells): P invariant mod the quantum under a
    rigid translation and under moving one atom by a lattice vector; P -> -P under inversion."""
    if not HBN.is_dir():
        pytest.skip(f"needs the shipped dataset {HBN}")
    data = read_deeph_dir(HBN)
    z = valence_charges(data)
    assert z.tolist() == [3.0, 5.0] * 4  # gth-pbe valences: B 3, N 5
    mesh = (4, 4, 1)
    p = berry_polarization(data, z, mesh).reduced
    assert np.abs(p[:2]).max() > 1e-3  # rattled: polar
    moved = berry_polarization(_move_atom(data, 3, (1, -1, 0)), z, mesh).reduced
    assert np.abs(wrap(moved - p)).max() < 1e-8
    t = np.array([0.3, -0.2, 0.7])
    st = Structure(data.structure.symbols, data.structure.positions + t, data.structure.cell)
    shifted = DeephStructure(st, data.basis, data.info, overlap=data.overlap, hamiltonian=data.hamiltonian)
    assert np.abs(wrap(berry_polarization(shifted, z, mesh).reduced - p)).max() < 1e-8
    assert np.abs(wrap(berry_polarization(_invert(data), z, mesh).reduced + p)).max() < 1e-8


@pytest.fixture(scope="module")
def water_sto3g():
    from deeph_jax.dft.molecules import MoleculeSettings, compute_molecule

    pos = np.array([[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]) + 5.0
    data, _ = compute_molecule(Structure(("O", "H", "H"), pos, np.eye(3) * 10, periodic=False),
                               MoleculeSettings(basis="sto-3g"))
    return data


def test_water_in_a_box_converges_to_mulliken_dipole(water_sto3g):
    """Blocks at R = 0 only in a cubic box of side L: P * Omega -> sum_A (Z_A - q_A) tau_A (Mulliken,
    same H and S, same Z_A) with an error ~ 1/(N L)^2 (N k-points per string)."""
    from deeph_jax.physics.dipole import density_matrix, mulliken_charges, point_charge_dipole

    data = water_sto3g
    z = np.array([8.0, 1.0, 1.0])
    h, s = data.hamiltonian_k((0, 0, 0)).real, data.overlap_k((0, 0, 0)).real
    q = mulliken_charges(density_matrix(h, s, 10), s, data.atom_offsets)
    errors = {}
    for L, n in [(8, 1), (16, 1), (32, 1), (16, 4)]:
        pos = data.structure.positions - data.structure.positions.mean(0) + L / 2
        box = DeephStructure(Structure(data.structure.symbols, pos, np.eye(3) * L), data.basis, data.info,
                             overlap=data.overlap, hamiltonian=data.hamiltonian)
        p = berry_polarization(box, z, (n, n, n))
        errors[L, n] = np.abs(p.dipole_per_cell - point_charge_dipole(z - q, pos)).max()
    assert 3.5 < errors[8, 1] / errors[16, 1] < 4.5 and 3.5 < errors[16, 1] / errors[32, 1] < 4.5
    assert errors[32, 1] < 1e-3 and abs(errors[16, 4] - errors[32, 1] / 4) < 1e-4  # depends on N L only
