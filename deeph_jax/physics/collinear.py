"""Collinear spin: a spinful H whose spin-mixing quarters are zero is two spinless Hamiltonians.

The DeepH spinful layout stores each block as (2a, 2b) = [[uu, ud], [du, dd]] (DESIGN.md); collinear data
(UKS/KUKS, and the collinear model's predictions) have ud = du = 0 exactly, uu = H-up and dd = H-down. Bands
and DOS of such an H are the union of the two channels' spectra; keeping the channels apart labels every
state with its spin (majority and minority bands of a magnet).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from deeph_jax.io.blocks import BlockSparse


def spin_quarters(h: BlockSparse) -> tuple[BlockSparse, BlockSparse, float]:
    """(uu, dd, max |ud|, |du|) of a spinful block set: the two spin-diagonal quarters as spinless block sets
    with the same keys, and the largest spin-mixing entry (0 for collinear spin)."""
    uu, dd = np.empty(h.entries.size // 4, h.entries.dtype), np.empty(h.entries.size // 4, h.entries.dtype)
    mixing = 0.0
    shapes = h.shapes // 2
    starts = np.concatenate([[0], np.cumsum(shapes[:, 0] * shapes[:, 1])])
    for shape in np.unique(h.shapes, axis=0):  # one vectorized slice per block shape
        rows = np.flatnonzero((h.shapes == shape).all(axis=1))
        a, b = int(shape[0]) // 2, int(shape[1]) // 2
        full = h.entries[h.boundaries[rows][:, None] + np.arange(4 * a * b)].reshape(-1, 2 * a, 2 * b)
        index = starts[rows][:, None] + np.arange(a * b)
        uu[index] = full[:, :a, :b].reshape(len(rows), -1)
        dd[index] = full[:, a:, b:].reshape(len(rows), -1)
        if len(rows):
            mixing = max(mixing, float(np.abs(full[:, :a, b:]).max(initial=0.0)),
                         float(np.abs(full[:, a:, :b]).max(initial=0.0)))
    return (BlockSparse.from_arrays(h.atom_pairs, shapes, uu), BlockSparse.from_arrays(h.atom_pairs, shapes, dd),
            mixing)


def is_collinear(data) -> bool:
    """A spinful DeephStructure whose stored H has no spin-mixing entry at all."""
    return bool(data.spinful and data.hamiltonian is not None and spin_quarters(data.hamiltonian)[2] == 0.0)


def spin_channels(data):
    """(up, down): spinless DeephStructures of the two channels of a collinear ``data`` (same structure,
    basis and overlap; complex entries with zero imaginary part become real), or None when ``data`` is not
    collinear (spinless, no H, or any spin-mixing entry). The channels' ``occupation`` is None: the electrons
    are counted over both channels together (one Fermi level)."""
    if not data.spinful or data.hamiltonian is None:
        return None
    up, down, mixing = spin_quarters(data.hamiltonian)
    if mixing != 0.0:
        return None

    def channel(h: BlockSparse):
        if np.iscomplexobj(h.entries) and not np.any(h.entries.imag):
            h = BlockSparse.from_arrays(h.atom_pairs, h.shapes, h.entries.real.copy())
        info = {**data.info, "spinful": False, "occupation": None}
        return replace(data, hamiltonian=h, info=info)

    return channel(up), channel(down)


__all__ = ["is_collinear", "spin_channels", "spin_quarters"]
