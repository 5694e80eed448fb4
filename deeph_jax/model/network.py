"""HamiltonianNet: GraphBatch -> (H, S) blocks on every edge, in eV, exactly Hermitian.

    model = HamiltonianNet(config, basis)
    params = model.init(rng, batch)
    h_blocks, s_blocks = model.apply(params, batch)

Species index ``model_elements(basis)`` (= sorted elements). Block H_ij(R) of edge e sits in
the top-left (n_orb(i), n_orb(j)) corner of ``h_blocks[e]``, zeros elsewhere and on padding
edges: the layout of :func:`deeph_jax.graph.targets.padded_edge_blocks`.

``config.spin`` (see :mod:`deeph_jax.model.spin_blocks`): ``"none"``: h (E, W, W) real; ``"soc"``:
h (E, 2W, 2W) complex, H0 x 1 + i sum_a Ha x sigma_a with a spin-orbit head for Ha; ``"collinear"``:
h (E, 2W, 2W) complex ``[[H-up, 0], [0, H-down]]``, H-up the network on the batch's signed moments
``node_moments`` m and H-down the same network on -m. S is always spinless (E, W, W).
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
from deeph_jax.model.long_range import LongRangeShift, charge_net_for, neighbour_weights, neutral_per_graph
from deeph_jax.model.radial import edge_geometry
from deeph_jax.model.spin_blocks import (build_vector_layout, collinear_blocks, irreps_to_vector_blocks,
                                         soc_blocks)


# XLA CPU options for programs whose compile time matters more than their run time (init, tests).
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
# Copies of each edge irrep the spin-orbit head multiplies pairwise (for irreps the edges lack: 0o, lmax + 1).
SQUARE_CHANNELS = 2


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
    """Every irrep the head must emit exists in the last edge features (a Linear cannot create it);
    with ``config.spin == "soc"`` also every irrep of the spin-orbit head (see :func:`soc_reachable`)."""
    have = {ir for _, ir in config.edge_irreps}
    missing = sorted({ir for _, ir in layout.irreps} - have, key=lambda ir: (ir.l, ir.p))
    if missing:
        raise ValueError(f"edge irreps {config.edge_irreps} lack {missing}, needed by the basis' blocks; "
                         f"raise lmax / edge_channels")
    if config.spin == "soc":
        need = {ir for _, ir in build_vector_layout(layout).irreps}
        missing = sorted(need - soc_reachable(config.edge_irreps), key=lambda ir: (ir.l, ir.p))
        if missing:
            raise ValueError(f"the spin-orbit head cannot reach {missing} from edge irreps {config.edge_irreps} "
                             f"(directly or as products of two of them); raise lmax / edge_channels")


def square_irreps(edge_irreps: e3nn.Irreps) -> e3nn.Irreps:
    """The irreps the spin-orbit head squares: SQUARE_CHANNELS of each irrep of the edge features."""
    return e3nn.Irreps([(SQUARE_CHANNELS, ir) for ir in sorted({ir for _, ir in e3nn.Irreps(edge_irreps)})])


def soc_reachable(edge_irreps: e3nn.Irreps) -> set:
    """Irreps the spin-orbit head can emit: the edge features' own and those of products of two of them."""
    irs = sorted({ir for _, ir in e3nn.Irreps(edge_irreps)})
    products = {ir for a in irs for b in irs for ir in a * b}
    return set(irs) | products


def hermitian_blocks(blocks, mirror, sign: int = 1):
    """Make (E, ..., W, W) blocks exactly Hermitian: out[mirror[e]] == out[e].T bitwise (the last two axes).

    The pair average a = (B[e] + B[m]^T) / 2 makes the prediction independent of which edge of
    a mirrored pair the network looked from; the canonical edge (the smaller index, i.e. the
    lexicographically smaller (i, j, R), as build_graph sorts edges and batching only offsets
    them) then keeps a[e] and its mirror takes its transpose, so equality is exact rather than
    up to rounding. Self edges (e == mirror[e]) keep their upper triangle and mirror it.

    ``sign=-1``: the antisymmetric counterpart, out[mirror[e]] == -out[e].T bitwise (self edges
    antisymmetric, zero diagonal), as the real spin-orbit parts Ha of a Hermitian spinful H need.
    """
    E, W = blocks.shape[0], blocks.shape[-1]
    mirrored = jnp.swapaxes(blocks[mirror], -2, -1)
    a = 0.5 * (blocks + mirrored) if sign > 0 else 0.5 * (blocks - mirrored)
    t = jnp.swapaxes(a[mirror], -2, -1) if sign > 0 else -jnp.swapaxes(a[mirror], -2, -1)
    e = jnp.arange(E)
    upper = jnp.arange(W)[:, None] <= jnp.arange(W)[None, :]
    own = (e < mirror)[:, None, None] | ((e == mirror)[:, None, None] & upper[None])
    own = own.reshape((E,) + (1,) * (blocks.ndim - 3) + (W, W))
    return jnp.where(own, a, t)


