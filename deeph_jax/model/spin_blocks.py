"""Spinful blocks: spin-orbit parts from irreps, and the padded spin layouts of H.

A spinful block H_ij(R) is (2a, 2b), ``[[uu, ud], [du, dd]]`` (each quarter in the spinless
orbital order, :mod:`deeph_jax.io.blocks`): a (2 x 2) spin matrix of orbital blocks, i.e. the
Kronecker product ``kron(spin, orbital)``. With spin-orbit coupling (SOC) and time reversal it is

    H_ij = 1 x H0 + i sum_a sigma_a x Ha,        a = x, y, z (Cartesian),
    [[uu, ud], [du, dd]] = [[H0 + i Hz, Hy + i Hx], [-Hy + i Hx, H0 - i Hz]],

H0 and Ha real orbital blocks. A rotation Q acts on both sides with kron(U(Q), D_i(Q)) (U the
SU(2) matrix of Q's proper part); since U sigma_a U^dagger = sum_b Q_ba sigma_b, H0 is an ordinary
block and (Hx, Hy, Hz) a Cartesian vector of blocks. Inversion acts on the orbitals only, so that
vector is a pseudovector: a (l1, l2) shell pair's Ha transforms as l1 x l2 x 1e, which is (per L of
l1 x l2) L' = |L - 1| .. L + 1, all with parity (-1)^(l1 + l2). That is how DeepH-E3 builds SOC output
from ordinary irreps.

    Ha[m1, m2, a] = sum_{L, L'} sum_{M, k, M'} C(l1, l2, L)[m1, m2, M] C(L, 1, L')[M, k, M'] x_{L, L'}[M']

with e3nn-jax's real Clebsch-Gordan coefficients scaled by sqrt(2L + 1) and sqrt(2L' + 1) (an
orthogonal map, as in :mod:`deeph_jax.model.irreps_blocks`). The l = 1 index k is in the model
frame, the project's m = -1, 0, 1 order = (y, z, x) (:mod:`deeph_jax.model.wigner`), so Cartesian
x, y, z are k = 2, 0, 1 (``CARTESIAN_FROM_MODEL``).

Hermiticity H_ji(-R) = H_ij(R)^dagger holds iff H0_ji = H0_ij^T and Ha_ji = -Ha_ij^T; on-site blocks
have H0 symmetric and Ha antisymmetric. Time reversal T = i sigma_y K maps the form above to itself
when H0 and Ha are real, so the eigenvalues come in Kramers pairs.

Collinear magnetism: H-up and H-down are spinless blocks; stored spinful with ud = du = 0
(:func:`collinear_blocks`, the one place that fixes this layout).

Padded spinful blocks are (2W, 2W): quarter (s, t) at rows s W .. s W + a, columns t W .. t W + b
(:func:`deeph_jax.graph.targets.spin_rows`), the spinless (W, W) padding applied to each quarter.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import e3nn_jax as e3nn
import jax.numpy as jnp
import numpy as np
from jax import lax

from deeph_jax.graph.targets import spin_rows
from deeph_jax.model.irreps_blocks import BlockLayout
CARTESIAN_FROM_MODEL = np.array([2, 0, 1])  # model-frame l = 1 index of Cartesian x, y, z


# -- irreps <-> vector blocks (the spin-orbit parts Ha) ------------------------------------------------
def vector_pair_irreps(l1: int, l2: int) -> e3nn.Irreps:
    """Irreps of a (l1, l2) x 1e block vector: per L of l1 x l2, L' = |L - 1| .. L + 1, parity (-1)^(l1 + l2)."""
    p = (-1) ** (l1 + l2)
    return e3nn.Irreps([(1, (Lp, p)) for L, Lp in _couplings(l1, l2)])


def _couplings(l1: int, l2: int) -> list[tuple[int, int]]:
    return [(L, Lp) for L in range(abs(l1 - l2), l1 + l2 + 1) for Lp in range(abs(L - 1), L + 2)]


@lru_cache(maxsize=None)
def vector_cg_matrix(l1: int, l2: int) -> np.ndarray:
    """(2 l1 + 1, 2 l2 + 1, 3, dim) float64, axis 2 Cartesian (x, y, z); reshaped to (3 d1 d2, dim) it
    is orthogonal (dim = 3 d1 d2)."""
    parts = []
    for L, Lp in _couplings(l1, l2):
        c1 = np.sqrt(2 * L + 1) * np.asarray(e3nn.clebsch_gordan(l1, l2, L), np.float64)  # (d1, d2, 2L+1)
        c2 = np.sqrt(2 * Lp + 1) * np.asarray(e3nn.clebsch_gordan(L, 1, Lp), np.float64)  # (2L+1, 3, 2L'+1)
        parts.append(np.einsum("abM,MkN->abkN", c1, c2))
    return np.concatenate(parts, axis=3)[:, :, CARTESIAN_FROM_MODEL, :]


