"""Pair graphs against a brute-force enumeration of periodic images."""

import numpy as np
import pytest
from ase.build import bulk, graphene

from deeph_jax.errors import DeephError
from deeph_jax.graph import brute_force_pairs, build_graph, dropped_blocks, match_blocks, padded_edge_blocks
from deeph_jax.io import read_deeph_dir
from deeph_jax.io.structures import Structure, from_ase


def edge_set(g):
    return {(int(i), int(j), *map(int, R)) for i, j, R in zip(g.senders, g.receivers, g.shifts)}


def rattled(structure, sigma=0.05, seed=0):
    rng = np.random.default_rng(seed)
    return Structure(structure.symbols, structure.positions + rng.normal(0, sigma, structure.positions.shape),
                     structure.cell, structure.periodic)


@pytest.mark.parametrize("cutoff", [2.0, 4.0, 7.5])
def test_diamond_matches_brute_force(cutoff):
    s = rattled(from_ase(bulk("C", "diamond", a=3.567)))
    g = build_graph(s, cutoff)
    assert edge_set(g) == brute_force_pairs(s, cutoff)


def test_mote2_matches_brute_force(mote2_dir):
    s = read_deeph_dir(mote2_dir, hamiltonian=None).structure
    for cutoff in (4.0, 9.0):
        assert edge_set(build_graph(s, cutoff)) == brute_force_pairs(s, cutoff)


def test_tiny_cell_sees_many_images_of_itself():
    s = Structure(("Si",), [[0, 0, 0]], np.diag([2.0, 2.2, 2.5]))  # 6.0 = 3 x 2.0 tests the strict "<"
    g = build_graph(s, 6.0)
    assert edge_set(g) == brute_force_pairs(s, 6.0)
    assert g.n_edges > 50  # (0, 0, R) images of the only atom


def test_vectors_lengths_and_mirror():
    s = rattled(from_ase(graphene(a=2.46, vacuum=6.0)))
    g = build_graph(s, 5.0)
    ap = g.atom_pairs
    expected = s.positions[ap[:, 4]] + ap[:, :3] @ s.cell - s.positions[ap[:, 3]]
    np.testing.assert_allclose(g.vectors, expected, atol=1e-12)
    assert np.all(g.lengths <= 5.0)
    m = g.mirror()
    assert np.array_equal(g.senders[m], g.receivers) and np.array_equal(g.shifts[m], -g.shifts)
    assert np.array_equal(m[m], np.arange(g.n_edges))
    self_edges = (g.senders == g.receivers) & ~g.shifts.any(1)
    assert self_edges.sum() == s.n_atoms and np.array_equal(m[self_edges], np.nonzero(self_edges)[0])


def test_molecule_has_no_images():
    s = Structure(("O", "H", "H"), [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]], np.eye(3) * 3.0, periodic=False)
    g = build_graph(s, 10.0)
    assert g.n_edges == 9 and not g.shifts.any()
    assert len(edge_set(build_graph(Structure(s.symbols, s.positions, s.cell, True), 10.0))) > 9


def test_per_element_pair_cutoffs():
    s = rattled(from_ase(bulk("NaCl", "rocksalt", a=5.64)))
    cut = {("Na", "Na"): 4.5, ("Cl", "Cl"): 3.0, ("Na", "Cl"): 3.0}
    g = build_graph(s, cut)
    sym = np.asarray(s.symbols)
    for e in range(g.n_edges):
        assert g.lengths[e] < cut.get((sym[g.senders[e]], sym[g.receivers[e]]), cut.get((sym[g.receivers[e]], sym[g.senders[e]])))
    ref = {p for p in brute_force_pairs(s, 4.5) if not (sym[p[0]] != "Na" or sym[p[1]] != "Na")}
    assert {p for p in edge_set(g) if sym[p[0]] == sym[p[1]] == "Na"} == ref
    with pytest.raises(DeephError, match="no cutoff"):
        build_graph(s, {("Na", "Na"): 3.0})


def test_stored_blocks_beyond_cutoff_are_reported(mote2_dir):
    data = read_deeph_dir(mote2_dir)
    full = build_graph(data.structure, 9.0)
    edge_block, dropped = match_blocks(full, data.hamiltonian)
    assert len(dropped) == 0 and (edge_block >= 0).sum() == data.hamiltonian.n_blocks
    short = build_graph(data.structure, 6.0)
    report = dropped_blocks(short, data.hamiltonian, data.overlap)
    assert report.count > 0 and report.max_abs_h_eV > 0 and report.min_distance > 6.0
    assert "beyond the cutoff" in report.message()


def test_padded_edge_blocks_hold_the_stored_blocks(mote2_dir):
    data = read_deeph_dir(mote2_dir)
    g = build_graph(data.structure, 9.0)
    blocks, present = padded_edge_blocks(g, data.hamiltonian, data.basis)
    assert blocks.shape == (g.n_edges, 19, 19)
    for e in np.nonzero(present)[0][:20]:
        R, i, j = g.shifts[e], g.senders[e], g.receivers[e]
        np.testing.assert_array_equal(blocks[e], data.hamiltonian.get(R, i, j))
    assert not blocks[~present].any()