class BlockHead(nn.Module):
    """Edge features (E, edge_irreps) -> padded blocks (E, W, W) for one matrix (H or S).

    A Linear to the layout's padded irreps, a learnable scale per (pair kind, irrep channel)
    and shift per (pair kind, scalar) - both equivariant - then irreps -> blocks and Hermiticity.
    The scale/shift let training start from per-species-pair statistics (e.g. on-site levels). The shift
    acts on on-site kinds only unless ``offsite_shift`` (bundles made before 2026-12-07): a trained
    off-site shift is the same at every distance, so it puts the mean near-neighbour correction on
    every far block (measured on hBN: +3 to +4 meV on each far p-p diagonal entry, where DFT has 0).
    With ``radial_nodes`` (Angstrom, evenly spaced from 0) the scale is also multiplied by
    exp(log_radial_scale[kind](r)), a fixed table per pair kind (set from the training data, not
    trained), linear in r between the nodes: a function of the edge length alone, so still equivariant.
    """

    layout: BlockLayout
    radial_nodes: tuple[float, ...] | None = None
    offsite_shift: bool = False

    @nn.compact
    def __call__(self, edges: e3nn.IrrepsArray, kind, mirror, edge_mask, lengths=None):
        """``lengths`` (E,) Angstrom: needed with ``radial_nodes``."""
        irreps = self.layout.irreps
        x = e3nn.flax.Linear(irreps, force_irreps_out=True, name="linear")(edges).array  # (E, dim)
        assert x.shape[-1] == irreps.dim
        scalar_dims = self.layout.scalar_dims
        n_kinds = self.layout.n_kinds
        scale = self.param("scale", nn.initializers.ones, (n_kinds, irreps.num_irreps))
        shift = self.param("shift", nn.initializers.zeros, (n_kinds, len(scalar_dims)))
        x = x * scale[kind][:, self.layout.channel_of_dim]
        if self.radial_nodes is not None:
            # A statistic of the training data, not trained: Adam moves every entry by ~lr a step however small
            # its gradient, and the far nodes' gradients are tiny.
            table = jax.lax.stop_gradient(
                self.param("log_radial_scale", nn.initializers.zeros, (n_kinds, len(self.radial_nodes))))
            x = x * jnp.exp(radial_table_at(table, kind, lengths, self.radial_nodes))[:, None]
        if not self.offsite_shift:
            shift = shift * onsite_kinds(self.layout)[:, None]
        x = x.at[:, scalar_dims].add(shift[kind])
        blocks = irreps_to_blocks(x, kind, self.layout)
        blocks = hermitian_blocks(blocks, mirror)
        return jnp.where(edge_mask[:, None, None], blocks, 0.0)


def onsite_kinds(layout: BlockLayout) -> jnp.ndarray:
    """(n_kinds,) 1.0 for the on-site pair kinds (i, i, R = 0), 0.0 for the others (see ``pair_kind``)."""
    S = len(layout.elements)
    return (jnp.arange(S * S + S) >= S * S).astype(jnp.float32)


def radial_table_at(table, kind, lengths, nodes):
    """(E,) values of ``table`` (n_kinds, n_nodes) at each edge's (kind, length), linear between the evenly
    spaced ``nodes`` (Angstrom, from 0) and held at the last node beyond them."""
    step = nodes[1] - nodes[0]
    t = jnp.clip(lengths / step, 0.0, len(nodes) - 1.0)
    i0 = jnp.clip(jnp.floor(t).astype(jnp.int32), 0, len(nodes) - 2)
    frac = (t - i0).astype(table.dtype)
    row = table[kind]
    lo = jnp.take_along_axis(row, i0[:, None], axis=1)[:, 0]
    hi = jnp.take_along_axis(row, i0[:, None] + 1, axis=1)[:, 0]
    return lo + frac * (hi - lo)


