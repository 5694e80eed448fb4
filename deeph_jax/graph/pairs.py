"""Atom-pair graphs: which blocks H_ij(R) exist, from a locality cutoff (quantum nearsightedness).

Edge e stands for the block H_ij(R) = <i, 0| H |j, R>: ``i = senders[e]``, ``j = receivers[e]``,
``R = shifts[e]`` (lattice vectors applied to j) and ``vectors[e] = pos_j + R @ cell - pos_i``.
Every edge has its mirror (j, i, -R) in the graph, and every atom its self edge (i, i, 0),
which carries the on-site block. Neighbours come from vesin (a cell-list library that handles
cells smaller than the cutoff, where an atom sees many images of the same neighbour).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from deeph_jax.errors import DeephError
from deeph_jax.io.structures import Structure

Cutoff = float | Mapping[tuple[str, str], float]


@dataclass(frozen=True, eq=False)
class PairGraph:
    """The pair graph of one structure. Lengths in Angstrom.

    Attributes:
        symbols: (n_nodes,) element of each atom.
        positions: (n_nodes, 3) Cartesian positions.
        cell: (3, 3) lattice vectors as rows.
        senders: (n_edges,) int64, atom i of block H_ij(R).
        receivers: (n_edges,) int64, atom j.
        shifts: (n_edges, 3) int64, R in lattice vectors (zero for molecules).
        vectors: (n_edges, 3) float64, pos_j + R @ cell - pos_i (zero for self edges).
        node_potentials: (n_nodes, n_elements) float64 long-range Ewald potentials per unit element
            charge (eV), or None; filled by :func:`deeph_jax.graph.long_range.attach_long_range`.
        node_moments: (n_nodes,) float64 signed magnetic moment per atom (collinear-spin models), or None
            (zero); filled by :func:`deeph_jax.graph.moments.attach_moments`.
        charge_kernel: (n_nodes, n_nodes) float64 long-range kernel K (V per unit charge) for models with
            environment-dependent charges, in training (small cells); else None.
        charge_potentials: (n_nodes,) float64 potential (V) of those charges at prediction, computed from the
            whole structure by :func:`deeph_jax.predict.charges.attach_charge_potentials`; else None.
    """

    symbols: tuple[str, ...]
    positions: np.ndarray
    cell: np.ndarray
    senders: np.ndarray
    receivers: np.ndarray
    shifts: np.ndarray
    vectors: np.ndarray
    node_potentials: np.ndarray | None = None
    node_moments: np.ndarray | None = None
    charge_kernel: np.ndarray | None = None
    charge_potentials: np.ndarray | None = None

    @property
    def n_nodes(self) -> int:
        return len(self.symbols)

    @property
    def n_edges(self) -> int:
        return int(self.senders.shape[0])

    @property
    def lengths(self) -> np.ndarray:
        return np.linalg.norm(self.vectors, axis=1)

    @property
    def atom_pairs(self) -> np.ndarray:
        """(n_edges, 5) ``[R1, R2, R3, i, j]``, the DeepH key of each edge's block."""
        return np.concatenate([self.shifts, self.senders[:, None], self.receivers[:, None]], axis=1)

    def mirror(self) -> np.ndarray:
        """(n_edges,) index of the edge (j, i, -R) of each edge (i, j, R)."""
        keys = self.atom_pairs
        mirror_keys = np.concatenate([-self.shifts, self.receivers[:, None], self.senders[:, None]], axis=1)
        order = np.lexsort(keys.T[::-1])
        out = order[np.searchsorted(_pack(keys[order]), _pack(mirror_keys))]
        if not np.array_equal(keys[out], mirror_keys):
            raise AssertionError("pair graph is not closed under mirroring")
        return out


def _pack(keys: np.ndarray) -> np.ndarray:
    """One int64 per ``[R1, R2, R3, i, j]`` row, in the rows' lexicographic order.

    R components take 8 bits each (|R| <= 127), atoms 19 bits each (< 524288 atoms).
    """
    k = np.asarray(keys, dtype=np.int64)
    r = k[:, :3] + 128
    if np.any((r < 0) | (r >= 256)) or np.any(k[:, 3:] >= 1 << 19) or np.any(k[:, 3:] < 0):
        raise DeephError("pair keys out of range for packing (|R| <= 127 and fewer than 524288 atoms)")
    return (((r[:, 0] * 256 + r[:, 1]) * 256 + r[:, 2]) << 38) | (k[:, 3] << 19) | k[:, 4]


