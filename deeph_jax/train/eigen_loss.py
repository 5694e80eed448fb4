"""Eigenvalue loss: the bands of predicted H against those of the DFT H, both with the DFT overlap.

Block errors weigh every entry alike, but users judge a model by its bands near the Fermi level, where a few
meV of a common on-site offset move every level while hardly changing the block MAE. This term compares the
generalized eigenvalues of (H(k), S(k)) at a few generic k-points for each structure of the batch:

    H(k)_{ia, jb} = sum_e exp(i k . d_e) H_e[a, b]      over the graph's edges e = (i, j, R), d_e their vectors,

the atomic-position gauge: a unitary change of basis from the lattice gauge, so the same eigenvalues, and it
needs neither cells nor lattice vectors (molecules: the phases cancel, k plays no role). Each graph's matrices
are built densely at ``max_atoms`` atoms (graphs with more are skipped), with padded orbitals set to a level
far above the window. The generalized eigenvalues with the DFT S(k) (on the host: :func:`generalized_levels`)
whose DFT value lies in ``window`` (eV, absolute) are matched in order. DeePTB and HamGNN train on bands the
same way; here it is a fine-tuning term next to the block losses.
"""

from __future__ import annotations

import functools
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
    (eV, absolute), at the first ``n_kpoints`` of :data:`EIGEN_KPOINTS`."""

    max_atoms: int
    window: tuple[float, float]
    n_kpoints: int = len(EIGEN_KPOINTS)


def graph_bloch_matrices(blocks, batch, real_orbitals, max_atoms: int, k, pad: float):
    """Dense Bloch matrices of each graph at Cartesian ``k`` (3,) 1/A, D = max_atoms * W, as their real and
    imaginary parts: (G, D, D) each (real arithmetic only; see :func:`generalized_levels`).

    ``blocks`` (E, W, W) padded edge blocks, real, or complex spinful ones (E, 2W', 2W'), W = 2W' (each atom's
    up orbitals, then its down ones: a reordering of the basis, so the same levels); ``real_orbitals``
    (n_species, W) bool. Padded orbitals get ``pad`` on the diagonal. Returns (re, im), (G, D) bool real
    orbitals, and (G,) bool graphs that fit in ``max_atoms``."""
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
    angle = batch.vectors @ jnp.asarray(k, batch.vectors.dtype)
    blocks = jnp.where(keep[:, None, None], blocks, 0.0)
    b_re, b_im = (blocks.real, blocks.imag) if jnp.iscomplexobj(blocks) else (blocks, jnp.zeros_like(blocks))
    a = jnp.arange(width)
    shape = blocks.shape
    rows = jnp.broadcast_to(jnp.clip(i, 0, max_atoms - 1)[:, None, None] * width + a[None, :, None], shape)
    cols = jnp.broadcast_to(jnp.clip(j, 0, max_atoms - 1)[:, None, None] * width + a[None, None, :], shape)
    graph = jnp.broadcast_to(g[:, None, None], shape)
    dim = max_atoms * width
    zeros = jnp.zeros((n_graphs, dim, dim), b_re.dtype)
    cos, sin = jnp.cos(angle)[:, None, None], jnp.sin(angle)[:, None, None]
    re = zeros.at[graph, rows, cols].add(cos * b_re - sin * b_im)
    im = zeros.at[graph, rows, cols].add(sin * b_re + cos * b_im)
    # Orbitals that exist: atom slot < the graph's atom count and the orbital within its element's.
    slot = first[:, None] + jnp.arange(max_atoms)[None, :]  # (G, max_atoms) node index of each slot
    inside = (jnp.arange(max_atoms)[None, :] < count[:, None]) & fits[:, None]  # graphs too large: all padding
    species = batch.species[jnp.clip(slot, 0, n_nodes - 1)]
    real = (real_orbitals[species] & inside[:, :, None]).reshape(n_graphs, dim)
    re = re + jnp.where(real, 0.0, pad)[:, :, None] * jnp.eye(dim, dtype=re.dtype)
    return (re, im), real, fits


def _host_eigh(h_re, h_im, s_re, s_im, dtype, vectors: bool = True):
    """Eigenvalues (G, D) and S-orthonormal eigenvectors (G, D, D) as real and imaginary parts, by LAPACK on
    the host, one graph at a time; ``vectors=False``: the eigenvalues alone (a third of the work).

    A matrix that is all padding (a padded graph, or one over ``max_atoms``: S the identity, H diagonal) is not
    solved: its levels are its diagonal, its eigenvectors the unit vectors."""
    import scipy.linalg

    h = np.asarray(h_re, np.float64) + 1j * np.asarray(h_im, np.float64)
    s = np.asarray(s_re, np.float64) + 1j * np.asarray(s_im, np.float64)
    w = np.empty(h.shape[:-1])
    v = np.zeros(h.shape if vectors else (0,), np.complex128)
    eye = np.eye(h.shape[-1])
    for index in np.ndindex(h.shape[:-2]):
        if np.array_equal(s[index], eye) and not np.count_nonzero(h[index] - np.diag(np.diagonal(h[index]))):
            order = np.argsort(h[index].real.diagonal(), kind="stable")
            w[index] = h[index].real.diagonal()[order]
            if vectors:
                v[index] = eye[:, order]
        elif vectors:
            w[index], v[index] = scipy.linalg.eigh(h[index], s[index])
        else:
            w[index] = scipy.linalg.eigh(h[index], s[index], eigvals_only=True)
    if not vectors:
        return w.astype(dtype)
    return w.astype(dtype), v.real.astype(dtype), v.imag.astype(dtype)


def reference_levels(h_re, h_im, s_re, s_im):
    """Eigenvalues (..., D), ascending, of the pencil (H, S) of data (no gradient): the DFT side of the loss,
    without the eigenvectors the derivative needs."""
    host = functools.partial(_host_eigh, dtype=np.dtype(h_re.dtype), vectors=False)
    return jax.pure_callback(host, jax.ShapeDtypeStruct(h_re.shape[:-1], h_re.dtype), h_re, h_im, s_re, s_im,
                             vmap_method="sequential")


@jax.custom_vjp
def generalized_levels(h_re, h_im, s_re, s_im):
    """Eigenvalues (..., D), ascending, of the Hermitian pencil (H, S), H = h_re + i h_im, S = s_re + i s_im
    (..., D, D). Differentiable in H only (S is data): d lambda_n = v_n^H dH v_n.

    The eigensolver runs on the host (scipy, via ``jax.pure_callback``): XLA's CPU runtime (jaxlib 0.10) deadlocked
    on training steps that held its own Cholesky, triangular solves and eigh next to the network, at random
    steps, with every thread waiting."""
    return _levels_and_vectors(h_re, h_im, s_re, s_im)[0]


def _levels_and_vectors(h_re, h_im, s_re, s_im):
    shapes = (jax.ShapeDtypeStruct(h_re.shape[:-1], h_re.dtype), jax.ShapeDtypeStruct(h_re.shape, h_re.dtype),
              jax.ShapeDtypeStruct(h_re.shape, h_re.dtype))
    host = functools.partial(_host_eigh, dtype=np.dtype(h_re.dtype))
    return jax.pure_callback(host, shapes, h_re, h_im, s_re, s_im, vmap_method="sequential")


def _levels_fwd(h_re, h_im, s_re, s_im):
    w, v_re, v_im = _levels_and_vectors(h_re, h_im, s_re, s_im)
    return w, (v_re, v_im, s_re, s_im)


def _levels_bwd(res, g):
    """For a Hermitian perturbation dH = dA + i dB, d lambda_n = Re(v_n^H dA v_n) - Im(v_n^H dB v_n), so
    dL/dA = Re(sum_n g_n conj(v_n) v_n^T) and dL/dB = -Im(sum_n g_n conj(v_n) v_n^T)."""
    v_re, v_im, s_re, s_im = res
    gv_re, gv_im = v_re * g[..., None, :], v_im * g[..., None, :]  # columns v_n scaled by g_n
    # P = sum_n g_n conj(v_n) v_n^T = conj(V) diag(g) V^T, entry (i, j) = sum_n g_n conj(V_in) V_jn.
    p_re = gv_re @ jnp.swapaxes(v_re, -1, -2) + gv_im @ jnp.swapaxes(v_im, -1, -2)
    p_im = gv_re @ jnp.swapaxes(v_im, -1, -2) - gv_im @ jnp.swapaxes(v_re, -1, -2)
    return p_re, -p_im, jnp.zeros_like(s_re), jnp.zeros_like(s_im)


generalized_levels.defvjp(_levels_fwd, _levels_bwd)


def spin_doubled(s_blocks):
    """(E, 2W, 2W) blocks diag(S, S) of spinless (E, W, W) overlap blocks: the overlap of a spinful basis."""
    zero = jnp.zeros_like(s_blocks)
    return jnp.concatenate([jnp.concatenate([s_blocks, zero], axis=2), jnp.concatenate([zero, s_blocks], axis=2)],
                           axis=1)


def eigen_errors(h_pred, batch, layout: BlockLayout, spec: EigenSpec):
    """Sums of squared and absolute errors (eV^2, eV) and the count of the windowed eigenvalues of the
    predicted H against the DFT H (``batch.h_blocks``), both with the DFT S (``batch.s_blocks``).

    Spinful H (complex (E, 2W, 2W), spin-orbit or collinear): the levels of the whole spinful H, every Kramers
    pair or spin channel included, with S doubled over spin."""
    n_species = len(layout.elements)
    onsite_kinds = n_species * n_species + np.arange(n_species)
    real_orbitals = jnp.asarray(np.diagonal(layout.entry_mask[onsite_kinds], axis1=1, axis2=2))
    s_blocks = batch.s_blocks
    if jnp.iscomplexobj(batch.h_blocks):
        real_orbitals = jnp.concatenate([real_orbitals, real_orbitals], axis=1)
        s_blocks = spin_doubled(s_blocks)
    lo, hi = spec.window
    sse = sae = count = 0.0
    for k in EIGEN_KPOINTS[:spec.n_kpoints]:
        def bloch(blocks, pad):
            return graph_bloch_matrices(blocks, batch, real_orbitals, spec.max_atoms, k, pad)

        s, _, fits = bloch(s_blocks, 1.0)
        s = jax.lax.stop_gradient(s)
        e_dft = reference_levels(*jax.lax.stop_gradient(bloch(batch.h_blocks, PAD_LEVEL)[0]), *s)
        e = generalized_levels(*bloch(h_pred, PAD_LEVEL)[0], *s)
        w = ((e_dft >= lo) & (e_dft <= hi) & fits[:, None]).astype(e.dtype)
        d = (e - e_dft) * w
        sse = sse + jnp.sum(d * d)
        sae = sae + jnp.sum(jnp.abs(d))
        count = count + jnp.sum(w)
    return {"sse_eig": sse, "sae_eig": sae, "count_eig": count}


__all__ = ["EIGEN_KPOINTS", "EigenSpec", "eigen_errors", "generalized_levels", "graph_bloch_matrices",
           "reference_levels"]