class SpinOrbitHead(nn.Module):
    """Edge features (E, edge_irreps) -> the spin-orbit parts Ha (E, 3, W, W), Cartesian x, y, z, real.

    As :class:`BlockHead`, for the (l1 x l2) x 1e irreps of :class:`~deeph_jax.model.spin_blocks.VectorLayout`
    (per-kind scale on every channel, shift on 0e only), with two differences: irreps the edge features
    lack (0o, e.g. the s-p coupling i (sigma . p); L' = lmax + 1 of d-d) come from products of pairs of
    edge irreps, and Hermiticity needs Ha_ji(-R) = -Ha_ij(R)^T (``hermitian_blocks(..., sign=-1)``).
    """

    layout: BlockLayout
    offsite_shift: bool = False

    @nn.compact
    def __call__(self, edges: e3nn.IrrepsArray, kind, mirror, edge_mask):
        vlayout = build_vector_layout(self.layout)
        irreps = vlayout.irreps
        missing = sorted({ir for _, ir in irreps} - {ir for _, ir in edges.irreps})
        x = edges
        if missing:
            a = e3nn.flax.Linear(square_irreps(edges.irreps), name="square_in")(edges)
            x = e3nn.concatenate([edges, e3nn.tensor_product(a, a, filter_ir_out=missing)])
        y = e3nn.flax.Linear(irreps, force_irreps_out=True, name="linear")(x).array  # (E, dim)
        assert y.shape[-1] == irreps.dim
        scalar_dims = vlayout.scalar_dims
        scale = self.param("scale", nn.initializers.ones, (vlayout.n_kinds, irreps.num_irreps))
        shift = self.param("shift", nn.initializers.zeros, (vlayout.n_kinds, len(scalar_dims)))
        y = y * scale[kind][:, vlayout.channel_of_dim]
        if not self.offsite_shift:
            shift = shift * onsite_kinds(self.layout)[:, None]
        y = y.at[:, scalar_dims].add(shift[kind])
        blocks = hermitian_blocks(irreps_to_vector_blocks(y, kind, vlayout), mirror, sign=-1)
        return jnp.where(edge_mask[:, None, None, None], blocks, 0.0)


