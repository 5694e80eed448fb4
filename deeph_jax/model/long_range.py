"""The long-range electrostatic channel of HamiltonianNet (``ModelConfig.long_range_alpha``).

Learned charges q_e per element make a potential phi_i = sum_e q_e Psi_i^e at each atom, with Psi the
per-element long-range (erf) Ewald potentials the graph carries (:mod:`deeph_jax.graph.long_range`; neutral
by construction, summed over the whole structure in its own cell). An electron's energy moves by -phi, so

    H_ii(0) += -phi_i diag(w_{e_i, shell(o)})              on-site, a learned weight per element and shell;
    H_ij(R) += -w_hop (phi_i + phi_j) / 2 S_ij(R)          other blocks, with the network's own S,

the self-consistent-charge form of DeePTB and HamGNN-LR. phi is a scalar, so the shift is equivariant, and
(phi_i + phi_j) / 2 is symmetric in i, j, so H stays exactly Hermitian. The local network keeps the short-range
(erfc) part; trained on small cells it cannot learn this far field, whose value there is fixed by the images.

With ``ModelConfig.long_range_charges`` each atom also carries a charge transfer dq_i that :class:`ChargeNet`
reads from its neighbours (a stretched B-N bond moves charge: one charge per element cannot follow it). Its
potential K dq adds to phi. K is the same long-range kernel; in training the batch carries it as a dense
block-diagonal matrix (small cells), at prediction the potential of the whole structure's dq is computed once
beforehand, by particle-mesh Ewald for large ones (:func:`deeph_jax.predict.charges.attach_charge_potentials`).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from deeph_jax.io.basis import OrbitalBasis
from deeph_jax.model.irreps_blocks import model_elements


def orbital_shells(basis: OrbitalBasis) -> tuple[np.ndarray, np.ndarray]:
    """Static maps for padded blocks: (n_elements, W) shell index of each orbital, and (n_elements, W) bool
    for orbitals that exist (W = the widest element's orbital count)."""
    elements = model_elements(basis)
    width = max(basis.n_orbitals(e) for e in elements)
    shell = np.zeros((len(elements), width), np.int32)
    real = np.zeros((len(elements), width), bool)
    for k, e in enumerate(elements):
        per = np.repeat(np.arange(len(basis.shells[e])), [2 * l + 1 for l in basis.shells[e]])
        shell[k, : len(per)] = per
        real[k, : len(per)] = True
    return shell, real


# Angstrom: the innermost Gaussian of ChargeNet's distance basis (no bond is shorter).
CHARGE_BASIS_START = 0.5


def neighbour_weights(lengths, is_self, edge_mask, cutoff: float):
    """(E,) smooth weight (1 - (r / cutoff)^2)^2 of each edge inside ``cutoff`` (Angstrom); 0 beyond it, on
    self edges and on padding."""
    x = jnp.clip(lengths / cutoff, 0.0, 1.0)
    return jnp.where(is_self | ~edge_mask, 0.0, (1.0 - x**2) ** 2)


def neutral_per_graph(values, node_graph, node_mask, n_graphs: int):
    """(N,) ``values`` minus their mean over each graph's real nodes (0 on padding nodes)."""
    mask = node_mask.astype(values.dtype)
    total = jax.ops.segment_sum(values * mask, node_graph, n_graphs)
    count = jax.ops.segment_sum(mask, node_graph, n_graphs)
    return (values - (total / jnp.maximum(count, 1.0))[node_graph]) * mask


class ChargeNet(nn.Module):
    """Charge transfer dq_i (units of e, > 0 = fewer electrons) from atom i's neighbours within ``cutoff``.

    Features: the species of i and, per neighbour species, the sum over neighbours j of Gaussians of r_ij
    (``num_basis`` of them from CHARGE_BASIS_START to ``cutoff``) times a smooth weight that vanishes at the
    cutoff; an MLP maps them to dq_i. Invariant by construction. The last layer starts at zero, so a model
    fine-tuned from one without this channel starts from that model's predictions.
    """

    n_elements: int
    cutoff: float
    num_basis: int = 8
    hidden: int = 32

    @nn.compact
    def __call__(self, species, lengths, senders, receivers, weights):
        """species (N,) int; lengths, weights (E,) Angstrom and :func:`neighbour_weights`; senders,
        receivers (E,) int. Returns dq (N,), not yet neutral."""
        n = species.shape[0]
        dtype = lengths.dtype
        centres = jnp.linspace(CHARGE_BASIS_START, self.cutoff, self.num_basis, dtype=dtype)
        width = (self.cutoff - CHARGE_BASIS_START) / (self.num_basis - 1)
        gauss = jnp.exp(-(((lengths[:, None] - centres) / width) ** 2)) * weights[:, None]  # (E, B)
        onehot = jax.nn.one_hot(species, self.n_elements, dtype=dtype)  # (N, S)
        pair = (gauss[:, :, None] * onehot[receivers][:, None, :]).reshape(gauss.shape[0], -1)  # (E, B * S)
        env = jax.ops.segment_sum(pair, senders, n)  # (N, B * S)
        x = jnp.concatenate([onehot, env], axis=-1)
        x = jax.nn.silu(nn.Dense(self.hidden, name="dense_0")(x))
        x = jax.nn.silu(nn.Dense(self.hidden, name="dense_1")(x))
        return nn.Dense(1, kernel_init=nn.initializers.zeros, name="out")(x)[:, 0]


def charge_net_for(config, n_elements: int, name: str | None = None) -> ChargeNet:
    """The :class:`ChargeNet` of a :class:`~deeph_jax.model.config.ModelConfig` with ``long_range_charges``: its
    cutoff is the message cutoff (the whole cutoff without one). One definition for the network and for the
    prediction's first pass over the whole structure."""
    return ChargeNet(n_elements, config.message_cutoff or config.cutoff, config.num_radial, config.radial_hidden,
                     name=name)


class LongRangeShift(nn.Module):
    """Adds the electrostatic shift to predicted H blocks (E, W, W); see the module docstring."""

    basis: OrbitalBasis

    @nn.compact
    def __call__(self, h, s, node_potentials, species, senders, receivers, is_self, edge_mask, extra_phi=None):
        """h, s: (E, W, W) H (eV) and S blocks; node_potentials: (N, n_elements) eV per unit charge;
        species (N,), senders/receivers (E,), is_self/edge_mask (E,) bool; extra_phi (N,) volts or None: the
        potential of the environment-dependent charges. Returns h shifted and the potentials phi (N,) in volts."""
        shell, real = orbital_shells(self.basis)
        n_elements, n_shells = shell.shape[0], int(shell.max()) + 1
        charges = self.param("charges", nn.initializers.zeros, (n_elements,))
        shell_weight = self.param("shell_weight", nn.initializers.ones, (n_elements, n_shells))
        hop_weight = self.param("hop_weight", nn.initializers.ones, ())
        phi = node_potentials.astype(h.dtype) @ charges.astype(h.dtype)  # (N,)
        if extra_phi is not None:
            phi = phi + extra_phi.astype(h.dtype)
        onsite = jnp.take_along_axis(shell_weight, jnp.asarray(shell), axis=1) * jnp.asarray(real)  # (n_el, W)
        diag = onsite[species[senders]] * phi[senders][:, None]  # (E, W)
        onsite_shift = diag[:, :, None] * jnp.eye(h.shape[-1], dtype=h.dtype)[None]
        mean_phi = 0.5 * (phi[senders] + phi[receivers])
        hop_shift = hop_weight * mean_phi[:, None, None] * s
        shift = jnp.where(is_self[:, None, None], onsite_shift, hop_shift)
        return h - jnp.where(edge_mask[:, None, None], shift, 0.0), phi
