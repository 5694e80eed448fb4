"""Ewald potentials of point charges: against pymatgen's EwaldSummation, particle-mesh vs direct, invariances."""

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from deeph_jax.physics.ewald import (COULOMB_EV_A, ewald_potential, long_range_kernel, long_range_potential,
                                     pme_long_range_potential)

REPO = Path(__file__).resolve().parents[2]


def _hbn_cell():
    from deeph_jax.io import read_deeph_dir

    s = read_deeph_dir(REPO / "datasets" / "hbn-szv" / "large-4x4" / "00000", hamiltonian=None).structure
    charges = np.where(np.asarray(s.symbols) == "B", 0.7, -0.7)
    return s.positions, s.cell, charges


def _rocksalt():
    rng = np.random.default_rng(3)
    a = 4.2
    cell = np.eye(3) * a * 2
    frac = np.array([[i, j, k] for i in range(2) for j in range(2) for k in range(2)], dtype=float) / 2
    pos = np.concatenate([frac, frac + 0.25]) @ cell + rng.normal(0, 0.1, (16, 3))
    charges = np.concatenate([np.full(8, 1.0), np.full(8, -1.0)]) + rng.normal(0, 0.05, 16)
    return pos, cell, charges - charges.mean()


@pytest.mark.parametrize("system", [_hbn_cell, _rocksalt])
def test_potential_matches_pymatgen(system):
    from pymatgen.analysis.ewald import EwaldSummation
    from pymatgen.core import Lattice, Structure

    pos, cell, q = system()
    structure = Structure(Lattice(cell), ["H"] * len(q), pos, coords_are_cartesian=True,
                          site_properties={"charge": q})
    matrix = EwaldSummation(structure, compute_forces=False).total_energy_matrix  # E = sum_ij M_ij
    phi_pymatgen = 2 * matrix.sum(axis=1) / q
    phi = ewald_potential(pos, cell, q)
    assert np.abs(phi - phi_pymatgen).max() < 1e-6 * np.abs(phi).max()
    for alpha in (0.2, 0.45):  # the split must not change the total
        assert np.abs(ewald_potential(pos, cell, q, alpha=alpha) - phi).max() < 1e-7


def test_molecule_is_the_plain_coulomb_sum():
    rng = np.random.default_rng(0)
    pos = rng.normal(0, 2.0, (7, 3))
    q = rng.normal(0, 0.5, 7)
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    expected = COULOMB_EV_A * (q[None, :] / d).sum(axis=1)
    np.testing.assert_allclose(ewald_potential(pos, None, q), expected, rtol=1e-9)


def test_particle_mesh_matches_the_direct_sum():
    from deeph_jax.dft.crystals import named_cell, supercell

    sc = supercell(named_cell("hbn"), (12, 12, 1))
    rng = np.random.default_rng(1)
    pos = sc.positions + rng.normal(0, 0.1, sc.positions.shape)
    q = np.where(np.asarray(sc.symbols) == "B", 0.5, -0.5) + rng.normal(0, 0.02, len(pos))
    q -= q.mean()
    direct = long_range_kernel(pos, sc.cell, 0.3) @ q
    mesh = pme_long_range_potential(pos, sc.cell, q, 0.3)
    assert np.abs(mesh - direct).max() < 1e-5 * np.abs(direct).max()
    np.testing.assert_allclose(long_range_potential(pos, sc.cell, q, 0.3, direct_max_atoms=10), mesh)


def test_mesh_plus_real_space_difference_reaches_a_large_alpha():
    """alpha = 1/A is beyond the PME grid; mesh at PME_ALPHA_MAX + the erf difference equals the direct sum."""
    from deeph_jax.dft.crystals import named_cell, supercell

    sc = supercell(named_cell("hbn"), (10, 10, 1))
    rng = np.random.default_rng(2)
    pos = sc.positions + rng.normal(0, 0.1, sc.positions.shape)
    q = np.where(np.asarray(sc.symbols) == "B", 1.0, -1.0)
    direct = long_range_kernel(pos, sc.cell, 1.0) @ q
    assert np.abs(pme_long_range_potential(pos, sc.cell, q, 1.0) - direct).max() > 1e-3  # the grid alone fails
    combined = long_range_potential(pos, sc.cell, q, 1.0, direct_max_atoms=10)
    assert np.abs(combined - direct).max() < 1e-5 * np.abs(direct).max()