class HamiltonianNet(nn.Module):
    """E(3)-equivariant message passing on the pair graph -> (H blocks in eV, S blocks).

    Input: a GraphBatch (see deeph_jax.graph.batch) of jnp arrays; uses species (N,),
    senders/receivers (E,), vectors (E, 3) Angstrom, mirror (E,), edge_mask (E,), and with
    ``config.spin == "collinear"`` node_moments (N,) (None: all zero).
    Output: h_blocks (E, W, W), or (E, 2W, 2W) complex when spinful (see the module docstring), and
    s_blocks (E, W, W); each exactly Hermitian over mirrored edges.
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
        edge_mask = batch.edge_mask
        kind = pair_kind(species[senders], species[receivers], geo.is_self, S)
        if cfg.long_range_alpha is not None and batch.node_potentials is None:
            raise ValueError("the model has a long-range channel but the batch carries no node_potentials "
                             "(attach them with deeph_jax.graph.attach_long_range)")
        charge_phi = None
        if cfg.long_range_charges:
            charge_net = charge_net_for(cfg, S, name="charge_net")
            weights = neighbour_weights(geo.lengths, geo.is_self, edge_mask, charge_net.cutoff)
            charge_phi = charge_potentials(batch, charge_net(species, geo.lengths, senders, receivers, weights))

        # Submodules are made once and called once per spin channel (collinear: twice, shared parameters).
        embed_species = e3nn.flax.Linear(f"{cfg.node_channels[0]}x0e", name="embed_species")
        embed_edge = e3nn.flax.MultiLayerPerceptron((cfg.radial_hidden, cfg.species_embed), act=jax.nn.silu,
                                                    name="embed_edge")
        embed_edge_sh = e3nn.flax.Linear(cfg.edge_irreps, force_irreps_out=True, name="embed_edge_sh")
        layers = [Interaction(p.node_in, p.edge_in, p.node_out, p.edge_out, cfg.tp_irreps, S, cfg.radial_hidden,
                              cfg.avg_num_neighbors, name=f"layer_{n}") for n, p in enumerate(build_plan(cfg))]
        nodes = cfg.radial_scale_nodes
        nodes = None if nodes is None else tuple(float(r) for r in nodes)
        head_h = BlockHead(layout, nodes, cfg.offsite_shift, name="head_h")
        head_s = BlockHead(layout, nodes, cfg.offsite_shift, name="head_s")
        long_range = LongRangeShift(self.basis, name="long_range") if cfg.long_range_alpha is not None else None
        embed_moment = None
        if cfg.spin == "collinear":
            embed_moment = e3nn.flax.MultiLayerPerceptron((cfg.radial_hidden, cfg.node_channels[0]), act=jax.nn.silu,
                                                          output_activation=False, name="embed_moment")

        def edge_features(moments):
            """Last-layer edge features; ``moments`` (N,) signed magnetic moments or None."""
            nodes = embed_species(e3nn.IrrepsArray(f"{S}x0e", onehot))
            if moments is not None:  # a scalar per atom, with its species, into the node embedding
                m = embed_moment(jnp.concatenate([onehot, moments[:, None]], axis=-1))
                nodes = nodes + e3nn.IrrepsArray(nodes.irreps, m)
            z = jnp.concatenate([onehot[senders], onehot[receivers], geo.radial,
                                 geo.is_self[:, None].astype(dtype)], axis=-1)
            edges = e3nn.tensor_product(e3nn.IrrepsArray(f"{cfg.species_embed}x0e", embed_edge(z)), geo.sh)
            edges = embed_edge_sh(edges)
            for layer in layers:
                nodes, edges = layer(nodes, edges, geo, species, senders, receivers, edge_mask)
            return edges

        def spinless_blocks(edges):
            h = head_h(edges, kind, batch.mirror, edge_mask, geo.lengths)
            s_blocks = head_s(edges, kind, batch.mirror, edge_mask, geo.lengths)
            if long_range is not None:
                # The off-site shift is phi-weighted S_ij: the network's S (off by ~5e-3 beyond 6 A, where the
                # true S is ~1e-4) carried its error into every shifted block, and the H head learnt to cancel
                # it. The known overlap (the DFT blocks in training, PySCF's integrals at prediction) replaces
                # it when given.
                s_shift = s_blocks if batch.s_blocks is None else jnp.asarray(batch.s_blocks, s_blocks.dtype)
                h, _ = long_range(h, s_shift, batch.node_potentials, species, senders, receivers, geo.is_self,
                                  edge_mask, charge_phi)
            return h, s_blocks

        if cfg.spin == "collinear":
            moments = batch.node_moments
            moments = jnp.zeros(species.shape, dtype) if moments is None else jnp.asarray(moments, dtype)
            h_up, s_up = spinless_blocks(edge_features(moments))
            h_down, s_down = spinless_blocks(edge_features(-moments))
            # S does not depend on spin: the mean of both passes (symmetric under swapping them).
            return collinear_blocks(h_up, h_down), 0.5 * (s_up + s_down)
        edges = edge_features(None)
        h, s_blocks = spinless_blocks(edges)
        if cfg.spin == "soc":
            head_soc = SpinOrbitHead(layout, cfg.offsite_shift, name="head_soc")
            h = soc_blocks(h, head_soc(edges, kind, batch.mirror, edge_mask))
        return h, s_blocks


def charge_potentials(batch, dq):
    """(N,) volts: the long-range potential of the environment-dependent charges ``dq`` (N,) made neutral per
    graph. Training batches carry the kernel K (their cells are small): phi = K dq. Prediction batches carry phi
    itself, computed beforehand from the whole structure's charges (a chunk holds only some of them); the
    charge net still runs there, so the parameters are the same."""
    dq = neutral_per_graph(dq, batch.node_graph, batch.node_mask, batch.graph_mask.shape[0])
    if batch.charge_kernel is not None:
        return jnp.asarray(batch.charge_kernel, dq.dtype) @ dq
    if batch.charge_potentials is not None:
        return jnp.asarray(batch.charge_potentials, dq.dtype)
    raise ValueError("the model has environment-dependent charges but the batch carries neither charge_kernel "
                     "(training: build_model_graph(..., charge_kernel=True)) nor charge_potentials "
                     "(prediction: deeph_jax.predict.charges.attach_charge_potentials)")


def count_parameters(params) -> int:
    return int(sum(np.prod(p.shape) for p in jax.tree_util.tree_leaves(params)))


def summary(config: ModelConfig, basis: OrbitalBasis, params=None) -> str:
    """One line: layers, irreps, head and parameter count (printed at the start of training)."""
    layout = build_layout(basis)
    n = f", {count_parameters(params):,} params" if params is not None else ""
    msg = f" (messages {config.message_cutoff} A)" if config.message_cutoff else ""
    msg += f", long-range Ewald channel (alpha {config.long_range_alpha} 1/A)" if config.long_range_alpha else ""
    msg += " with environment-dependent charges" if config.long_range_charges else ""
    msg += ", radial output scale" if config.radial_scale else ""
    msg += {"none": "", "soc": ", spin-orbit head (spinful H)", "collinear": ", collinear spin (moments in)"}[config.spin]
    return (f"HamiltonianNet: {config.num_layers} layers, lmax {config.lmax}, cutoff {config.cutoff} A{msg}, "
            f"{config.num_radial} radial; nodes {config.node_irreps}; edges {config.edge_irreps}; "
            f"tp {config.tp_irreps}; head {layout.irreps.num_irreps} irreps over {len(layout.types)} "
            f"shell-pair types, W={layout.width}, elements {'/'.join(layout.elements)}{n}")
