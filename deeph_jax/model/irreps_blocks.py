"""Irreps <-> orbital blocks: the boundary between what the network emits and H_ij(R).

A block of shells (l1 on atom i, l2 on atom j) is a (2 l1 + 1, 2 l2 + 1) matrix that
transforms as l1 x l2 = |l1 - l2| + ... + (l1 + l2), parity (-1)^(l1 + l2):

    block[m1, m2] = sum_L sum_M  C(l1, l2, L)[m1, m2, M] x_L[M]

with e3nn-jax's real Clebsch-Gordan coefficients scaled by sqrt(2L + 1), which makes the
stacked map an orthogonal matrix: :func:`block_to_irreps` is its transpose and the two are
exact inverses. Orders are the project's (m = -l..l, p as y, z, x), which inside the model
coincide with e3nn-jax's (see :mod:`deeph_jax.model.wigner`).

Species pairs carry different sets of shell pairs. :class:`BlockLayout` pads them to one
union: for each shell-pair type (l1, l2) as many channels as the richest species pair needs,
and per "pair kind" (ordered species pair, on-site kinds apart) one gather table from those
channels to the (W, W) padded block. One gather per edge replaces any Python loop in jit.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import e3nn_jax as e3nn
import jax.numpy as jnp
import numpy as np

from deeph_jax.io.basis import OrbitalBasis


def model_elements(basis: OrbitalBasis) -> list[str]:
    """The model's element list: ``species`` in a GraphBatch indexes ``sorted(basis.elements)``."""
    return sorted(basis.elements)


def shell_pair_irreps(l1: int, l2: int) -> e3nn.Irreps:
    """Irreps of a (l1, l2) block: L = |l1 - l2| .. l1 + l2, parity (-1)^(l1 + l2)."""
    p = (-1) ** (l1 + l2)
    return e3nn.Irreps([(1, (L, p)) for L in range(abs(l1 - l2), l1 + l2 + 1)])


@lru_cache(maxsize=None)
def cg_matrix(l1: int, l2: int) -> np.ndarray:
    """(2 l1 + 1, 2 l2 + 1, dim) float64; reshaped to (d1 d2, dim) it is orthogonal."""
    parts = [np.sqrt(2 * L + 1) * np.asarray(e3nn.clebsch_gordan(l1, l2, L), dtype=np.float64)
             for L in range(abs(l1 - l2), l1 + l2 + 1)]
    return np.concatenate(parts, axis=2)


def irreps_to_block(x, l1: int, l2: int):
    """(..., dim) irreps of one shell pair -> (..., 2 l1 + 1, 2 l2 + 1) block."""
    return jnp.einsum("...k,abk->...ab", x, jnp.asarray(cg_matrix(l1, l2), dtype=x.dtype))


def block_to_irreps(block, l1: int, l2: int):
    """(..., 2 l1 + 1, 2 l2 + 1) block -> (..., dim) irreps; inverse of :func:`irreps_to_block`."""
    return jnp.einsum("...ab,abk->...k", block, jnp.asarray(cg_matrix(l1, l2), dtype=block.dtype))


