"""Split a pair graph into chunks of centre atoms with halos: exact, memory-bounded inference.

An edge's output depends only on atoms a few hops from its sender: one hop to its receiver,
then one hop per message-passing layer, over message edges only (those shorter than the
model's message cutoff; all edges without one). ``hop_cutoffs`` lists the edge-length limit
of each hop. A chunk is a spatially compact set C of centre atoms; its halo is every atom
image reached from C by those hops over the graph. The chunk's subgraph is the cluster of those images,
unwrapped out of the periodic cell (each image carries its own position, so a cell smaller
than the halo simply appears several times), with every graph edge between two of its images.
Edges leaving C's atoms at image 0 are the chunk's targets; their outputs equal those of the
whole-structure graph, because every image short of the last hop has its full neighbourhood.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deeph_jax.graph import PairGraph

_T_BITS = 10  # image shifts in [-512, 511] per axis


def _pack_instances(atoms: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    t = shifts.astype(np.int64) + (1 << (_T_BITS - 1))
    return (((atoms.astype(np.int64) << _T_BITS | t[:, 0]) << _T_BITS | t[:, 1]) << _T_BITS) | t[:, 2]


@dataclass(frozen=True, eq=False)
class Chunk:
    """One chunk: its subgraph, and which subgraph edges are the targets (original edge ids)."""

    graph: PairGraph  # unwrapped cluster; shifts are zero, vectors are the original edge vectors
    target_sub_edges: np.ndarray  # (n_targets,) edge index in ``graph``
    target_edges: np.ndarray  # (n_targets,) edge index in the whole-structure graph


def spatial_order(graph: PairGraph, chunk_atoms: int) -> list[np.ndarray]:
    """Partition atoms into compact groups of about ``chunk_atoms`` (a grid over the cell)."""
    n = graph.n_nodes
    n_chunks = max(1, int(np.ceil(n / chunk_atoms)))
    if n_chunks == 1:
        return [np.arange(n)]
    frac = np.linalg.solve(graph.cell.T, graph.positions.T).T
    frac = frac - np.floor(frac.min(0))
    lengths = np.linalg.norm(graph.cell, axis=1) * np.ptp(frac, axis=0)
    # Split the longest side of the grid cells until there are enough: compact chunks, and a
    # thin direction (a sheet's rattle across the vacuum) is never cut.
    dims = np.ones(3, int)
    while dims.prod() < n_chunks:
        dims[np.argmax(lengths / dims)] += 1
    lo, span = frac.min(0), np.maximum(np.ptp(frac, axis=0), 1e-12)
    cell_idx = np.minimum((dims * (frac - lo) / span).astype(int), dims - 1)
    flat = (cell_idx[:, 0] * dims[1] + cell_idx[:, 1]) * dims[2] + cell_idx[:, 2]
    order = np.argsort(flat, kind="stable")
    groups = np.split(order, np.nonzero(np.diff(flat[order]))[0] + 1)
    return [g for g in groups if len(g)]


def _csr(graph: PairGraph):
    order = np.argsort(graph.senders, kind="stable")
    starts = np.searchsorted(graph.senders[order], np.arange(graph.n_nodes + 1))
    return order, starts


def _out_edges(atoms: np.ndarray, order: np.ndarray, starts: np.ndarray):
    """(instance position in ``atoms``, edge id) of every edge leaving each atom."""
    counts = starts[atoms + 1] - starts[atoms]
    owner = np.repeat(np.arange(len(atoms)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return owner, order[np.repeat(starts[atoms], counts) + offsets]


def build_chunk(graph: PairGraph, centres: np.ndarray, hop_cutoffs, csr=None) -> Chunk:
    """The subgraph of ``centres`` with a halo reached by one hop per entry of ``hop_cutoffs``
    (Angstrom; a hop follows edges shorter than its entry, ``np.inf`` for all; see module docstring)."""
    order, starts = csr if csr is not None else _csr(graph)
    lengths = np.linalg.norm(graph.vectors, axis=1)
    atoms = np.asarray(centres, np.int64)
    shifts = np.zeros((len(atoms), 3), np.int64)
    keys = _pack_instances(atoms, shifts)
    frontier = np.arange(len(atoms))
    # Expanding only the newest instances is exact because no hop is longer than the one before.
    if any(b > a for a, b in zip(hop_cutoffs, hop_cutoffs[1:])):
        raise ValueError(f"hop cutoffs must not increase, got {list(hop_cutoffs)}")
    for limit in hop_cutoffs:
        owner, edges = _out_edges(atoms[frontier], order, starts)
        short = lengths[edges] < limit
        owner, edges = owner[short], edges[short]
        new_atoms = graph.receivers[edges]
        new_shifts = shifts[frontier][owner] + graph.shifts[edges]
        new_keys = _pack_instances(new_atoms, new_shifts)
        new_keys, first = np.unique(new_keys, return_index=True)
        fresh = ~np.isin(new_keys, keys)
        first = first[fresh]
        frontier = np.arange(len(atoms), len(atoms) + len(first))
        atoms = np.concatenate([atoms, new_atoms[first]])
        shifts = np.concatenate([shifts, new_shifts[first]])
        keys = np.concatenate([keys, new_keys[fresh]])
    # Every graph edge between two instances of the cluster.
    owner, edges = _out_edges(atoms, order, starts)
    target_keys = _pack_instances(graph.receivers[edges], shifts[owner] + graph.shifts[edges])
    sort = np.argsort(keys)
    pos = np.clip(np.searchsorted(keys[sort], target_keys), 0, len(keys) - 1)
    inside = keys[sort][pos] == target_keys
    owner, edges, receiver = owner[inside], edges[inside], sort[pos[inside]]
    positions = graph.positions[atoms] + shifts @ graph.cell
    # Long-range potentials come from the whole structure: a chunk takes its atoms' rows.
    potentials = None if graph.node_potentials is None else graph.node_potentials[atoms]
    moments = None if graph.node_moments is None else graph.node_moments[atoms]
    charge = None if graph.charge_potentials is None else graph.charge_potentials[atoms]
    if graph.charge_kernel is not None:
        raise ValueError("a graph with a dense charge kernel (training) cannot be chunked: attach the charges' "
                         "potentials instead (deeph_jax.predict.charges.attach_charge_potentials)")
    sub = PairGraph(tuple(np.asarray(graph.symbols)[atoms]), positions, graph.cell, owner.astype(np.int64),
                    receiver.astype(np.int64), np.zeros((len(edges), 3), np.int64), graph.vectors[edges],
                    potentials, moments, charge_potentials=charge)
    is_target = owner < len(centres)  # centre instances come first, at image 0
    return Chunk(sub, np.nonzero(is_target)[0], edges[is_target])


def make_chunks(graph: PairGraph, hop_cutoffs, chunk_atoms: int) -> list[Chunk]:
    """Chunks covering every edge of ``graph`` exactly once (as targets)."""
    csr = _csr(graph)
    return [build_chunk(graph, centres, hop_cutoffs, csr) for centres in spatial_order(graph, chunk_atoms)]


def model_hops(num_layers: int, message_cutoff: float | None) -> list[float]:
    """``hop_cutoffs`` of a network: the edge itself, then one message hop per layer (each layer
    updates nodes, then edges from the *updated* endpoint nodes: model/layers.py)."""
    return [np.inf] + [message_cutoff or np.inf] * num_layers
