"""Padded batches of pair graphs: a few fixed shapes, so ``jax.jit`` compiles a handful of times.

Sizes are rounded up to the next power of two (nodes, edges) and graphs to ``n_graphs + 1``
rounded likewise; one padding node and one padding graph always exist, and padding edges
connect the padding node to itself. A dataset whose structures all have one size (a water
set, a set of equal supercells) compiles once per batch size; a mixed set compiles once per
(node bucket, edge bucket) pair it meets, which :func:`count_buckets` reports.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from deeph_jax.graph.pairs import PairGraph


class GraphBatch(NamedTuple):
    """Several pair graphs concatenated and padded. A NamedTuple, so a JAX pytree.

    Fields (N = padded nodes, E = padded edges, G = padded graphs, W = block width):
        species:    (N,) int32, index of each atom's element in the model's element list.
        node_graph: (N,) int32, graph of each node (padding nodes: the padding graph G - 1).
        node_mask:  (N,) bool, real nodes.
        senders:    (E,) int32, atom i of block H_ij(R) (global node index in the batch).
        receivers:  (E,) int32, atom j.
        vectors:    (E, 3) float, pos_j + R @ cell - pos_i in Angstrom (0 for self and padding edges).
        mirror:     (E,) int32, index of the mirrored edge (j, i, -R); padding edges map to themselves.
        edge_graph: (E,) int32, graph of each edge.
        edge_mask:  (E,) bool, real edges.
        graph_mask: (G,) bool, real graphs.
        h_blocks:   (E, W, W) DFT H blocks in eV, zero-padded (None for inference batches); spinful data:
                    (E, 2W, 2W) complex, quarters [[uu, ud], [du, dd]] each padded to (W, W).
        s_blocks:   (E, W, W) DFT S blocks (training), or the exact overlap at prediction when the model's
                    basis has PySCF integrals; None otherwise. The long-range channel uses them in its
                    off-site shift in place of the network's S.
        block_mask: (E,) bool, edges whose block is stored in the data (None for inference).
        node_potentials: (N, n_elements) float, long-range potentials per unit element charge in eV
            (zero on padding nodes; None when the graphs carry none).
        node_moments: (N,) float, signed magnetic moment per atom for collinear-spin models (zero on
            padding nodes and on graphs without moments; None when no graph carries any).
        charge_kernel: (N, N) float, block-diagonal long-range kernel of the graphs' environment-dependent
            charges (training; zero across graphs and on padding), or None.
        charge_potentials: (N,) float, the potential of those charges in volts (prediction), or None.
    """

    species: np.ndarray
    node_graph: np.ndarray
    node_mask: np.ndarray
    senders: np.ndarray
    receivers: np.ndarray
    vectors: np.ndarray
    mirror: np.ndarray
    edge_graph: np.ndarray
    edge_mask: np.ndarray
    graph_mask: np.ndarray
    h_blocks: np.ndarray | None = None
    s_blocks: np.ndarray | None = None
    block_mask: np.ndarray | None = None
    node_potentials: np.ndarray | None = None
    node_moments: np.ndarray | None = None
    charge_kernel: np.ndarray | None = None
    charge_potentials: np.ndarray | None = None

    @property
    def n_nodes(self) -> int:
        return int(self.species.shape[0])

    @property
    def n_edges(self) -> int:
        return int(self.senders.shape[0])

    @property
    def n_graphs(self) -> int:
        return int(self.graph_mask.shape[0])


class GraphTargets(NamedTuple):
    """DFT blocks on one graph's edges (see :func:`deeph_jax.graph.targets.padded_edge_blocks`)."""

    h_blocks: np.ndarray  # (n_edges, W, W) eV; spinful (n_edges, 2W, 2W) complex
    s_blocks: np.ndarray  # (n_edges, W, W)
    present: np.ndarray  # (n_edges,) bool


def next_power_of_two(n: int, minimum: int = 1) -> int:
    return int(max(minimum, 1 << int(np.ceil(np.log2(max(n, 1))))))


def bucket_size(n: int, minimum: int = 1, steps_per_octave: int = 1) -> int:
    """The smallest bucket >= ``n``: powers of two, or with ``steps_per_octave`` s > 1 also the s - 1 evenly spaced
    sizes between them (s = 4: 1024, 1280, 1536, 1792, 2048, ...), so a batch pads by at most 1/s of an octave
    instead of up to 2x, at the price of up to s times as many shapes (compilations)."""
    top = next_power_of_two(n, minimum)
    if steps_per_octave <= 1 or top <= minimum:
        return top
    base = top // 2
    steps = (int(np.ceil(base * (1 + j / steps_per_octave))) for j in range(1, steps_per_octave + 1))
    return max(minimum, next(size for size in steps if size >= n))  # the last step is top itself


def padded_sizes(n_nodes: int, n_edges: int, n_graphs: int, steps_per_octave: int = 1) -> tuple[int, int, int]:
    """Bucket sizes for a batch holding these totals (one padding node and graph always); nodes and edges in
    :func:`bucket_size` steps (``steps_per_octave``), graphs in powers of two."""
    return (
        bucket_size(n_nodes + 1, 4, steps_per_octave),
        bucket_size(n_edges + 1, 8, steps_per_octave),
        next_power_of_two(n_graphs + 1, 2),
    )


