"""The main job, stage by stage, with a closing table."""

from __future__ import annotations

import time
from pathlib import Path

from deeph_jax.errors import DeephError


def run_demo(dataset: Path, out: Path, cutoff: float = 6.0) -> int:
    from tqdm import tqdm

    from deeph_jax.graph import build_graph, count_buckets, dropped_blocks
    from deeph_jax.io import find_structure_dirs, read_deeph_dir
    from deeph_jax.io.inspect import summarize_dataset

    timings = {}
    t0 = time.perf_counter()
    summary = summarize_dataset(dataset)
    print("\n".join(summary.lines()))
    timings["inspect"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    sizes, dropped = [], 0
    for d in tqdm(find_structure_dirs(dataset), desc="graphs", unit="structure"):
        data = read_deeph_dir(d)
        g = build_graph(data.structure, cutoff)
        sizes.append((g.n_nodes, g.n_edges))
        dropped += dropped_blocks(g, data.hamiltonian, data.overlap).count
    timings["graphs"] = time.perf_counter() - t0
    if not sizes:
        raise DeephError("no structures", dataset)
    out.mkdir(parents=True, exist_ok=True)
    print()
    print(f"{'stage':<10} {'result':<60} {'wall s':>8}")
    text = f"{summary.n_structures} structures, elements {', '.join(summary.basis.elements)}"
    print(f"{'inspect':<10} {text:<60} {timings['inspect']:>8.2f}")
    edges = sum(e for _, e in sizes)
    text = f"{edges} edges (cutoff {cutoff} A), {dropped} stored blocks dropped, {count_buckets(sizes, 8)} batch shape(s)"
    print(f"{'graphs':<10} {text:<60} {timings['graphs']:>8.2f}")
    return 0
