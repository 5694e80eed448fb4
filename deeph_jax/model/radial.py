"""Edge geometry: direction harmonics and radial basis, safe on zero-length (self) edges."""

from __future__ import annotations

from typing import NamedTuple

import e3nn_jax as e3nn
import jax.numpy as jnp

from deeph_jax.model.wigner import to_e3nn_frame


class EdgeGeometry(NamedTuple):
    """Per-edge inputs of every layer (E = edges).

    Fields:
        is_self: (E,) bool, zero vector: on-site (i, i, 0) edges and padding edges.
        lengths: (E,) Angstrom, 0 on self edges.
        sh: IrrepsArray (E, sh_irreps.dim), Y_l of the direction in the project's order,
            component-normalized; l > 0 parts are zero on self edges (no direction).
        radial: (E, num_radial) Bessel basis times a smooth envelope; zero on self edges
            and beyond the cutoff.
        message_weight: (E,) weight of the edge's message to its sender: 1 without a message
            cutoff, else a smooth envelope of length / message_cutoff, exactly 0 beyond it
            (1 on self edges, which carry the on-site edge's own features).
    """

    is_self: jnp.ndarray
    lengths: jnp.ndarray
    sh: e3nn.IrrepsArray
    radial: jnp.ndarray
    message_weight: jnp.ndarray


def edge_geometry(vectors, lmax: int, num_radial: int, cutoff: float,
                  message_cutoff: float | None = None) -> EdgeGeometry:
    """Geometry of edges from (E, 3) Cartesian vectors pos_j + R @ cell - pos_i.

    The vectors are permuted to (y, z, x) here, once, so e3nn-jax's harmonics are the
    project's Y_l. Self edges get a dummy unit vector before any sqrt or normalization and
    are masked after, so neither values nor gradients see 0 / 0.
    """
    v = to_e3nn_frame(vectors)
    r2 = jnp.sum(v * v, axis=-1)
    is_self = r2 == 0.0
    dummy = jnp.zeros_like(v).at[:, 1].set(1.0)
    v_safe = jnp.where(is_self[:, None], dummy, v)
    lengths = jnp.where(is_self, 0.0, jnp.sqrt(jnp.where(is_self, 1.0, r2)))
    sh = e3nn.spherical_harmonics(e3nn.Irreps.spherical_harmonics(lmax), e3nn.IrrepsArray("1o", v_safe),
                                  normalize=True, normalization="component")
    keep = jnp.where(is_self[:, None], (jnp.arange(sh.irreps.dim) == 0).astype(v.dtype), 1.0)
    sh = e3nn.IrrepsArray(sh.irreps, sh.array * keep)
    r_safe = jnp.where(is_self, 0.5 * cutoff, lengths)
    basis = e3nn.bessel(r_safe, num_radial, cutoff) * e3nn.poly_envelope(5, 2, cutoff)(r_safe)[:, None]
    radial = jnp.where((is_self | (lengths >= cutoff))[:, None], 0.0, basis)
    if message_cutoff is None:
        weight = jnp.ones_like(lengths)
    else:
        r_msg = jnp.minimum(lengths, message_cutoff)
        weight = jnp.where(lengths < message_cutoff, e3nn.poly_envelope(5, 2, message_cutoff)(r_msg), 0.0)
    return EdgeGeometry(is_self, lengths, sh, radial, weight)
