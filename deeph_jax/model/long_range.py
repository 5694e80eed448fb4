"""The long-range electrostatic channel of HamiltonianNet (``ModelConfig.long_range_alpha``).

Learned charges q_e per element make a potential phi_i = sum_e q_e Psi_i^e at each atom, with Psi the
per-element long-range (erf) Ewald potentials the graph carries (:mod:`deeph_jax.graph.long_range`; neutral
by construction, summed over the whole structure in its own cell). An electron's energy moves by -phi, so

    H_ii(0) += -phi_i diag(w_{e_i, shell(o)})              on-site, a learned weight per element and shell;
    H_ij(R) += -w_hop (phi_i + phi_j) / 2 S_ij(R)          other blocks, with the network's own S,

the self-consistent-charge form of DeePTB and HamGNN-LR. phi is a scalar, so the shift is equivariant, and
(phi_i + phi_j) / 2 is symmetric in i, j, so H stays exactly Hermitian. The local network keeps the short-range
(erfc) part; trained on small cells it cannot learn this far field, whose value there is fixed by the images.
"""

from __future__ import annotations

import flax.linen as nn
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


class LongRangeShift(nn.Module):
    """Adds the electrostatic shift to predicted H blocks (E, W, W); see the module docstring."""

    basis: OrbitalBasis

    @nn.compact
    def __call__(self, h, s, node_potentials, species, senders, receivers, is_self, edge_mask):
        """h, s: (E, W, W) H (eV) and S blocks; node_potentials: (N, n_elements) eV per unit charge;
        species (N,), senders/receivers (E,), is_self/edge_mask (E,) bool. Returns h shifted and the
        potentials phi (N,) in volts."""
        shell, real = orbital_shells(self.basis)
        n_elements, n_shells = shell.shape[0], int(shell.max()) + 1
        charges = self.param("charges", nn.initializers.zeros, (n_elements,))
        shell_weight = self.param("shell_weight", nn.initializers.ones, (n_elements, n_shells))
        hop_weight = self.param("hop_weight", nn.initializers.ones, ())
        phi = node_potentials.astype(h.dtype) @ charges.astype(h.dtype)  # (N,)
        onsite = jnp.take_along_axis(shell_weight, jnp.asarray(shell), axis=1) * jnp.asarray(real)  # (n_el, W)
        diag = onsite[species[senders]] * phi[senders][:, None]  # (E, W)
        onsite_shift = diag[:, :, None] * jnp.eye(h.shape[-1], dtype=h.dtype)[None]
        mean_phi = 0.5 * (phi[senders] + phi[receivers])
        hop_shift = hop_weight * mean_phi[:, None, None] * s
        shift = jnp.where(is_self[:, None, None], onsite_shift, hop_shift)
        return h - jnp.where(edge_mask[:, None, None], shift, 0.0), phi
