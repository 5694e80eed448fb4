"""Per-block-type normalization: start the output heads from the training data's statistics.

H entries span hundreds of eV (core on-site levels) down to meV (far hoppings). Each head
emits irreps per (pair kind, irrep channel) as ``x * scale + shift`` (shift on scalars only,
which keeps it equivariant). Setting shift to the mean target scalar and scale to the spread of
each irrep channel, per pair kind, lets the network learn O(1) residuals from step one.

Spinful models (:mod:`deeph_jax.model.spin_blocks`): with spin-orbit coupling the H head is set from
the H0 part of the targets and the spin-orbit head from their Ha parts (its own scale per channel, and
the on-site 0e means, e.g. lambda of lambda L.S, as shifts); collinear: the H head from H-up and H-down
together (one network makes both).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from deeph_jax.model.irreps_blocks import BlockLayout, blocks_to_irreps, pair_kind


def target_irreps(blocks, kind, layout: BlockLayout, which: str, spin: str = "none") -> list[np.ndarray]:
    """The (n, dim) target irreps of selected edges' blocks for head ``which`` ("h", "s" or "soc"):
    spinless, H0, Ha, or H-up and H-down apart (a list of one or two arrays)."""
    from deeph_jax.model.spin_blocks import build_vector_layout, collinear_parts, soc_parts, vector_blocks_to_irreps

    kind = jnp.asarray(kind)
    if which == "s" or spin == "none":
        parts = [blocks]
    elif spin == "collinear":
        parts = list(collinear_parts(blocks))
    else:
        h0, ha = soc_parts(blocks)
        if which == "soc":
            return [np.asarray(vector_blocks_to_irreps(jnp.asarray(ha), kind, build_vector_layout(layout)), np.float64)]
        parts = [h0]
    return [np.asarray(blocks_to_irreps(jnp.asarray(b), kind, layout), dtype=np.float64) for b in parts]


def target_statistics(samples, layout: BlockLayout, elements, which: str = "h", floor: float = 1e-4,
                      spin: str = "none"):
    """Per pair kind: (shift (n_kinds, n_scalars), scale (n_kinds, num_irreps)) of the target irreps of head
    ``which`` ("h", "s", or "soc": the spin-orbit parts of spinful targets; see :func:`target_irreps`)."""
    from deeph_jax.model.spin_blocks import build_vector_layout

    head = build_vector_layout(layout) if which == "soc" else layout
    irreps = head.irreps
    S = len(elements)
    index = {e: n for n, e in enumerate(elements)}
    channel_of_dim, scalar_dims = head.channel_of_dim, head.scalar_dims  # the head's own maps
    sums = np.zeros((layout.n_kinds, irreps.dim))
    sq = np.zeros((layout.n_kinds, irreps.dim))
    counts = np.zeros(layout.n_kinds)
    for smp in samples:
        g, t = smp.graph, smp.targets
        sel = np.nonzero(t.present)[0]
        if not len(sel):
            continue
        species = np.asarray([index[s] for s in g.symbols])
        is_self = (g.senders == g.receivers) & ~g.shifts.any(1)
        kind = np.asarray(pair_kind(species[g.senders[sel]], species[g.receivers[sel]], is_self[sel], S))
        blocks = t.s_blocks if which == "s" else t.h_blocks
        for x in target_irreps(blocks[sel], kind, layout, which, spin):
            np.add.at(sums, kind, x)
            np.add.at(sq, kind, x * x)
            np.add.at(counts, kind, 1.0)
    n = np.maximum(counts, 1.0)[:, None]
    mean = sums / n
    mean_full = np.zeros_like(mean)
    # Only scalars, and only on-site kinds, get a shift: an off-site shift is distance-blind and
    # would add the mean near-neighbour hopping to every far edge of a crystal (measured on hBN:
    # 7.8 meV MAE beyond 8 A where |H| < 2 meV).
    mean[: S * S] = 0.0
    mean_full[:, scalar_dims] = mean[:, scalar_dims]
    var = np.maximum(sq / n - 2 * mean * mean_full + mean_full**2, 0.0)  # E[(x - shift)^2]
    scale = np.zeros((layout.n_kinds, irreps.num_irreps))
    np.add.at(scale.T, channel_of_dim, var.T)
    scale = np.sqrt(scale / np.bincount(channel_of_dim, minlength=irreps.num_irreps)[None, :])
    scale = np.where(counts[:, None] > 0, np.maximum(scale, floor), 1.0)
    return mean[:, scalar_dims], scale


def radial_log_scale(samples, layout: BlockLayout, elements, which: str, scale: np.ndarray, nodes: np.ndarray,
                     spin: str = "none", floor: float = 1e-4) -> np.ndarray:
    """(n_kinds, n_nodes) log of the targets' size at each edge length ``nodes`` (Angstrom), relative to
    ``scale`` (n_kinds, num_irreps) of :func:`target_statistics`: 0.5 log of the mean over an edge's irrep
    entries of (x / scale)^2, averaged over edges with Gaussian weights in length (width 0.7 node steps).
    On-site kinds stay 0; nodes with less than one edge's weight take the nearest node's value that has
    it (e.g. below the shortest bond); the size is floored at ``floor`` of ``scale``."""
    index = {e: n for n, e in enumerate(elements)}
    width = 0.7 * (nodes[1] - nodes[0])
    weight = np.zeros((layout.n_kinds, len(nodes)))
    total = np.zeros((layout.n_kinds, len(nodes)))
    for smp in samples:
        g, t = smp.graph, smp.targets
        sel = np.nonzero(t.present)[0]
        species = np.asarray([index[e] for e in g.symbols])
        lengths = np.linalg.norm(g.vectors[sel], axis=1)
        is_self = lengths == 0.0
        sel, lengths = sel[~is_self], lengths[~is_self]
        if not len(sel):
            continue
        kind = np.asarray(pair_kind(species[g.senders[sel]], species[g.receivers[sel]], np.zeros(len(sel), bool),
                                    len(elements)))
        blocks = t.s_blocks if which == "s" else t.h_blocks
        w = np.exp(-0.5 * ((lengths[:, None] - nodes[None, :]) / width) ** 2)  # (E, n_nodes)
        for x in target_irreps(blocks[sel], kind, layout, which, spin):
            size = np.mean((x / scale[kind][:, layout.channel_of_dim]) ** 2, axis=1)  # (E,)
            np.add.at(weight, kind, w)
            np.add.at(total, kind, w * size[:, None])
    out = np.zeros((layout.n_kinds, len(nodes)))
    for k in range(layout.n_kinds):
        ok = np.nonzero(weight[k] >= 1.0)[0]
        if not len(ok):
            continue
        size = np.maximum(total[k, ok] / weight[k, ok], floor**2)
        nearest = np.argmin(np.abs(np.arange(len(nodes))[:, None] - ok[None, :]), axis=1)  # index into ok
        out[k] = 0.5 * np.log(size)[nearest]
    return out


def normalized_params(params, samples, layout: BlockLayout, elements, spin: str = "none", radial_nodes=None):
    """Copy of ``params`` with the heads' shift and scale set from ``samples`` (H, S, and the spin-orbit
    head of a ``spin == "soc"`` model), and the radial scale tables of H and S where the heads have them
    (``radial_nodes``: ``ModelConfig.radial_scale_nodes``)."""
    import jax

    out = jax.tree_util.tree_map(lambda x: x, params)
    inner = dict(out["params"])
    heads = (("head_h", "h"), ("head_s", "s")) + ((("head_soc", "soc"),) if spin == "soc" else ())
    for head, which in heads:
        shift, scale = target_statistics(samples, layout, elements, which, spin=spin)
        h = dict(inner[head])
        h["shift"] = jnp.asarray(shift, h["shift"].dtype)
        h["scale"] = jnp.asarray(scale, h["scale"].dtype)
        if "log_radial_scale" in h:
            table = radial_log_scale(samples, layout, elements, which, scale, np.asarray(radial_nodes), spin)
            h["log_radial_scale"] = jnp.asarray(table, h["log_radial_scale"].dtype)
        inner[head] = h
    out = dict(out)
    out["params"] = inner
    return out