def pack_pair_keys(atom_pairs: np.ndarray) -> np.ndarray:
    """One int64 per ``[R1, R2, R3, i, j]`` row, ordered like the rows' lexicographic order."""
    return _pack(np.asarray(atom_pairs))


def _cutoff_matrix(cutoff: Cutoff, symbols) -> tuple[float, dict | None]:
    if isinstance(cutoff, Mapping):
        table = {}
        for (a, b), rc in cutoff.items():
            table[(a, b)] = table[(b, a)] = float(rc)
        missing = sorted({(a, b) for a in set(symbols) for b in set(symbols) if (a, b) not in table})
        if missing:
            raise DeephError(f"no cutoff given for element pair(s) {missing}")
        return max(table.values()), table
    return float(cutoff), None


def build_graph(structure: Structure, cutoff: Cutoff) -> PairGraph:
    """Pair graph with every (i, j, R) closer than ``cutoff`` (Angstrom), plus self edges.

    Args:
        structure: atoms; a molecule (``periodic=False``) gets no periodic images.
        cutoff: one radius, or ``{(el_a, el_b): radius}`` per element pair (symmetric).

    Edges are sorted by (i, j, R), so the graph of a structure does not depend on how it
    was built.
    """
    import vesin

    rc, table = _cutoff_matrix(cutoff, structure.symbols)
    if rc <= 0:
        raise DeephError(f"cutoff must be positive, got {rc}")
    nl = vesin.NeighborList(cutoff=rc, full_list=True)
    box = structure.cell if structure.periodic else np.zeros((3, 3))
    i, j, S, D = nl.compute(points=structure.positions, box=box, periodic=structure.periodic, quantities="ijSD")
    i, j, S, D = i.astype(np.int64), j.astype(np.int64), S.astype(np.int64), np.asarray(D, dtype=np.float64)
    if table is not None:
        sym = np.asarray(structure.symbols)
        limit = np.asarray([table[(a, b)] for a, b in zip(sym[i], sym[j])])
        keep = np.linalg.norm(D, axis=1) < limit
        i, j, S, D = i[keep], j[keep], S[keep], D[keep]
    n = structure.n_atoms
    selfs = np.arange(n, dtype=np.int64)
    i = np.concatenate([i, selfs])
    j = np.concatenate([j, selfs])
    S = np.concatenate([S, np.zeros((n, 3), np.int64)])
    D = np.concatenate([D, np.zeros((n, 3))])
    # vesin's D is pos_j + S @ cell - pos_i; recompute from integers so mirrored edges are exact negatives.
    D = structure.positions[j] + S @ structure.cell - structure.positions[i] if structure.periodic else D
    order = np.lexsort((S[:, 2], S[:, 1], S[:, 0], j, i))
    return PairGraph(structure.symbols, structure.positions, structure.cell, i[order], j[order], S[order], D[order])


def brute_force_pairs(structure: Structure, cutoff: float) -> set[tuple[int, int, int, int, int]]:
    """Reference neighbour set ``{(i, j, R1, R2, R3)}`` by enumerating lattice images.

    Slow (numpy over all image shifts in a box large enough for the cutoff); for tests only.
    """
    pos, cell = structure.positions, structure.cell
    if not structure.periodic:
        ranges = [range(1)] * 3
    else:
        # Number of images needed along each axis: cutoff / (plane spacing) + 1.
        rec = np.linalg.inv(cell).T
        spacing = 1.0 / np.linalg.norm(rec, axis=1)
        extent = pos.max(0) - pos.min(0)
        reach = (cutoff + np.linalg.norm(extent)) / spacing
        ranges = [range(-int(np.ceil(r)) - 1, int(np.ceil(r)) + 2) for r in reach]
    out = set()
    for a in ranges[0]:
        for b in ranges[1]:
            for c in ranges[2]:
                R = np.array([a, b, c])
                d = np.linalg.norm(pos[None, :, :] + R @ cell - pos[:, None, :], axis=2)
                for i, j in zip(*np.nonzero(d < cutoff)):
                    out.add((int(i), int(j), a, b, c))
    return out