def test_long_range_kernel_is_invariant():
    pos, cell, q = _hbn_cell()
    k = long_range_kernel(pos, cell, 0.3)
    np.testing.assert_allclose(k, k.T, atol=1e-12)
    phi = k @ q
    rot = Rotation.random(random_state=4).as_matrix()
    np.testing.assert_allclose(long_range_kernel(pos @ rot.T, cell @ rot.T, 0.3) @ q, phi, atol=1e-9)
    np.testing.assert_allclose(long_range_kernel(pos + np.array([0.3, -1.1, 2.0]), cell, 0.3) @ q, phi, atol=1e-9)
    perm = np.random.default_rng(2).permutation(len(q))
    np.testing.assert_allclose(long_range_kernel(pos[perm], cell, 0.3) @ q[perm], phi[perm], atol=1e-9)
    # Another choice of cell vectors for the same lattice (a' = a + b): the same potentials.
    other = np.array([cell[0] + cell[1], cell[1], cell[2]])
    np.testing.assert_allclose(long_range_kernel(pos, other, 0.3) @ q, phi, atol=1e-8)


def test_element_potentials_switch_to_the_mesh_by_cost_and_agree():
    """At alpha = 1/A the direct reciprocal sum of a 1,000-atom sheet would need ~20 GB, so element_potentials
    picks particle-mesh Ewald by the number of terms, not atoms; forced onto the mesh, a 72-atom cell gives the
    direct kernel's potentials."""
    from deeph_jax.graph.long_range import element_potentials
    from deeph_jax.physics.ewald import DIRECT_MAX_TERMS, direct_sum_terms
    from deeph_jax.io import read_deeph_dir

    s = read_deeph_dir(REPO / "datasets" / "hbn-szv" / "test-6x6" / "00000", hamiltonian=None).structure
    direct = element_potentials(s.positions, s.cell, s.symbols, ["B", "N"], 1.0)
    mesh = element_potentials(s.positions, s.cell, s.symbols, ["B", "N"], 1.0, direct_max_terms=0)
    assert direct_sum_terms(s.n_atoms, s.cell, 1.0) <= DIRECT_MAX_TERMS  # the first one was direct
    np.testing.assert_allclose(mesh, direct, atol=1e-4 * np.abs(direct).max())
    big_cell = np.diag([50.0, 50.0, 20.0])
    assert direct_sum_terms(1000, big_cell, 1.0) > 20 * DIRECT_MAX_TERMS


def test_periodic_routes_refuse_a_net_charge():
    """A net charge's dropped G = 0 term depends on alpha, so the direct and mesh routes would differ by a
    constant (~1 V for 1.8 e in an 18-atom hBN cell): both refuse it, naming the total."""
    pos, cell, q = _hbn_cell()
    charged = q + 0.05
    with pytest.raises(ValueError, match="neutral charges; these sum to 1.6"):
        long_range_potential(pos, cell, charged, 1.0)
    with pytest.raises(ValueError, match="neutral charges"):
        pme_long_range_potential(pos, cell, charged, 0.3)
    long_range_potential(pos, None, charged, 1.0)  # open boundaries: a net charge is fine


def test_open_boundaries_in_row_blocks_equal_the_dense_kernel(monkeypatch):
    """A flake larger than one block of rows gives the dense kernel's potentials (O(N) memory route)."""
    import deeph_jax.physics.ewald as ewald

    rng = np.random.default_rng(5)
    pos = rng.uniform(0, 12.0, (50, 3))
    q = rng.normal(0, 0.5, 50)
    monkeypatch.setattr(ewald, "_OPEN_ROWS", 16)  # 4 blocks, the last one short
    np.testing.assert_allclose(ewald.open_long_range_potential(pos, q, 0.7), long_range_kernel(pos, None, 0.7) @ q,
                               rtol=1e-12, atol=1e-12)


def test_kernel_in_slices_of_reciprocal_vectors_is_the_same_sum(monkeypatch):
    import deeph_jax.physics.ewald as ewald

    pos, cell, q = _hbn_cell()
    whole = long_range_kernel(pos, cell, 1.0)
    monkeypatch.setattr(ewald, "_KERNEL_SLICE", 300 * len(pos))  # 300 G vectors per slice
    np.testing.assert_allclose(long_range_kernel(pos, cell, 1.0), whole, atol=1e-10)
