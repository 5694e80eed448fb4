"""Padded batches: fixed shapes, correct offsets, padding that points nowhere real."""

import numpy as np
from ase.build import bulk, molecule

from deeph_jax.graph import GraphTargets, batch_graphs, build_graph, count_buckets, padded_sizes
from deeph_jax.graph.batch import bucket_size, next_power_of_two
from deeph_jax.io.structures import from_ase


def graphs():
    water = from_ase(molecule("H2O"))
    si = from_ase(bulk("Si", "diamond", a=5.43))
    return [build_graph(water, 5.0), build_graph(si, 4.0)]


def test_batch_offsets_and_padding():
    g = graphs()
    b = batch_graphs(g, ["H", "O", "Si"])
    N, E, G = padded_sizes(g[0].n_nodes + g[1].n_nodes, g[0].n_edges + g[1].n_edges, 2)
    assert (b.n_nodes, b.n_edges, b.n_graphs) == (N, E, G)
    assert all(x & (x - 1) == 0 for x in (N, E, G))  # powers of two
    assert b.node_mask.sum() == 5 and b.edge_mask.sum() == g[0].n_edges + g[1].n_edges
    assert list(b.species[:3]) == [1, 0, 0] and list(b.species[3:5]) == [2, 2]
    e0 = g[0].n_edges
    np.testing.assert_array_equal(b.senders[e0 : e0 + g[1].n_edges], g[1].senders + 3)
    np.testing.assert_array_equal(b.mirror[e0 : e0 + g[1].n_edges], g[1].mirror() + e0)
    pad = ~b.edge_mask
    assert np.all(b.senders[pad] == N - 1) and np.all(b.receivers[pad] == N - 1)
    assert not b.node_mask[N - 1] and np.all(b.edge_graph[pad] == G - 1)
    assert np.array_equal(b.mirror[b.mirror], np.arange(E))


def test_targets_follow_their_edges():
    g = graphs()
    targets = [GraphTargets(np.full((x.n_edges, 4, 4), float(n + 1)), np.ones((x.n_edges, 4, 4)),
                            np.arange(x.n_edges) % 2 == 0) for n, x in enumerate(g)]
    b = batch_graphs(g, ["H", "O", "Si"], targets)
    e0, e1 = g[0].n_edges, g[0].n_edges + g[1].n_edges
    assert np.all(b.h_blocks[:e0] == 1) and np.all(b.h_blocks[e0:e1] == 2) and not b.h_blocks[e1:].any()
    assert b.block_mask.sum() == targets[0].present.sum() + targets[1].present.sum()


def test_bucket_count_for_mixed_sizes():
    sizes = [(3, 9)] * 10 + [(8, 400)] * 6 + [(32, 1700)] * 4
    assert count_buckets(sizes, 2) == 3
    assert count_buckets([(3, 9)] * 504, 8) == 1
    assert count_buckets([(3, 9)] * 500, 8) == 2  # a last, partial batch has fewer edges


def test_quarter_octave_buckets_bound_the_padding():
    n = np.arange(1, 20000)
    coarse = np.array([bucket_size(int(x), 8) for x in n])
    fine = np.array([bucket_size(int(x), 8, 4) for x in n])
    assert np.all(coarse >= n) and np.all(fine >= n) and np.all(fine <= coarse)
    assert np.all(np.diff(fine) >= 0)
    big = n >= 64
    assert (fine[big] / n[big]).max() <= 1.25 + 1e-12 and (coarse[big] / n[big]).max() > 1.99
    assert np.array_equal(coarse, [next_power_of_two(int(x), 8) for x in n])
    # two 18-atom hBN cells at a 10.2 A cutoff (2 x 2,170 edges + 1 padding edge): 5,120 edges, not 8,192
    assert padded_sizes(36, 4340, 2, 4)[1] == 5120 and padded_sizes(36, 4340, 2)[1] == 8192
    # the shapes a training set of three cell sizes compiles stay few
    sizes = [(8, 976)] * 6 + [(18, 2170)] * 6 + [(32, 3864)] * 6
    assert count_buckets(sizes, 2, 4) == 3 and count_buckets(sizes[::3] + sizes[1::3] + sizes[2::3], 2, 4) <= 6