@dataclass(frozen=True, eq=False)
class BlockLayout:
    """Static tables mapping padded per-edge irreps to padded (W, W) blocks and back.

    Pair kinds: ``a * S + b`` for an off-site edge from species a to species b, ``S * S + a``
    for the on-site (self) edge of species a, S = number of elements. On-site kinds share the
    block layout of (a, a) but are separate kinds so the head can scale and shift them apart.

    Attributes:
        elements: the model's element list (sorted).
        width: W, max orbitals per atom.
        types: the shell-pair types (l1, l2) present in some species pair.
        channels: per type, the padded number of shell pairs (max over species pairs).
        irreps: output irreps, per type and per L: ``channels x L`` (not simplified).
        gather: (n_kinds, W * W) int, index of each block entry in the flat channel blocks
            (``F`` = unused, reads a zero).
        scatter: (n_kinds, F) int, index in the flat (W * W) block of each channel-block entry
            (``W * W`` = unused channel).
        entry_mask: (n_kinds, W, W) bool, the real entries of each kind's block.
    """

    elements: tuple[str, ...]
    width: int
    types: tuple[tuple[int, int], ...]
    channels: tuple[int, ...]
    irreps: e3nn.Irreps
    gather: np.ndarray
    scatter: np.ndarray
    entry_mask: np.ndarray

    @property
    def n_kinds(self) -> int:
        return self.gather.shape[0]

    @property
    def n_flat(self) -> int:
        return self.scatter.shape[1]

    @property
    def channel_of_dim(self) -> np.ndarray:
        """(irreps.dim,) int: the irrep channel (0 .. irreps.num_irreps - 1) of each component, the
        index a per-channel scale is gathered with."""
        return np.repeat(np.arange(self.irreps.num_irreps), [ir.dim for mul, ir in self.irreps for _ in range(mul)])

    @property
    def scalar_dims(self) -> np.ndarray:
        """(n_scalars,) int: the components that are 0e, the only ones a shift may move (equivariance)."""
        return np.nonzero(np.concatenate([np.full(mul * ir.dim, ir.l == 0) for mul, ir in self.irreps]))[0]

    def type_slices(self):
        """Per type: ((l1, l2), channels, [(irreps offset, L), ...], flat offset)."""
        out, off, flat = [], 0, 0
        for (l1, l2), c in zip(self.types, self.channels):
            chunks = []
            for L in range(abs(l1 - l2), l1 + l2 + 1):
                chunks.append((off, L))
                off += c * (2 * L + 1)
            out.append(((l1, l2), c, chunks, flat))
            flat += c * (2 * l1 + 1) * (2 * l2 + 1)
        return out


def build_layout(basis: OrbitalBasis) -> BlockLayout:
    """The padded union layout of every species pair of ``basis``."""
    elements = tuple(model_elements(basis))
    S = len(elements)
    W = max(basis.n_orbitals(e) for e in elements)
    # Shell pairs of each ordered species pair, grouped by type, in (s1, s2) order.
    pairs: dict[tuple[int, int], dict[tuple[int, int], list[tuple[int, int]]]] = {}
    for a, ea in enumerate(elements):
        oa = basis.shell_offsets(ea)
        for b, eb in enumerate(elements):
            ob = basis.shell_offsets(eb)
            groups: dict[tuple[int, int], list[tuple[int, int]]] = {}
            for s1, l1 in enumerate(basis.shells[ea]):
                for s2, l2 in enumerate(basis.shells[eb]):
                    groups.setdefault((l1, l2), []).append((int(oa[s1]), int(ob[s2])))
            pairs[(a, b)] = groups
    types = sorted({t for g in pairs.values() for t in g})
    channels = [max(len(g.get(t, [])) for g in pairs.values()) for t in types]
    irreps = e3nn.Irreps([(c, (L, (-1) ** (l1 + l2)))
                          for (l1, l2), c in zip(types, channels) for L in range(abs(l1 - l2), l1 + l2 + 1)])
    F = sum(c * (2 * l1 + 1) * (2 * l2 + 1) for (l1, l2), c in zip(types, channels))

    def tables(groups):
        gather = np.full(W * W, F, np.int64)
        scatter = np.full(F, W * W, np.int64)
        flat = 0
        for t, c in zip(types, channels):
            d1, d2 = 2 * t[0] + 1, 2 * t[1] + 1
            for k in range(c):
                if k < len(groups.get(t, [])):
                    r0, c0 = groups[t][k]
                    rows = (r0 + np.arange(d1))[:, None] * W + (c0 + np.arange(d2))[None, :]
                    src = flat + k * d1 * d2 + np.arange(d1 * d2).reshape(d1, d2)
                    gather[rows.ravel()] = src.ravel()
                    scatter[src.ravel()] = rows.ravel()
            flat += c * d1 * d2
        return gather, scatter

    gathers, scatters, masks = [], [], []
    kinds = [(a, b) for a in range(S) for b in range(S)] + [(a, a) for a in range(S)]
    for a, b in kinds:
        g, s = tables(pairs[(a, b)])
        m = np.zeros((W, W), bool)
        m[: basis.n_orbitals(elements[a]), : basis.n_orbitals(elements[b])] = True
        assert np.array_equal(g.reshape(W, W) < F, m), "shell pairs must tile the block exactly"
        gathers.append(g)
        scatters.append(s)
        masks.append(m)
    return BlockLayout(elements, W, tuple(types), tuple(channels), irreps,
                       np.stack(gathers), np.stack(scatters), np.stack(masks))


