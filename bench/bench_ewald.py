"""Benchmark: long-range Ewald potentials of rattled hBN sheets, particle-mesh vs direct (run by hand).

For each size: the erf part of the potential of +-0.4 e charges (B / N) by particle-mesh Ewald
(`deeph_jax.physics.ewald.pme_long_range_potential`, grid 0.8 A, order 6, alpha 0.3 / A), its wall time
and peak RSS, and, where the O(N^2) direct kernel fits, the largest difference from it.

    python bench/bench_ewald.py [--sizes 20 100 224] [--json bench/results/ewald.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # time this checkout, not another installed copy


def main() -> None:
    from deeph_jax.dft.crystals import named_cell, supercell
    from deeph_jax.physics.ewald import long_range_kernel, pme_long_range_potential

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[20, 100, 224], help="n of the n x n sheet (2 n^2 atoms)")
    ap.add_argument("--alpha", type=float, default=0.3)
    ap.add_argument("--direct-max-atoms", type=int, default=3000)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rows = []
    for n in args.sizes:
        sc = supercell(named_cell("hbn"), (n, n, 1))
        pos = sc.positions + np.random.default_rng(0).normal(0, 0.1, sc.positions.shape)
        q = np.where(np.asarray(sc.symbols) == "B", 0.4, -0.4)
        t0 = time.perf_counter()
        phi = pme_long_range_potential(pos, sc.cell, q, args.alpha)
        row = {"atoms": len(pos), "pme_s": time.perf_counter() - t0,
               "peak_rss_GiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
               "max_abs_phi_V": float(np.abs(phi).max())}
        if len(pos) <= args.direct_max_atoms:
            direct = long_range_kernel(pos, sc.cell, args.alpha) @ q
            row["max_diff_vs_direct_V"] = float(np.abs(phi - direct).max())
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"command": "python bench/bench_ewald.py " + " ".join(sys.argv[1:]),
                                               "date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
