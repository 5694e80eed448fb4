"""HamiltonianNet: GraphBatch -> (H, S) blocks on every edge, (E, W, W) in eV, exactly Hermitian.

    model = HamiltonianNet(config, basis)
    params = model.init(rng, batch)
    h_blocks, s_blocks = model.apply(params, batch)

Species index ``model_elements(basis)`` (= sorted elements). Block H_ij(R) of edge e sits in
the top-left (n_orb(i), n_orb(j)) corner of ``h_blocks[e]``, zeros elsewhere and on padding
edges: the layout of :func:`deeph_jax.graph.targets.padded_edge_blocks`.
"""

from __future__ import annotations

from dataclasses import dataclass

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from deeph_jax.io.basis import OrbitalBasis
from deeph_jax.model.config import ModelConfig
from deeph_jax.model.irreps_blocks import BlockLayout, build_layout, irreps_to_blocks, pair_kind
from deeph_jax.model.layers import Interaction
from deeph_jax.model.long_range import LongRangeShift
from deeph_jax.model.radial import edge_geometry


# XLA CPU options for programs whose compile time matters more than their run time (init, tests).
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


@dataclass(frozen=True)
class BlockPlan:
    """irreps_in -> irreps_out of one interaction block (nodes, edges)."""

    node_in: e3nn.Irreps
    edge_in: e3nn.Irreps
    node_out: e3nn.Irreps
    edge_out: e3nn.Irreps


def build_plan(config: ModelConfig) -> list[BlockPlan]:
    """Irreps of each block, threaded irreps_in = previous irreps_out and checked here, when the
    model is built, rather than at the first traced call."""
    node_in = e3nn.Irreps(f"{config.node_channels[0]}x0e")  # species embedding: scalars only
    edge_in = config.edge_irreps  # initial edge features: radial scalars x Y(r), forced to edge irreps
    plan = []
    for _ in range(config.num_layers):
        plan.append(BlockPlan(node_in, edge_in, config.node_irreps, config.edge_irreps))
        node_in, edge_in = plan[-1].node_out, plan[-1].edge_out
    for prev, nxt in zip(plan, plan[1:]):
        if prev.node_out != nxt.node_in or prev.edge_out != nxt.edge_in:
            raise ValueError(f"block irreps do not chain: {prev} -> {nxt}")
    return plan


def check_output_reachable(config: ModelConfig, layout: BlockLayout) -> None:
    """Every irrep the head must emit exists in the last edge features (a Linear cannot create it)."""
    have = {ir for _, ir in config.edge_irreps}
    missing = sorted({ir for _, ir in layout.irreps} - have, key=lambda ir: (ir.l, ir.p))
    if missing:
        raise ValueError(f"edge irreps {config.edge_irreps} lack {missing}, needed by the basis' blocks; "
                         f"raise lmax / edge_channels")


def hermitian_blocks(blocks, mirror):
    """Make (E, W, W) blocks exactly Hermitian: out[mirror[e]] == out[e].T bitwise.

    The pair average a = (B[e] + B[m]^T) / 2 makes the prediction independent of which edge of
    a mirrored pair the network looked from; the canonical edge (the smaller index, i.e. the
    lexicographically smaller (i, j, R), as build_graph sorts edges and batching only offsets
    them) then keeps a[e] and its mirror takes its transpose, so equality is exact rather than
    up to rounding. Self edges (e == mirror[e]) keep their upper triangle and mirror it.
    """
    E, W = blocks.shape[0], blocks.shape[1]
    a = 0.5 * (blocks + jnp.swapaxes(blocks[mirror], 1, 2))
    t = jnp.swapaxes(a[mirror], 1, 2)
    e = jnp.arange(E)
    upper = jnp.arange(W)[:, None] <= jnp.arange(W)[None, :]
    own = (e < mirror)[:, None, None] | ((e == mirror)[:, None, None] & upper[None])
    return jnp.where(own, a, t)


class BlockHead(nn.Module):
    """Edge features (E, edge_irreps) -> padded blocks (E, W, W) for one matrix (H or S).

    A Linear to the layout's padded irreps, a learnable scale per (pair kind, irrep channel)
    and shift per (pair kind, scalar) - both equivariant - then irreps -> blocks and Hermiticity.
    The scale/shift let training start from per-species-pair statistics (e.g. on-site levels).
    """

    layout: BlockLayout

    @nn.compact
    def __call__(self, edges: e3nn.IrrepsArray, kind, mirror, edge_mask):
        irreps = self.layout.irreps
        x = e3nn.flax.Linear(irreps, force_irreps_out=True, name="linear")(edges).array  # (E, dim)
        assert x.shape[-1] == irreps.dim
        scalar_dims = self.layout.scalar_dims
        n_kinds = self.layout.n_kinds
        scale = self.param("scale", nn.initializers.ones, (n_kinds, irreps.num_irreps))
        shift = self.param("shift", nn.initializers.zeros, (n_kinds, len(scalar_dims)))
        x = x * scale[kind][:, self.layout.channel_of_dim]
        x = x.at[:, scalar_dims].add(shift[kind])
        blocks = irreps_to_blocks(x, kind, self.layout)
        blocks = hermitian_blocks(blocks, mirror)
        return jnp.where(edge_mask[:, None, None], blocks, 0.0)


