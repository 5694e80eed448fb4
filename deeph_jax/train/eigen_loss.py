"""Eigenvalue loss: the bands of predicted H against those of the DFT H, both with the DFT overlap.

Block errors weigh every entry alike, but users judge a model by its bands near the Fermi level, where a few
meV of a common on-site offset move every level while hardly changing the block MAE. This term compares the
generalized eigenvalues of (H(k), S(k)) at a few generic k-points for each structure of the batch:

    H(k)_{ia, jb} = sum_e exp(i k . d_e) H_e[a, b]      over the graph's edges e = (i, j, R), d_e their vectors,

the atomic-position gauge: a unitary change of basis from the lattice gauge, so the same eigenvalues, and it
needs neither cells nor lattice vectors (molecules: the phases cancel, k plays no role). Each graph's matrices
are built densely at ``max_atoms`` atoms (graphs with more are skipped), with padded orbitals set to a level
far above the window; the eigenvalues come from the Cholesky factor of the DFT S(k), and only those whose
DFT value lies in ``window`` (eV, absolute) count, matched in order. DeePTB and HamGNN train on bands the
same way; here it is a fine-tuning term next to the block losses.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from deeph_jax.model.irreps_blocks import BlockLayout

# 1/A, Cartesian: generic points (no symmetry line of a hexagonal or cubic cell; rattled cells have no exact
# degeneracies there, whose eigenvalue derivatives would be ill defined).
EIGEN_KPOINTS = np.array([[0.311, 0.173, 0.071], [-0.229, 0.407, -0.053]])
# eV on the diagonal of padded orbitals (atoms a graph lacks, orbitals an element lacks): far above any window.
PAD_LEVEL = 1.0e3


class EigenSpec(NamedTuple):
    """What the eigenvalue loss compares: graphs of up to ``max_atoms`` atoms, DFT eigenvalues in ``window``
    (eV, absolute), at :data:`EIGEN_KPOINTS`."""

    max_atoms: int
    window: tuple[float, float]


def graph_bloch_matrices(blocks, batch, real_orbitals, max_atoms: int, k, pad: float):
    """(G, D, D) complex dense Bloch matrices of each graph at Cartesian ``k`` (3,) 1/A, D = max_atoms * W.

    ``blocks`` (E, W, W) padded edge blocks; ``real_orbitals`` (n_species, W) bool. Padded orbitals get ``pad``
    on the diagonal. Returns the matrices and (G,) bool: graphs that fit in ``max_atoms``."""
    n_graphs, width = batch.graph_mask.shape[0], blocks.shape[-1]
    n_nodes = batch.species.shape[0]
    node_index = jnp.arange(n_nodes)
    first = jax.ops.segment_min(jnp.where(batch.node_mask, node_index, n_nodes), batch.node_graph, n_graphs)
    count = jax.ops.segment_sum(batch.node_mask.astype(jnp.int32), batch.node_graph, n_graphs)
    fits = (count <= max_atoms) & batch.graph_mask
    g = batch.edge_graph
    i = batch.senders - first[g]
    j = batch.receivers - first[g]
    keep = batch.edge_mask & fits[g] & (i < max_atoms) & (j < max_atoms)
    phase = jnp.exp(1j * (batch.vectors @ jnp.asarray(k, batch.vectors.dtype)))
    values = jnp.where(keep[:, None, None], phase[:, None, None] * blocks, 0.0)
    a = jnp.arange(width)
    shape = values.shape
    rows = jnp.broadcast_to(jnp.clip(i, 0, max_atoms - 1)[:, None, None] * width + a[None, :, None], shape)
    cols = jnp.broadcast_to(jnp.clip(j, 0, max_atoms - 1)[:, None, None] * width + a[None, None, :], shape)
    dim = max_atoms * width
    out = jnp.zeros((n_graphs, dim, dim), values.dtype)
    out = out.at[jnp.broadcast_to(g[:, None, None], shape), rows, cols].add(values)
    # Orbitals that exist: atom slot < the graph's atom count and the orbital within its element's.
    slot = first[:, None] + jnp.arange(max_atoms)[None, :]  # (G, max_atoms) node index of each slot
    inside = jnp.arange(max_atoms)[None, :] < count[:, None]
    species = batch.species[jnp.clip(slot, 0, n_nodes - 1)]
    real = (real_orbitals[species] & inside[:, :, None]).reshape(n_graphs, dim)
    return out + jnp.where(real, 0.0, pad)[:, :, None] * jnp.eye(dim, dtype=out.real.dtype), real, fits


def eigen_errors(h_pred, batch, layout: BlockLayout, spec: EigenSpec):
    """Sums of squared and absolute errors (eV^2, eV) and the count of the windowed eigenvalues of the
    predicted H against the DFT H (``batch.h_blocks``), both with the DFT S (``batch.s_blocks``)."""
    n_species = len(layout.elements)
    onsite_kinds = n_species * n_species + np.arange(n_species)
    real_orbitals = jnp.asarray(np.diagonal(layout.entry_mask[onsite_kinds], axis1=1, axis2=2))
    lo, hi = spec.window
    sse = sae = count = 0.0
    for k in EIGEN_KPOINTS:
        def bloch(blocks, pad):
            return graph_bloch_matrices(blocks, batch, real_orbitals, spec.max_atoms, k, pad)

        s, real, fits = bloch(batch.s_blocks, 1.0)
        h_dft, _, _ = bloch(batch.h_blocks, PAD_LEVEL)
        h, _, _ = bloch(h_pred, PAD_LEVEL)
        chol = jnp.linalg.cholesky(s)

        def levels(m):
            x = jax.scipy.linalg.solve_triangular(chol, m, lower=True)
            x = jax.scipy.linalg.solve_triangular(chol, jnp.conj(jnp.swapaxes(x, -1, -2)), lower=True)
            return jnp.linalg.eigvalsh(0.5 * (x + jnp.conj(jnp.swapaxes(x, -1, -2))))

        e_dft = jax.lax.stop_gradient(levels(h_dft))
        e = levels(h)
        w = ((e_dft >= lo) & (e_dft <= hi) & fits[:, None]).astype(e.dtype)
        d = (e - e_dft) * w
        sse = sse + jnp.sum(d * d)
        sae = sae + jnp.sum(jnp.abs(d))
        count = count + jnp.sum(w)
    return {"sse_eig": sse, "sae_eig": sae, "count_eig": count}


__all__ = ["EIGEN_KPOINTS", "EigenSpec", "eigen_errors", "graph_bloch_matrices"]
