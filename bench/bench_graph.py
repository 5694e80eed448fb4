"""Pair-graph build time and memory for rattled hBN sheets of 10^3 to 10^5 atoms (run by hand).

    python bench/bench_graph.py [--sizes 1000 10000 100000] [--cutoff 8.0] [--json bench/results/graph.json]

Prints atoms, edges, seconds for build_graph (vesin neighbour list + self edges + sort) and for
the mirror index, and the peak RSS of the process; the rows also go to --json.
"""

import argparse
import resource
import time

import numpy as np
from ase.build import make_supercell

from deeph_jax.graph import build_graph
from deeph_jax.io.structures import Structure, validate_structure
from deeph_jax.provenance import write_result


def hbn_sheet(n_atoms: int, seed: int = 0, a: float = 2.504, c: float = 20.0) -> Structure:
    """Rattled (sigma 0.05 A) monolayer hBN supercell with about n_atoms atoms."""
    import ase

    prim = ase.Atoms("BN", scaled_positions=[[1 / 3, 2 / 3, 0.5], [2 / 3, 1 / 3, 0.5]],
                     cell=[[a, 0, 0], [-a / 2, a * np.sqrt(3) / 2, 0], [0, 0, c]], pbc=True)
    m = max(1, int(round(np.sqrt(n_atoms / 2))))
    atoms = make_supercell(prim, np.diag([m, m, 1]))
    rng = np.random.default_rng(seed)
    atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
    return Structure(tuple(atoms.get_chemical_symbols()), atoms.positions, atoms.cell[:], True)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    p.add_argument("--cutoff", type=float, default=8.0, help="Angstrom")
    p.add_argument("--json", default="bench/results/graph.json", help="raw results ('' for none)")
    args = p.parse_args()
    rows = []
    print(f"{'atoms':>8} {'edges':>10} {'validate s':>11} {'build s':>8} {'mirror s':>9} {'peak RSS GiB':>13}")
    for n in args.sizes:
        s = hbn_sheet(n)
        t0 = time.perf_counter()
        validate_structure(s)
        t1 = time.perf_counter()
        g = build_graph(s, args.cutoff)
        t2 = time.perf_counter()
        g.mirror()
        t3 = time.perf_counter()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(f"{s.n_atoms:>8} {g.n_edges:>10} {t1 - t0:>11.2f} {t2 - t1:>8.2f} {t3 - t2:>9.2f} {rss:>13.2f}")
        rows.append({"atoms": s.n_atoms, "edges": g.n_edges, "cutoff_A": args.cutoff, "validate_s": t1 - t0,
                     "build_graph_s": t2 - t1, "mirror_s": t3 - t2, "peak_rss_GiB": rss})
    if args.json:
        print(f"raw results: {write_result(args.json, rows)}")


if __name__ == "__main__":
    main()