def batch_graphs(
    graphs: Sequence[PairGraph],
    elements: Sequence[str],
    targets: Sequence[GraphTargets] | None = None,
    sizes: tuple[int, int, int] | None = None,
    dtype=np.float32,
) -> GraphBatch:
    """Concatenate graphs and pad them to ``sizes`` (default: :func:`padded_sizes`).

    Args:
        elements: the model's element list; ``species`` indexes it.
        targets: per-graph DFT blocks for training, or None for inference.
        dtype: float dtype of ``vectors`` and the blocks (complex of that precision for spinful H).
    """
    element_index = {e: n for n, e in enumerate(elements)}
    n_nodes = sum(g.n_nodes for g in graphs)
    n_edges = sum(g.n_edges for g in graphs)
    N, E, G = sizes or padded_sizes(n_nodes, n_edges, len(graphs))
    if N <= n_nodes or E < n_edges or G <= len(graphs):
        raise ValueError(f"padded sizes {(N, E, G)} too small for {(n_nodes, n_edges, len(graphs))} (+1 padding node/graph)")

    species = np.zeros(N, np.int32)
    node_graph = np.full(N, G - 1, np.int32)
    senders = np.full(E, N - 1, np.int32)
    receivers = np.full(E, N - 1, np.int32)
    vectors = np.zeros((E, 3), dtype)
    mirror = np.arange(E, dtype=np.int32)
    edge_graph = np.full(E, G - 1, np.int32)
    node0 = edge0 = 0
    for gi, g in enumerate(graphs):
        n, e = g.n_nodes, g.n_edges
        species[node0 : node0 + n] = [element_index[s] for s in g.symbols]
        node_graph[node0 : node0 + n] = gi
        senders[edge0 : edge0 + e] = g.senders + node0
        receivers[edge0 : edge0 + e] = g.receivers + node0
        vectors[edge0 : edge0 + e] = g.vectors
        mirror[edge0 : edge0 + e] = g.mirror() + edge0
        edge_graph[edge0 : edge0 + e] = gi
        node0 += n
        edge0 += e
    node_mask = np.arange(N) < n_nodes
    edge_mask = np.arange(E) < n_edges
    graph_mask = np.arange(G) < len(graphs)

    h = s = present = None
    if targets is not None:
        h_shape, W = targets[0].h_blocks.shape[1:], targets[0].s_blocks.shape[1]
        h_dtype = np.result_type(dtype, np.complex64) if np.iscomplexobj(targets[0].h_blocks) else dtype
        h = np.zeros((E, *h_shape), h_dtype)
        s = np.zeros((E, W, W), dtype)
        present = np.zeros(E, bool)
        edge0 = 0
        for g, t in zip(graphs, targets):
            e = g.n_edges
            h[edge0 : edge0 + e] = t.h_blocks
            s[edge0 : edge0 + e] = t.s_blocks
            present[edge0 : edge0 + e] = t.present
            edge0 += e
    potentials = None
    if _all_or_none(graphs, "node_potentials"):
        potentials = np.zeros((N, len(elements)), dtype)
        potentials[:n_nodes] = np.concatenate([g.node_potentials for g in graphs])
    moments = None
    if any(g.node_moments is not None for g in graphs):
        moments = np.zeros(N, dtype)
        moments[:n_nodes] = np.concatenate([np.zeros(g.n_nodes) if g.node_moments is None else g.node_moments
                                            for g in graphs])
    kernel = None
    if _all_or_none(graphs, "charge_kernel"):
        kernel = np.zeros((N, N), dtype)
        node0 = 0
        for g in graphs:
            kernel[node0 : node0 + g.n_nodes, node0 : node0 + g.n_nodes] = g.charge_kernel
            node0 += g.n_nodes
    charge_potentials = None
    if _all_or_none(graphs, "charge_potentials"):
        charge_potentials = np.zeros(N, dtype)
        charge_potentials[:n_nodes] = np.concatenate([g.charge_potentials for g in graphs])
    return GraphBatch(species, node_graph, node_mask, senders, receivers, vectors, mirror,
                      edge_graph, edge_mask, graph_mask, h, s, present, potentials, moments, kernel,
                      charge_potentials)


def _all_or_none(graphs: Sequence[PairGraph], field: str) -> bool:
    """Whether every graph carries ``field``; an error when only some do."""
    have = [getattr(g, field) is not None for g in graphs]
    if any(have) and not all(have):
        raise ValueError(f"some graphs of the batch carry {field} and others do not")
    return all(have) and bool(have)


def count_buckets(graph_sizes: Sequence[tuple[int, int]], batch_size: int, steps_per_octave: int = 1) -> int:
    """Distinct padded shapes (= jit compilations) for consecutive batches of ``batch_size`` graphs.

    ``graph_sizes``: (n_nodes, n_edges) of each graph, in batch order.
    """
    shapes = set()
    for b in range(0, len(graph_sizes), batch_size):
        chunk = graph_sizes[b : b + batch_size]
        shapes.add(padded_sizes(sum(n for n, _ in chunk), sum(e for _, e in chunk), batch_size, steps_per_octave))
    return len(shapes)
