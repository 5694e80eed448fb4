"""Benchmark: KPM DOS and Fermi level of tiled hBN sheets at Gamma (run by hand; issue 18).

The sheets tile a shipped DFT cell (datasets/hbn-szv/train-2x2/00000, 8 atoms, gth-szv, H(R) within 10 A)
n x n times, so the exact spectrum at Gamma is the small cell's on the folded n x n k-mesh: the Fermi level
(mid-gap) and the DOS are known at any size. Each tiled cell is written once to --work as a DeepH folder and
read back as a user's predicted H would be. For each n: read, H(Gamma) and S(Gamma); the S factor; spectral
bounds (Lanczos); stochastic moments; the Fermi level; wall time of each, peak RSS, and the errors against the
exact answer (the DOS compared with the exact-moment DOS under the same kernel, within 3 standard errors).

    python bench/bench_kpm.py [--sizes 35 112] [--moments 400] [--vectors 4] [--work /tmp/bench-bands]
                              [--json bench/results/kpm.json]
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
import scipy.stats

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run this checkout, not another installed copy
SMALL = REPO / "datasets" / "hbn-szv" / "train-2x2" / "00000"


def exact_spectrum(small, n: int) -> np.ndarray:
    from deeph_jax.physics.bands import bands_at

    ks = np.array([(a / n, b / n, 0.0) for a in range(n) for b in range(n)])
    return np.sort(bands_at(small, ks).reshape(-1))


def one(small, n: int, n_moments: int, n_vectors: int, work: Path) -> dict:
    from deeph_jax.io import read_deeph_dir
    from deeph_jax.physics.bands import bloch_pencil
    from deeph_jax.physics.fermi import fermi_level
    from deeph_jax.physics.kpm import (exact_moments, jackson_kernel, kpm_dos, kpm_fermi_level, kpm_moments,
                                       resolution_eV)

    from bench_bands import cell_folder  # one writer of the tiled folders both benches share

    folder = cell_folder(work, small, n)
    t0 = time.perf_counter()
    big = read_deeph_dir(folder)
    h, s = bloch_pencil(big, np.zeros(3))
    n_atoms, n_el = big.structure.n_atoms, big.info["occupation"]
    del big  # its blocks: only H(Gamma) and S(Gamma) are used from here on
    t_read = time.perf_counter() - t0
    moments = kpm_moments(h, s, n_moments, n_vectors, progress=True)
    t0 = time.perf_counter()
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
    stages = {f"{k}_s": v for k, v in moments.timings.items()}
    return {
        "n": n, "atoms": n_atoms, "orbitals": h.shape[0], "nnz_H": int(h.nnz),
        "moments": n_moments, "vectors": n_vectors, "resolution_eV": resolution_eV(moments),
        "read_s": t_read, **stages, "fermi_s": t_fermi, "kpm_total_s": moments.seconds + t_fermi,
        "peak_rss_GiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "load_average_1min": os.getloadavg()[0], "threads": os.environ.get("OMP_NUM_THREADS"),
        "fermi_kpm_eV": kpm.fermi_eV, "fermi_exact_eV": ef, "fermi_error_meV": 1e3 * (kpm.fermi_eV - ef),
        "gap_kpm_eV": kpm.gap_eV, "gap_exact_eV": gap,
        "dos_within_3_sigma": float(np.mean(np.abs(dos - ref) <= 3 * err + 1e-9)),
        # what purely stochastic errors give: the standard error of R vectors follows Student's t, R - 1 dof
        "dos_within_3_sigma_expected": float(2 * scipy.stats.t.cdf(3.0, n_vectors - 1) - 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[11, 35], help="tilings n (n x n x 8 atoms)")
    ap.add_argument("--moments", type=int, default=400)
    ap.add_argument("--vectors", type=int, default=4)
    ap.add_argument("--work", default="/tmp/bench-bands", help="folder for the tiled cells (as bench_bands.py --work)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    from deeph_jax.io import read_deeph_dir

    small = read_deeph_dir(SMALL)
    rows = []
    for n in args.sizes:
        r = one(small, n, args.moments, args.vectors, Path(args.work))
        rows.append(r)
        print(f"{r['atoms']:>7} atoms ({r['orbitals']} orbitals): read {r['read_s']:.1f} s, S factor "
              f"{r['overlap_s']:.1f} s, bounds {r['bounds_s']:.1f} s, moments {r['moments_s']:.1f} s "
              f"(KPM {r['kpm_total_s']:.1f} s), E_F {r['fermi_kpm_eV']:.4f} eV vs exact {r['fermi_exact_eV']:.4f} "
              f"({r['fermi_error_meV']:+.1f} meV, resolution {1e3 * r['resolution_eV']:.0f} meV), DOS within "
              f"3 sigma at {100 * r['dos_within_3_sigma']:.1f} % of points (Student's t: "
              f"{100 * r['dos_within_3_sigma_expected']:.1f} %), peak RSS {r['peak_rss_GiB']:.2f} GiB",
              flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"command": "python bench/bench_kpm.py " + " ".join(
            f"--{k} {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in vars(args).items() if v),
            "date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=1, default=float))


if __name__ == "__main__":
    main()