def pair_kind(species_i, species_j, is_self, n_species: int):
    """(E,) int32 pair kind of each edge (see :class:`BlockLayout`)."""
    return jnp.where(is_self, n_species * n_species + species_i, species_i * n_species + species_j).astype(jnp.int32)


def entry_mask(layout: BlockLayout, species_i, species_j):
    """(E, W, W) bool: the real entries of each edge's padded block (for the loss)."""
    S = len(layout.elements)
    return jnp.asarray(layout.entry_mask)[species_i * S + species_j]


def species_pair_masks(basis: OrbitalBasis) -> dict[tuple[str, str], np.ndarray]:
    """Per ordered element pair, the (W, W) mask of real entries of its padded block."""
    layout = build_layout(basis)
    S = len(layout.elements)
    return {(ea, eb): layout.entry_mask[a * S + b] for a, ea in enumerate(layout.elements)
            for b, eb in enumerate(layout.elements)}


def irreps_to_blocks(x, kind, layout: BlockLayout):
    """(E, layout.irreps.dim) padded irreps -> (E, W, W) blocks; unused channels are ignored.

    Args:
        x: (E, dim) array in the layout of ``layout.irreps``.
        kind: (E,) int pair kinds (:func:`pair_kind`).
    """
    E = x.shape[0]
    parts = []
    for (l1, l2), c, chunks, _ in layout.type_slices():
        feats = jnp.concatenate(
            [x[:, off: off + c * (2 * L + 1)].reshape(E, c, 2 * L + 1) for off, L in chunks], axis=-1)
        parts.append(irreps_to_block(feats, l1, l2).reshape(E, -1))  # (E, c d1 d2)
    flat = jnp.concatenate(parts + [jnp.zeros((E, 1), x.dtype)], axis=1)  # (E, F + 1)
    idx = jnp.asarray(layout.gather)[kind]  # (E, W W)
    W = layout.width
    return jnp.take_along_axis(flat, idx, axis=1).reshape(E, W, W)


def blocks_to_irreps(blocks, kind, layout: BlockLayout):
    """(E, W, W) padded blocks -> (E, layout.irreps.dim) irreps (training targets); unused channels 0."""
    E, W = blocks.shape[0], layout.width
    flat = jnp.concatenate([blocks.reshape(E, W * W), jnp.zeros((E, 1), blocks.dtype)], axis=1)
    src = jnp.take_along_axis(flat, jnp.asarray(layout.scatter)[kind], axis=1)  # (E, F)
    out = []
    for (l1, l2), c, chunks, f0 in layout.type_slices():
        d1, d2 = 2 * l1 + 1, 2 * l2 + 1
        feats = block_to_irreps(src[:, f0: f0 + c * d1 * d2].reshape(E, c, d1, d2), l1, l2)  # (E, c, dim)
        start = 0
        for _, L in chunks:
            out.append(feats[:, :, start: start + 2 * L + 1].reshape(E, -1))
            start += 2 * L + 1
    return jnp.concatenate(out, axis=1)
