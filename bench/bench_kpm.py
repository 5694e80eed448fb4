"""Benchmark: KPM DOS and Fermi level of tiled hBN sheets at Gamma (run by hand; issue 18).

The sheets tile a shipped DFT cell (datasets/hbn-szv/train-2x2/00000, 8 atoms, gth-szv, H(R) within 10 A)
n x n times, so the exact spectrum at Gamma is the small cell's on the folded n x n k-mesh: the Fermi level
(mid-gap) and the DOS are known at any size. For each n: build H(Gamma), S(Gamma); spectral bounds
(Lanczos); stochastic moments; DOS with error bars; Fermi level; wall times, peak RSS, and the errors
against the exact answer (the DOS compared with the exact-moment DOS under the same kernel).

    python bench/bench_kpm.py [--sizes 11 35 112] [--moments 1000] [--vectors 16] [--json bench/results/kpm.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import resource
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run this checkout, not another installed copy
SMALL = REPO / "datasets" / "hbn-szv" / "train-2x2" / "00000"


def exact_spectrum(small, n: int) -> np.ndarray:
    from deeph_jax.physics.bands import bands_at

    ks = np.array([(a / n, b / n, 0.0) for a in range(n) for b in range(n)])
    return np.sort(bands_at(small, ks).reshape(-1))


def one(small, n: int, n_moments: int, n_vectors: int) -> dict:
    from deeph_jax.io.tiling import tile_deeph
    from deeph_jax.physics.fermi import fermi_level
    from deeph_jax.physics.kpm import (exact_moments, jackson_kernel, kpm_dos, kpm_fermi_level, kpm_moments,
                                       resolution_eV, spectral_bounds)

    t0 = time.perf_counter()
    big = tile_deeph(small, (n, n, 1))
    h = big.hamiltonian.bloch_sparse(np.zeros(3), big.atom_offsets).real.tocsr()
    s = big.overlap.bloch_sparse(np.zeros(3), big.atom_offsets).real.tocsr()
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    bounds = spectral_bounds(h, s)
    t_bounds = time.perf_counter() - t0
    moments = kpm_moments(h, s, n_moments, n_vectors, bounds=bounds, progress=True)
    t0 = time.perf_counter()
    n_el = big.info["occupation"]
    kpm = kpm_fermi_level(moments, n_el)
    t_fermi = time.perf_counter() - t0
    exact = exact_spectrum(small, n)
    ef, gap = fermi_level(exact[None, :], n_el)
    mu = exact_moments(exact, moments.center, moments.half_width, n_moments)
    grid = np.linspace(exact.min(), exact.max(), 2000)
    dos, err = kpm_dos(moments, grid)
    g = jackson_kernel(n_moments) * mu
    x = (grid - moments.center) / moments.half_width
    t = np.cos(np.outer(np.arange(n_moments), np.arccos(x)))
    ref = 2.0 * (g[0] + 2 * g[1:] @ t[1:]) / (np.pi * np.sqrt(1 - x**2) * moments.half_width)
    return {
        "n": n, "atoms": big.structure.n_atoms, "orbitals": h.shape[0], "nnz_H": int(h.nnz),
        "moments": n_moments, "vectors": n_vectors, "resolution_eV": resolution_eV(moments),
        "build_s": t_build, "bounds_s": t_bounds, "moments_s": moments.seconds, "fermi_s": t_fermi,
        "peak_rss_GiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "load_average_1min": os.getloadavg()[0],
        "fermi_kpm_eV": kpm.fermi_eV, "fermi_exact_eV": ef, "fermi_error_meV": 1e3 * (kpm.fermi_eV - ef),
        "gap_kpm_eV": kpm.gap_eV, "gap_exact_eV": gap,
        "dos_within_3_sigma": float(np.mean(np.abs(dos - ref) <= 3 * err + 1e-9)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[11, 35], help="tilings n (n x n x 8 atoms)")
    ap.add_argument("--moments", type=int, default=1000)
    ap.add_argument("--vectors", type=int, default=16)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    from deeph_jax.io import read_deeph_dir

    small = read_deeph_dir(SMALL)
    rows = []
    for n in args.sizes:
        r = one(small, n, args.moments, args.vectors)
        rows.append(r)
        print(f"{r['atoms']:>7} atoms ({r['orbitals']} orbitals): bounds {r['bounds_s']:.1f} s, moments "
              f"{r['moments_s']:.1f} s, E_F {r['fermi_kpm_eV']:.4f} eV vs exact {r['fermi_exact_eV']:.4f} "
              f"({r['fermi_error_meV']:+.1f} meV, resolution {1e3 * r['resolution_eV']:.0f} meV), DOS within "
              f"3 sigma at {100 * r['dos_within_3_sigma']:.1f} % of points, peak RSS {r['peak_rss_GiB']:.2f} GiB",
              flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"command": "python bench/bench_kpm.py " + " ".join(
            f"--{k} {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in vars(args).items() if v),
            "date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=1, default=float))


if __name__ == "__main__":
    main()
