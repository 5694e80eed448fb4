"""Stored DFT blocks on graph edges: matching, padding, and what the cutoff drops."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deeph_jax.graph.pairs import PairGraph, _pack
from deeph_jax.io.basis import OrbitalBasis
from deeph_jax.io.blocks import BlockSparse


def match_blocks(graph: PairGraph, matrix: BlockSparse) -> tuple[np.ndarray, np.ndarray]:
    """Pair each graph edge with its stored block.

    Returns:
        edge_block: (n_edges,) index of the edge's block in ``matrix``, -1 where none is stored.
        dropped: indices of stored blocks that are not graph edges (beyond the cutoff).
    """
    edge_keys = _pack(graph.atom_pairs)
    block_keys = _pack(matrix.atom_pairs)
    order = np.argsort(block_keys)
    pos = np.clip(np.searchsorted(block_keys[order], edge_keys), 0, max(len(order) - 1, 0))
    found = len(order) > 0
    edge_block = np.where(found & (block_keys[order][pos] == edge_keys), order[pos], -1) if found else np.full(len(edge_keys), -1)
    in_graph = np.zeros(matrix.n_blocks, dtype=bool)
    in_graph[edge_block[edge_block >= 0]] = True
    return edge_block.astype(np.int64), np.nonzero(~in_graph)[0]


@dataclass(frozen=True)
class DroppedBlocks:
    """Stored blocks beyond the graph's cutoff. |H| in eV; a small |H| can still move bands by a lot."""

    count: int
    n_blocks: int
    max_abs_h_eV: float
    max_abs_s: float
    min_distance: float

    def message(self) -> str:
        if self.count == 0:
            return f"all {self.n_blocks} stored blocks are graph edges"
        return (
            f"{self.count} of {self.n_blocks} stored blocks lie beyond the cutoff (nearest at {self.min_distance:.2f} A; "
            f"largest dropped |H| {self.max_abs_h_eV:.3g} eV, |S| {self.max_abs_s:.3g}); "
            f"small |H| entries summed over many neighbours can still shift bands by much more"
        )


def dropped_blocks(graph: PairGraph, hamiltonian: BlockSparse | None, overlap: BlockSparse | None) -> DroppedBlocks:
    """Count and size of the stored blocks the graph leaves out."""
    count, total, max_h, max_s, dmin = 0, 0, 0.0, 0.0, np.inf
    for matrix, is_h in ((hamiltonian, True), (overlap, False)):
        if matrix is None:
            continue
        _, dropped = match_blocks(graph, matrix)
        total = max(total, matrix.n_blocks)
        count = max(count, len(dropped))
        for n in dropped:
            v = float(np.abs(matrix.block(n)).max(initial=0.0))
            if is_h:
                max_h = max(max_h, v)
            else:
                max_s = max(max_s, v)
        if len(dropped):
            ap = matrix.atom_pairs[dropped]
            d = graph.positions[ap[:, 4]] + ap[:, :3] @ graph.cell - graph.positions[ap[:, 3]]
            dmin = min(dmin, float(np.linalg.norm(d, axis=1).min()))
    return DroppedBlocks(count, total, max_h, max_s, dmin if np.isfinite(dmin) else 0.0)


def padded_edge_blocks(
    graph: PairGraph, matrix: BlockSparse, basis: OrbitalBasis, width: int | None = None, spinful: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Each edge's stored block, zero-padded to (width, width) in the top-left corner.

    ``spinful``: the stored blocks are (2a, 2b) ``[[uu, ud], [du, dd]]``; each spin quarter is padded
    to (width, width) alone, giving (2 width, 2 width) blocks (:func:`spin_rows`).

    Returns:
        blocks: (n_edges, width, width) (spinful: (n_edges, 2 width, 2 width)), dtype of ``matrix.entries``.
        present: (n_edges,) bool, True where the block is stored.
    """
    n_orb = np.asarray([basis.n_orbitals(s) for s in graph.symbols])
    width = int(width or max(basis.n_orbitals(e) for e in basis.elements))
    edge_block, _ = match_blocks(graph, matrix)
    size = 2 * width if spinful else width
    blocks = np.zeros((graph.n_edges, size, size), dtype=matrix.entries.dtype)
    for e in np.nonzero(edge_block >= 0)[0]:
        a, b = n_orb[graph.senders[e]], n_orb[graph.receivers[e]]
        if spinful:
            blocks[e][np.ix_(spin_rows(a, width), spin_rows(b, width))] = matrix.block(edge_block[e])
        else:
            blocks[e, :a, :b] = matrix.block(edge_block[e])
    return blocks, edge_block >= 0


def spin_rows(n: int, width: int) -> np.ndarray:
    """(2n,) rows (or columns) of a (2n)-orbital spinful block inside its padded (2 width) block."""
    return np.concatenate([np.arange(n), width + np.arange(n)])
