"""Benchmark: 20 eigenvalues around E_F at Gamma for hBN cells of ~10^3 and ~10^4 atoms (run by hand).

The big cells tile a shipped DFT cell (datasets/hbn-szv/train-2x2/00000: a rattled 2x2 hBN sheet, 8 atoms,
gth-szv, H(R) within 10 A) n x n times. The tiling is exact: block (R, i, j) of the small cell, seen from
image t, becomes block (T, (t, i), (t', j)) of the supercell with t + R = T n + t'. So the supercell's
Gamma eigenvalues are the small cell's eigenvalues at k = (m1 / n, m2 / n, 0), an independent check.

Ours: read the folder, sparse H(Gamma), S(Gamma), shift-invert Lanczos (one sparse LU) for the 20 nearest
to E_F. DeepH-dock (its own venv, ~10^3 atoms only: it builds dense per-R matrices): HamiltonianObj
loading, then its ``diag`` with sparse_calc (scipy eigsh shift-invert on the dense H(k), S(k)) and
dense (scipy eigh, all bands). Each solver runs in its own process; peak RSS from getrusage.

    python bench/bench_bands.py [--sizes 11 35] [--deepx /tmp/venv-deepx-dock/bin/python] [--work /tmp/bench-bands]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SMALL = REPO / "datasets" / "hbn-szv" / "train-2x2" / "00000"
N_BANDS = 20

DEEPX_WORKER = r"""
import json, resource, sys, time
import numpy as np
from deepx_dock.compute.eigen.hamiltonian import HamiltonianObj
folder, sigma, nb, dense = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
t0 = time.perf_counter(); obj = HamiltonianObj(folder); t1 = time.perf_counter()
k = np.zeros((1, 3))
if dense:
    e = obj.diag(k, bands_only=True)[:, 0]
else:
    e = obj.diag(k, sparse_calc=True, bands_only=True, k=nb, sigma=sigma, which="LM", tol=0.0)[:, 0]
t2 = time.perf_counter()
print(json.dumps({"load_s": t1 - t0, "solve_s": t2 - t1, "rss_GB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                  "eig": np.sort(e).tolist()}))
"""


def tile(data, n: int):
    """The exact n x n x 1 supercell (see :func:`deeph_jax.io.tiling.tile_deeph`)."""
    from deeph_jax.io.tiling import tile_deeph

    return tile_deeph(data, (n, n, 1))


def expected(small, n: int, sigma: float) -> np.ndarray:
    """The N_BANDS eigenvalues nearest sigma of the n x n supercell at Gamma, from the small cell's k-mesh."""
    from deeph_jax.physics.bands import bands_at, nearest_bands

    ks = np.array([(a / n, b / n, 0.0) for a in range(n) for b in range(n)])
    e = np.sort(bands_at(small, ks).reshape(-1))[None, :]
    return nearest_bands(e, sigma, N_BANDS)[0]


def ours_worker(folder: str, sigma: float) -> None:
    import resource

    from deeph_jax.io import read_deeph_dir
    from deeph_jax.physics.bands import bands_at

    t0 = time.perf_counter()
    data = read_deeph_dir(folder)
    t1 = time.perf_counter()
    e = bands_at(data, np.zeros((1, 3)), N_BANDS, sigma)[0]
    t2 = time.perf_counter()
    print(json.dumps({"load_s": t1 - t0, "solve_s": t2 - t1,
                      "rss_GB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "eig": e.tolist()}))


def run(cmd) -> dict:
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[11, 35], help="tilings n (n x n x 8 atoms)")
    ap.add_argument("--deepx", default="/tmp/venv-deepx-dock/bin/python", help="DeepH-dock venv python")
    ap.add_argument("--deepx-max-atoms", type=int, default=2000)
    ap.add_argument("--deepx-dense", action="store_true", help="also time DeepH-dock's dense eigh (all bands)")
    ap.add_argument("--work", default="/tmp/bench-bands")
    ap.add_argument("--worker", nargs=2, metavar=("DIR", "SIGMA"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return ours_worker(args.worker[0], float(args.worker[1]))
    from deeph_jax.io import read_deeph_dir, write_deeph_dir

    small = read_deeph_dir(SMALL)
    sigma = float(small.info["fermi_energy_eV"])
    print(f"source {SMALL.relative_to(REPO)}: {small.structure.n_atoms} atoms, E_F (sigma) {sigma:.6f} eV, {N_BANDS} bands at Gamma")
    rows = []
    for n in args.sizes:
        folder = Path(args.work) / f"hbn-{n}x{n}"
        big = tile(small, n)
        if not (folder / "hamiltonian.h5").is_file():
            write_deeph_dir(folder, big)
        n_atoms, n_orb = big.structure.n_atoms, int(big.atom_offsets[-1])
        ref = expected(small, n, sigma)
        r = run([sys.executable, __file__, "--worker", str(folder), str(sigma)])
        diff = float(np.abs(np.asarray(r["eig"]) - ref).max()) if "eig" in r else float("nan")
        rows.append(("deeph-jax shift-invert", n_atoms, n_orb, r, diff))
        if n_atoms <= args.deepx_max_atoms and Path(args.deepx).exists():
            for dense in ([False, True] if args.deepx_dense else [False]):
                d = run([args.deepx, "-c", DEEPX_WORKER, str(folder), str(sigma), str(N_BANDS), "1" if dense else "0"])
                if "eig" in d:
                    e = np.asarray(d["eig"])
                    e = np.sort(e[np.argsort(np.abs(e - sigma))[:N_BANDS]])
                    dd = float(np.abs(e - ref).max())
                else:
                    dd = float("nan")
                rows.append((f"DeepH-dock {'dense eigh' if dense else 'eigsh (dense H(k))'}", n_atoms, n_orb, d, dd))
        for row in rows[-3:]:
            print_row(row)
    print("\n| solver | atoms | orbitals | load (s) | solve (s) | total (s) | peak RSS (GB) | max |e - exact| (eV) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print_row(row, table=True)


def print_row(row, table=False):
    name, n_atoms, n_orb, r, diff = row
    if "error" in r:
        print(f"| {name} | {n_atoms} | {n_orb} | failed: {r['error']} |||||" if table else f"{name}: {r['error']}")
        return
    tot = r["load_s"] + r["solve_s"]
    if table:
        print(f"| {name} | {n_atoms} | {n_orb} | {r['load_s']:.2f} | {r['solve_s']:.2f} | {tot:.2f} | {r['rss_GB']:.2f} | {diff:.2e} |")
    else:
        print(f"{name}: {n_atoms} atoms, load {r['load_s']:.2f} s, solve {r['solve_s']:.2f} s, RSS {r['rss_GB']:.2f} GB, "
              f"max |e - exact| {diff:.2e} eV")


if __name__ == "__main__":
    main()