class HamiltonianNet(nn.Module):
    """E(3)-equivariant message passing on the pair graph -> (H blocks in eV, S blocks).

    Input: a GraphBatch (see deeph_jax.graph.batch) of jnp arrays; uses species (N,),
    senders/receivers (E,), vectors (E, 3) Angstrom, mirror (E,), edge_mask (E,).
    Output: h_blocks, s_blocks, each (E, W, W), exactly Hermitian over mirrored edges.
    """

    config: ModelConfig
    basis: OrbitalBasis

    def __post_init__(self):
        super().__post_init__()
        # Build-time checks: block irreps chain, and the head's irreps are reachable.
        build_plan(self.config)
        check_output_reachable(self.config, build_layout(self.basis))

    def init(self, rngs, batch, **kwargs):
        """As flax's ``init``, fast: flax's ``lazy_init`` traces the forward pass on abstract
        shapes and prunes it to the initializers, which are jitted with counter-based "rbg"
        keys derived from ``rngs``. (Eager e3nn-jax ops take about a minute for this model, and
        XLA compiles ~100 threefry initializers several times slower than the forward pass.)"""
        from flax.core import partial_eval

        abstract = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x)), batch)

        def rbg(key):
            key = key if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else jax.random.wrap_key_data(key)
            return jax.random.wrap_key_data(jax.random.bits(key, (4,), jnp.uint32), impl="rbg")

        rngs = {k: rbg(v) for k, v in rngs.items()} if isinstance(rngs, dict) else rbg(rngs)

        def full_init(r, b):
            return nn.Module.init(self, r, b, **kwargs)

        # Optimizing the initializers' XLA program buys nothing for a one-off run and doubles its compile time.
        options = FAST_COMPILE if jax.default_backend() == "cpu" else None
        return jax.jit(lambda r: partial_eval.lazy_init(full_init)(r, abstract), compiler_options=options)(rngs)

    @nn.compact
    def __call__(self, batch):
        cfg = self.config
        layout = build_layout(self.basis)
        S = len(layout.elements)
        species, senders, receivers = batch.species, batch.senders, batch.receivers
        vectors = jnp.asarray(batch.vectors)
        dtype = vectors.dtype
        geo = edge_geometry(vectors, cfg.lmax, cfg.num_radial, cfg.cutoff, cfg.message_cutoff)
        onehot = jax.nn.one_hot(species, S, dtype=dtype)  # (N, S)

        nodes = e3nn.flax.Linear(f"{cfg.node_channels[0]}x0e", name="embed_species")(
            e3nn.IrrepsArray(f"{S}x0e", onehot))
        z = jnp.concatenate([onehot[senders], onehot[receivers], geo.radial,
                             geo.is_self[:, None].astype(dtype)], axis=-1)
        s = e3nn.flax.MultiLayerPerceptron((cfg.radial_hidden, cfg.species_embed), act=jax.nn.silu,
                                           name="embed_edge")(z)
        edges = e3nn.tensor_product(e3nn.IrrepsArray(f"{cfg.species_embed}x0e", s), geo.sh)
        edges = e3nn.flax.Linear(cfg.edge_irreps, force_irreps_out=True, name="embed_edge_sh")(edges)
        edge_mask = batch.edge_mask

        for n, p in enumerate(build_plan(cfg)):
            nodes, edges = Interaction(p.node_in, p.edge_in, p.node_out, p.edge_out, cfg.tp_irreps, S,
                                       cfg.radial_hidden, cfg.avg_num_neighbors, name=f"layer_{n}")(
                nodes, edges, geo, species, senders, receivers, edge_mask)

        kind = pair_kind(species[senders], species[receivers], geo.is_self, S)
        h = BlockHead(layout, name="head_h")(edges, kind, batch.mirror, edge_mask)
        s_blocks = BlockHead(layout, name="head_s")(edges, kind, batch.mirror, edge_mask)
        if cfg.long_range_alpha is not None:
            if batch.node_potentials is None:
                raise ValueError("the model has a long-range channel but the batch carries no node_potentials "
                                 "(attach them with deeph_jax.graph.attach_long_range)")
            h, _ = LongRangeShift(self.basis, name="long_range")(
                h, s_blocks, batch.node_potentials, species, senders, receivers, geo.is_self, edge_mask)
        return h, s_blocks


def count_parameters(params) -> int:
    return int(sum(np.prod(p.shape) for p in jax.tree_util.tree_leaves(params)))


def summary(config: ModelConfig, basis: OrbitalBasis, params=None) -> str:
    """One line: layers, irreps, head and parameter count (printed at the start of training)."""
    layout = build_layout(basis)
    n = f", {count_parameters(params):,} params" if params is not None else ""
    msg = f" (messages {config.message_cutoff} A)" if config.message_cutoff else ""
    msg += f", long-range Ewald channel (alpha {config.long_range_alpha} 1/A)" if config.long_range_alpha else ""
    return (f"HamiltonianNet: {config.num_layers} layers, lmax {config.lmax}, cutoff {config.cutoff} A{msg}, "
            f"{config.num_radial} radial; nodes {config.node_irreps}; edges {config.edge_irreps}; "
            f"tp {config.tp_irreps}; head {layout.irreps.num_irreps} irreps over {len(layout.types)} "
            f"shell-pair types, W={layout.width}, elements {'/'.join(layout.elements)}{n}")