def irreps_to_vector_block(x, l1: int, l2: int):
    """(..., dim) irreps of one shell pair -> (..., 3, 2 l1 + 1, 2 l2 + 1) Cartesian vector of blocks."""
    return jnp.einsum("...K,abkK->...kab", x, jnp.asarray(vector_cg_matrix(l1, l2), dtype=x.dtype))


def vector_block_to_irreps(block, l1: int, l2: int):
    """(..., 3, 2 l1 + 1, 2 l2 + 1) -> (..., dim); inverse of :func:`irreps_to_vector_block`."""
    return jnp.einsum("...kab,abkK->...K", block, jnp.asarray(vector_cg_matrix(l1, l2), dtype=block.dtype))


def _channel_of_dim(irreps: e3nn.Irreps) -> np.ndarray:
    return np.repeat(np.arange(irreps.num_irreps), [ir.dim for mul, ir in irreps for _ in range(mul)])


@dataclass(frozen=True, eq=False)
class VectorLayout:
    """The padded irreps of the spin-orbit parts Ha over a :class:`BlockLayout`'s shell-pair types
    (same types and channels, same gather tables: each Cartesian component is a padded block).

    ``irreps``: per type, per L, per L': ``channels x L'`` (not simplified).
    """

    block: BlockLayout
    irreps: e3nn.Irreps

    @property
    def n_kinds(self) -> int:
        return self.block.n_kinds

    @property
    def channel_of_dim(self) -> np.ndarray:
        """(irreps.dim,) int: the irrep channel of each component (for a per-channel scale)."""
        return _channel_of_dim(self.irreps)

    @property
    def scalar_dims(self) -> np.ndarray:
        """(n_scalars,) int: the 0e components, the only ones a shift may move (0o would break parity)."""
        return np.nonzero(np.concatenate([np.full(mul * ir.dim, ir.l == 0 and ir.p == 1)
                                          for mul, ir in self.irreps]))[0]

    def type_slices(self):
        """Per type: ((l1, l2), channels, [irreps offset of each (L, L') chunk], flat offset)."""
        out, off = [], 0
        for ((l1, l2), c, _, flat) in self.block.type_slices():
            offsets = []
            for _, Lp in _couplings(l1, l2):
                offsets.append((off, Lp))
                off += c * (2 * Lp + 1)
            out.append(((l1, l2), c, offsets, flat))
        return out


def build_vector_layout(layout: BlockLayout) -> VectorLayout:
    irreps = e3nn.Irreps([(c, (Lp, (-1) ** (l1 + l2)))
                          for (l1, l2), c in zip(layout.types, layout.channels) for _, Lp in _couplings(l1, l2)])
    return VectorLayout(layout, irreps)


def irreps_to_vector_blocks(x, kind, vlayout: VectorLayout):
    """(E, vlayout.irreps.dim) padded irreps -> (E, 3, W, W) Cartesian vector of padded blocks."""
    E, W = x.shape[0], vlayout.block.width
    parts = []
    for (l1, l2), c, chunks, _ in vlayout.type_slices():
        feats = jnp.concatenate([x[:, off: off + c * (2 * Lp + 1)].reshape(E, c, 2 * Lp + 1) for off, Lp in chunks],
                                axis=-1)  # (E, c, dim)
        blocks = irreps_to_vector_block(feats, l1, l2)  # (E, c, 3, d1, d2)
        parts.append(jnp.swapaxes(blocks, 1, 2).reshape(E, 3, -1))  # (E, 3, c d1 d2), flat order of BlockLayout
    flat = jnp.concatenate(parts + [jnp.zeros((E, 3, 1), x.dtype)], axis=2)  # (E, 3, F + 1)
    idx = jnp.asarray(vlayout.block.gather)[kind][:, None, :]  # (E, 1, W W)
    return jnp.take_along_axis(flat, jnp.broadcast_to(idx, (E, 3, W * W)), axis=2).reshape(E, 3, W, W)


