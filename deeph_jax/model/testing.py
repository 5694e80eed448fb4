"""Reusable model checks (equivariance, relabelling, Hermiticity), shipped with the package so
a new architecture can be tested the same way. numpy in, numpy out; float64 comparisons.

Spinful outputs (E, 2W, 2W) are checked with kron(U(Q), D(Q)) on each side (:func:`~deeph_jax.model.wigner.su2_matrix`).
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from deeph_jax.graph import attach_moments, batch_graphs, build_model_graph
from deeph_jax.io.basis import OrbitalBasis
from deeph_jax.io.structures import Structure
from deeph_jax.model.irreps_blocks import model_elements
from deeph_jax.model.wigner import atom_D, su2_matrix


def shared_dir() -> Path:
    """``../shared`` beside the repository root (datasets and peers live there)."""
    return Path(__file__).resolve().parents[2].parent / "shared"


def moved(structure: Structure, Q: np.ndarray | None = None, t: np.ndarray | None = None) -> Structure:
    """x -> Q x + t for positions, and Q for the cell's lattice vectors (rows)."""
    Q = np.eye(3) if Q is None else np.asarray(Q)
    t = np.zeros(3) if t is None else np.asarray(t)
    return Structure(structure.symbols, structure.positions @ Q.T + t, structure.cell @ Q.T, structure.periodic)


def permuted(structure: Structure, perm: np.ndarray) -> Structure:
    """New atom k is old atom perm[k]."""
    return Structure([structure.symbols[p] for p in perm], structure.positions[perm], structure.cell,
                     structure.periodic)


def graph_of(structure: Structure, cutoff, basis: OrbitalBasis, long_range_alpha: float | None = None,
             moments=None, charges: bool = False):
    """The pair graph a model sees: with the long-range potentials when the model has that channel (and the
    kernel of its environment-dependent charges with ``charges``), and the signed magnetic ``moments``
    (n_atoms,) of a collinear-spin model (None: none)."""
    graph = build_model_graph(structure, cutoff, model_elements(basis), long_range_alpha, charges)
    return attach_moments(graph, moments)


def predict(apply_fn, params, graph, basis: OrbitalBasis, dtype=np.float32, sizes=None):
    """(h, s) numpy (n_edges, W, W) for one graph (padding stripped); ``sizes`` as batch_graphs."""
    batch = batch_graphs([graph], model_elements(basis), dtype=dtype, sizes=sizes)
    h, s = apply_fn(params, jax.tree_util.tree_map(jnp.asarray, batch))
    return np.asarray(h)[: graph.n_edges], np.asarray(s)[: graph.n_edges]


def padded_atom_D(basis: OrbitalBasis, Q: np.ndarray) -> np.ndarray:
    """(n_species, W, W) float64: each element's D(Q) in the top-left corner."""
    elements = model_elements(basis)
    W = max(basis.n_orbitals(e) for e in elements)
    out = np.zeros((len(elements), W, W))
    for k, e in enumerate(elements):
        n = basis.n_orbitals(e)
        out[k, :n, :n] = atom_D(basis, e, Q)
    return out


def equivariance_error(apply_fn, params, structure: Structure, basis: OrbitalBasis, cutoff, Q,
                       dtype=np.float32, sizes=None, long_range_alpha=None, moments=None,
                       charges: bool = False) -> tuple[float, float]:
    """max |H(Qx) - D_i H(x) D_j^T| over edges, H and S together, and max |H(x)|.

    The rotated structure gets its own graph (positions and cell rotated), which must hold the
    same (i, j, R) edges. A spinful H (E, 2W, 2W) is compared with kron(U, D_i) H kron(U, D_j)^dagger,
    U the SU(2) matrix of Q's proper part (inversion acts on the orbitals only).
    """
    g0 = graph_of(structure, cutoff, basis, long_range_alpha, moments, charges)
    g1 = graph_of(moved(structure, Q), cutoff, basis, long_range_alpha, moments, charges)
    if not np.array_equal(g0.atom_pairs, g1.atom_pairs):
        raise AssertionError("rotation changed the pair graph (an edge at the cutoff?)")
    h0, s0 = predict(apply_fn, params, g0, basis, dtype, sizes)
    h1, s1 = predict(apply_fn, params, g1, basis, dtype, sizes)
    D = padded_atom_D(basis, Q)
    index = {e: k for k, e in enumerate(model_elements(basis))}
    sp = np.asarray([index[s] for s in structure.symbols])
    Di, Dj = D[sp[g0.senders]], D[sp[g0.receivers]]
    err = 0.0
    for x0, x1 in ((h0, h1), (s0, s1)):
        Ti, Tj = Di, Dj
        if x0.shape[1] == 2 * Di.shape[1]:  # spinful: spin-major kron(spin, orbital)
            U = su2_matrix(Q)
            Ti, Tj = np.kron(U, Di), np.kron(U, Dj)  # kron over the trailing two axes, edge by edge
        cast = np.complex128 if np.iscomplexobj(x0) else np.float64
        expected = Ti @ x0.astype(cast) @ np.conj(np.swapaxes(Tj, 1, 2))
        err = max(err, float(np.abs(x1 - expected).max()))
    return err, float(np.abs(h0).max())


def relabel_error(apply_fn, params, structure: Structure, basis: OrbitalBasis, cutoff, perm, t,
                  dtype=np.float32, sizes=None, long_range_alpha=None, charges: bool = False) -> float:
    """max |H - H'| between a structure and its translated, permuted copy, edges matched by key."""
    g0 = graph_of(structure, cutoff, basis, long_range_alpha, charges=charges)
    g1 = graph_of(permuted(moved(structure, t=t), perm), cutoff, basis, long_range_alpha, charges=charges)
    h0, s0 = predict(apply_fn, params, g0, basis, dtype, sizes)
    h1, s1 = predict(apply_fn, params, g1, basis, dtype, sizes)
    perm = np.asarray(perm)
    key0 = {tuple(k): n for n, k in enumerate(g0.atom_pairs.tolist())}
    ap = g1.atom_pairs.copy()
    ap[:, 3], ap[:, 4] = perm[ap[:, 3]], perm[ap[:, 4]]
    match = np.asarray([key0[tuple(k)] for k in ap.tolist()])
    return float(max(np.abs(h1 - h0[match]).max(), np.abs(s1 - s0[match]).max()))


def random_params(model, batch, seed: int = 0, dtype=np.float64):
    """Parameters of ``model`` drawn from numpy, without ``model.init``: normal(0, 1) weights (e3nn-jax's own
    initialization, its layers normalize in the forward pass), head scales 1 + normal(0, 0.1) and head
    shifts normal(0, 1) (so the invariance tests exercise them too). Only the shapes are traced, which
    costs a fraction of the initializers' compilation."""
    import flax.linen as nn

    shapes = jax.eval_shape(lambda: nn.Module.init(model, jax.random.PRNGKey(0), batch))
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name = jax.tree_util.keystr(path)
        x = rng.normal(size=leaf.shape)
        x = 1.0 + 0.1 * x if name.endswith("['scale']") else x
        return jnp.asarray(x, dtype)

    return jax.tree_util.tree_map_with_path(draw, shapes)
