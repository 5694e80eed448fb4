"""Reusable model checks (equivariance, relabelling, Hermiticity), shipped with the package so
a new architecture can be tested the same way. numpy in, numpy out; float64 comparisons."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from deeph_jax.graph import batch_graphs, build_model_graph
from deeph_jax.io.basis import OrbitalBasis
from deeph_jax.io.structures import Structure
from deeph_jax.model.irreps_blocks import model_elements
from deeph_jax.model.wigner import atom_D


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


def graph_of(structure: Structure, cutoff, basis: OrbitalBasis, long_range_alpha: float | None = None):
    """The pair graph a model sees: with the long-range potentials when the model has that channel."""
    return build_model_graph(structure, cutoff, model_elements(basis), long_range_alpha)


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
                       dtype=np.float32, sizes=None, long_range_alpha=None) -> tuple[float, float]:
    """max |H(Qx) - D_i H(x) D_j^T| over edges, H and S together, and max |H(x)|.

    The rotated structure gets its own graph (positions and cell rotated), which must hold the
    same (i, j, R) edges.
    """
    g0 = graph_of(structure, cutoff, basis, long_range_alpha)
    g1 = graph_of(moved(structure, Q), cutoff, basis, long_range_alpha)
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
        expected = Di @ x0.astype(np.float64) @ np.swapaxes(Dj, 1, 2)
        err = max(err, float(np.abs(x1 - expected).max()))
    return err, float(np.abs(h0).max())


def relabel_error(apply_fn, params, structure: Structure, basis: OrbitalBasis, cutoff, perm, t,
                  dtype=np.float32, sizes=None, long_range_alpha=None) -> float:
    """max |H - H'| between a structure and its translated, permuted copy, edges matched by key."""
    g0 = graph_of(structure, cutoff, basis, long_range_alpha)
    g1 = graph_of(permuted(moved(structure, t=t), perm), cutoff, basis, long_range_alpha)
    h0, s0 = predict(apply_fn, params, g0, basis, dtype, sizes)
    h1, s1 = predict(apply_fn, params, g1, basis, dtype, sizes)
    perm = np.asarray(perm)
    key0 = {tuple(k): n for n, k in enumerate(g0.atom_pairs.tolist())}
    ap = g1.atom_pairs.copy()
    ap[:, 3], ap[:, 4] = perm[ap[:, 3]], perm[ap[:, 4]]
    match = np.asarray([key0[tuple(k)] for k in ap.tolist()])
    return float(max(np.abs(h1 - h0[match]).max(), np.abs(s1 - s0[match]).max()))