def vector_blocks_to_irreps(blocks, kind, vlayout: VectorLayout):
    """(E, 3, W, W) padded vector blocks -> (E, vlayout.irreps.dim) irreps; unused channels 0."""
    E, W = blocks.shape[0], vlayout.block.width
    flat = jnp.concatenate([blocks.reshape(E, 3, W * W), jnp.zeros((E, 3, 1), blocks.dtype)], axis=2)
    idx = jnp.asarray(vlayout.block.scatter)[kind][:, None, :]  # (E, 1, F)
    src = jnp.take_along_axis(flat, jnp.broadcast_to(idx, (E, 3, idx.shape[-1])), axis=2)  # (E, 3, F)
    out = []
    for (l1, l2), c, chunks, f0 in vlayout.type_slices():
        d1, d2 = 2 * l1 + 1, 2 * l2 + 1
        sub = jnp.swapaxes(src[:, :, f0: f0 + c * d1 * d2].reshape(E, 3, c, d1, d2), 1, 2)  # (E, c, 3, d1, d2)
        feats = vector_block_to_irreps(sub, l1, l2)  # (E, c, dim)
        start = 0
        for _, Lp in chunks:
            out.append(feats[:, :, start: start + 2 * Lp + 1].reshape(E, -1))
            start += 2 * Lp + 1
    return jnp.concatenate(out, axis=1)


# -- padded spinful blocks --------------------------------------------------------------------------------
def soc_blocks(h0, ha):
    """H0 (E, W, W) and Ha (E, 3, W, W) real -> (E, 2W, 2W) complex ``[[uu, ud], [du, dd]]`` (module docstring).

    Built from real and imaginary parts without arithmetic on them (``lax.complex``), so exact
    symmetries of H0 and Ha are exact symmetries of the complex block.
    """
    hx, hy, hz = ha[:, 0], ha[:, 1], ha[:, 2]
    uu, dd = lax.complex(h0, hz), lax.complex(h0, -hz)
    ud, du = lax.complex(hy, hx), lax.complex(-hy, hx)
    return jnp.concatenate([jnp.concatenate([uu, ud], axis=2), jnp.concatenate([du, dd], axis=2)], axis=1)


def quarters(blocks):
    """(E, 2W, 2W) -> uu, ud, du, dd, each (E, W, W)."""
    W = blocks.shape[-1] // 2
    return blocks[:, :W, :W], blocks[:, :W, W:], blocks[:, W:, :W], blocks[:, W:, W:]


def soc_parts(blocks):
    """Inverse of :func:`soc_blocks` for any complex (E, 2W, 2W): (H0 (E, W, W), Ha (E, 3, W, W)), the
    projection on real H0, Ha (time-reversal-odd parts, e.g. of magnetic data, are dropped). numpy or jnp."""
    xp = jnp if isinstance(blocks, jnp.ndarray) else np
    uu, ud, du, dd = quarters(blocks)
    h0 = 0.5 * (uu + dd).real
    ha = xp.stack([0.5 * (ud + du).imag, 0.5 * (ud - du).real, 0.5 * (uu - dd).imag], axis=1)
    return h0, ha


def collinear_blocks(h_up, h_down):
    """H-up, H-down (E, W, W) real -> (E, 2W, 2W) complex ``[[up, 0], [0, down]]``."""
    z = jnp.zeros_like(h_up)
    up, down = lax.complex(h_up, z), lax.complex(h_down, z)
    zc = jnp.zeros_like(up)
    return jnp.concatenate([jnp.concatenate([up, zc], axis=2), jnp.concatenate([zc, down], axis=2)], axis=1)


def collinear_parts(blocks):
    """Inverse of :func:`collinear_blocks`: (H-up, H-down), real parts of the diagonal spin quarters."""
    uu, _, _, dd = quarters(blocks)
    return uu.real, dd.real


def spin_quarters_used(spin: str) -> np.ndarray:
    """(2, 2) bool: the spin quarters a model of mode ``spin`` predicts (collinear: uu and dd only)."""
    return np.array([[True, spin != "collinear"], [spin != "collinear", True]])


def spin_entry_mask(mask, spin: str):
    """(E, W, W) orbital entry mask -> (E, 2W, 2W): the entries a ``spin`` model predicts and is scored on."""
    q = spin_quarters_used(spin)
    xp = jnp if isinstance(mask, jnp.ndarray) else np
    row0 = xp.concatenate([mask & bool(q[0, 0]), mask & bool(q[0, 1])], axis=2)
    row1 = xp.concatenate([mask & bool(q[1, 0]), mask & bool(q[1, 1])], axis=2)
    return xp.concatenate([row0, row1], axis=1)


def unpad_block(padded: np.ndarray, a: int, b: int, spinful: bool) -> np.ndarray:
    """The (a, b) block (spinful: (2a, 2b) ``[[uu, ud], [du, dd]]``) out of its padded (W, W) or (2W, 2W)."""
    if not spinful:
        return padded[:a, :b]
    W = padded.shape[-1] // 2
    return padded[np.ix_(spin_rows(a, W), spin_rows(b, W))]
