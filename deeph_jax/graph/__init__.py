"""Pair graphs with periodic images and cutoffs, DFT blocks on their edges, padded batches."""

from deeph_jax.graph.batch import GraphBatch, GraphTargets, batch_graphs, count_buckets, padded_sizes
from deeph_jax.graph.long_range import attach_long_range, build_model_graph, element_potentials
from deeph_jax.graph.moments import attach_moments, moments_from_info, parse_moments
from deeph_jax.graph.pairs import PairGraph, brute_force_pairs, build_graph, pack_pair_keys
from deeph_jax.graph.targets import DroppedBlocks, dropped_blocks, match_blocks, padded_edge_blocks

__all__ = [
    "DroppedBlocks", "GraphBatch", "GraphTargets", "PairGraph",
    "attach_long_range", "attach_moments", "batch_graphs", "build_model_graph", "brute_force_pairs", "build_graph", "count_buckets", "dropped_blocks", "element_potentials",
    "match_blocks", "moments_from_info", "pack_pair_keys", "padded_edge_blocks", "padded_sizes", "parse_moments",
]
