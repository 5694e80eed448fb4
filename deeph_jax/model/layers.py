"""Interaction block: equivariant message passing that updates node AND edge features.

The output lives on edges (one block per (i, j, R)), so edges carry their own features,
refined each layer from both endpoints and the direction, as in DeepH-E3.
"""

from __future__ import annotations

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp

from deeph_jax.model.radial import EdgeGeometry


def gate_input_irreps(irreps_out: e3nn.Irreps) -> e3nn.Irreps:
    """Irreps a Linear must produce so that ``e3nn.gate`` returns ``irreps_out``: the
    scalars, then one gate scalar per non-scalar irrep, then the non-scalars."""
    irreps_out = e3nn.Irreps(irreps_out)
    scalars = irreps_out.filter(keep=["0e"])
    others = irreps_out.filter(drop=["0e", "0o"])
    if irreps_out.filter(keep=["0o"]).dim:
        raise ValueError(f"odd scalars are not supported in hidden irreps {irreps_out}")
    return (scalars + e3nn.Irreps(f"{others.num_irreps}x0e")).simplify() + others


def gated(irreps_out: e3nn.Irreps, x: e3nn.IrrepsArray, name: str) -> e3nn.IrrepsArray:
    """Linear to the gate's input irreps, then the gate: (..., irreps_out.dim)."""
    y = e3nn.flax.Linear(gate_input_irreps(irreps_out), force_irreps_out=True, name=name)(x)
    y = e3nn.gate(y)
    assert y.irreps == e3nn.Irreps(irreps_out), (y.irreps, irreps_out)
    return y


def weighted_tp(x: e3nn.IrrepsArray, sh: e3nn.IrrepsArray, scalars: jnp.ndarray, irreps_out: e3nn.Irreps,
                hidden: int, name: str) -> e3nn.IrrepsArray:
    """Tensor product x (E, .) with the direction harmonics sh (E, .), each output path
    weighted per edge by an MLP of the edge scalars (E, s) (NequIP's radial filter)."""
    y = e3nn.tensor_product(x, sh, filter_ir_out=[ir for _, ir in e3nn.Irreps(irreps_out)])
    w = e3nn.flax.MultiLayerPerceptron((hidden, y.irreps.num_irreps), act=jax.nn.silu,
                                       output_activation=False, name=name)(scalars)
    return y * e3nn.IrrepsArray(f"{y.irreps.num_irreps}x0e", w)


class Interaction(nn.Module):
    """One block: nodes (N, node_irreps_in.dim), edges (E, edge_irreps_in.dim) ->
    nodes (N, node_irreps_out.dim), edges (E, edge_irreps_out.dim).

    Node i sums messages from its edges (i, j, R): TP(h_j, Y(r_ij)) and the edge's own
    features, both weighted by an MLP of the edge scalars (and by ``geo.message_weight``). Edge (i, j, R) then takes
    TP([h_i, h_j, e_ij], Y(r_ij)). Both updates are gated and added to a residual (identity
    when the irreps do not change, a Linear otherwise; species-indexed for nodes).
    """

    node_irreps_in: e3nn.Irreps
    edge_irreps_in: e3nn.Irreps
    node_irreps_out: e3nn.Irreps
    edge_irreps_out: e3nn.Irreps
    tp_irreps: e3nn.Irreps
    n_species: int
    radial_hidden: int
    avg_num_neighbors: float

    @nn.compact
    def __call__(self, nodes: e3nn.IrrepsArray, edges: e3nn.IrrepsArray, geo: EdgeGeometry,
                 species: jnp.ndarray, senders: jnp.ndarray, receivers: jnp.ndarray,
                 edge_mask: jnp.ndarray) -> tuple[e3nn.IrrepsArray, e3nn.IrrepsArray]:
        if nodes.irreps != self.node_irreps_in or edges.irreps != self.edge_irreps_in:
            raise ValueError(f"Interaction expects nodes {self.node_irreps_in}, edges {self.edge_irreps_in}; "
                             f"got {nodes.irreps}, {edges.irreps}")
        n_nodes = nodes.shape[0]
        # Edge scalars steer every path weight: invariant edge features, radial basis, on-site flag.
        scalars = jnp.concatenate([edges.filter(keep=["0e"]).array, geo.radial,
                                   geo.is_self[:, None].astype(geo.radial.dtype)], axis=-1)
        mask = edge_mask[:, None].astype(scalars.dtype)

        # Node update: messages into the sender i of each edge (i, j, R).
        hj = e3nn.flax.Linear(self.tp_irreps, name="node_to_msg")(nodes)[receivers]
        msg = weighted_tp(hj, geo.sh, scalars, self.node_irreps_out, self.radial_hidden, "msg_filter")
        own = e3nn.flax.Linear(self.tp_irreps, name="edge_to_msg")(edges)
        msg = e3nn.concatenate([msg, own]) * (mask * geo.message_weight[:, None])
        agg = e3nn.scatter_sum(msg, dst=senders, output_size=n_nodes) / self.avg_num_neighbors
        upd = gated(self.node_irreps_out, e3nn.concatenate([nodes, agg]), "node_update")
        if self.node_irreps_in == self.node_irreps_out:
            nodes_out = nodes + upd
        else:
            nodes_out = e3nn.flax.Linear(self.node_irreps_out, num_indexed_weights=self.n_species,
                                         force_irreps_out=True, name="node_skip")(species, nodes) + upd

        # Edge update from both endpoints (new node features) and the edge itself.
        x = e3nn.concatenate([
            e3nn.flax.Linear(self.tp_irreps, name="edge_from_i")(nodes_out)[senders],
            e3nn.flax.Linear(self.tp_irreps, name="edge_from_j")(nodes_out)[receivers],
            e3nn.flax.Linear(self.tp_irreps, name="edge_from_e")(edges),
        ]).regroup()  # one chunk per irrep: a third of the tensor-product paths to trace and compile
        y = weighted_tp(x, geo.sh, scalars, self.edge_irreps_out, self.radial_hidden, "edge_filter")
        upd = gated(self.edge_irreps_out, e3nn.concatenate([y, edges]), "edge_update")
        if self.edge_irreps_in == self.edge_irreps_out:
            edges_out = edges + upd
        else:
            edges_out = e3nn.flax.Linear(self.edge_irreps_out, force_irreps_out=True, name="edge_skip")(edges) + upd
        edges_out = edges_out * mask
        assert nodes_out.irreps == self.node_irreps_out and edges_out.irreps == self.edge_irreps_out
        return nodes_out, edges_out
