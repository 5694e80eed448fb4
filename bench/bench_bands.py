"""Benchmark: 20 eigenvalues around E_F at Gamma for hBN cells of ~10^3 and ~10^4 atoms (run by hand).

The big cells tile a shipped DFT cell (datasets/hbn-szv/train-2x2/00000: a rattled 2x2 hBN sheet, 8 atoms,
gth-szv, H(R) within 10 A) n x n times. The tiling is exact: block (R, i, j) of the small cell, seen from
image t, becomes block (T, (t, i), (t', j)) of the supercell with t + R = T n + t'. So the supercell's
Gamma eigenvalues are the small cell's eigenvalues at k = (m1 / n, m2 / n, 0), an independent check.

Ours: read the folder, sparse H(Gamma), S(Gamma), shift-invert block Lanczos (a few steps at E_F locate the
band edges, then a factorization next to each edge that holds wanted states, see physics/bands.py; backend
--solver: MKL PARDISO LDL^T when installed, else SuperLU; see deeph_jax.physics.sparse_solve) for the 20
nearest to E_F; the factorization and the Lanczos iterations are timed apart. DeepH-dock (its own venv, ~10^3 atoms only: it builds dense per-R matrices): HamiltonianObj
loading, then its ``diag`` with sparse_calc (scipy eigsh shift-invert on the dense H(k), S(k)) and
dense (scipy eigh, all bands). Each solver runs in its own process; peak RSS from getrusage, load average
at the end of each. DeepH-dock's peak memory is estimated first (:func:`deepx_peak_GB`): a cell whose estimate
exceeds --deepx-max-GB is skipped, the others run with their address space capped there (a MemoryError is
recorded as the row's error); its eigenvalues are also compared with ours.

--near-range A: Gamma by Davidson on the full pencil, started from and preconditioned by the pencil kept within
A Angstrom (bands.PathTracker with ``near``; physics/near_range.py): sparser factorizations, for 10^5 atoms.

--path: a 40-point band path (Gamma-M-K-Gamma of the supercell) of the --path-size cell with bands_at
(ordering reused across k; each k after the first starts from the previous k's band edges, and the k that
needed the rough pass are recorded; --warm-start: Lanczos starts from the previous k's eigenvectors;
--track: Davidson from k to k preconditioned by earlier k's factorizations, bands.PathTracker), checked at
every k against the small cell's folded k-points.

Raw results go to bench/results/bands-<what>-<date>.json (command and date inside). On a shared machine
set OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 (oversubscribed BLAS threads slow every solve).

    python bench/bench_bands.py [--sizes 11 35] [--solver auto] [--deepx /tmp/venv-deepx-dock/bin/python]
    python bench/bench_bands.py --sizes 35 112 --near-range 5.5 --deepx-max-atoms 0
    python bench/bench_bands.py --path [--path-size 35] [--path-points 40] [--solver auto] [--track]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SMALL = REPO / "datasets" / "hbn-szv" / "train-2x2" / "00000"
N_BANDS = 20
DEEPX_BASE_GB = 0.1  # DeepH-dock's interpreter with numpy, scipy, h5py and deepx_dock imported (measured 0.07)

DEEPX_WORKER = r"""
import json, os, resource, sys, time
folder, sigma, nb, dense, cap = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1", int(sys.argv[5])
if cap:  # address space, so a MemoryError comes before the machine's OOM killer
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
import numpy as np
from deepx_dock.compute.eigen.hamiltonian import HamiltonianObj
def usage():
    return {"rss_GB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "load_avg": os.getloadavg()[0]}
stage, t0 = "load", time.perf_counter()
try:
    obj = HamiltonianObj(folder); t1 = time.perf_counter(); stage = "solve"
    k = np.zeros((1, 3))
    if dense:
        e = obj.diag(k, bands_only=True)[:, 0]
    else:
        e = obj.diag(k, sparse_calc=True, bands_only=True, k=nb, sigma=sigma, which="LM", tol=0.0)[:, 0]
except MemoryError as err:
    print(json.dumps({"error": f"MemoryError in {stage} after {time.perf_counter() - t0:.1f} s under the "
                      f"{cap / 2**30:.1f} GB address-space cap: {err}", **usage()}))
    sys.exit(0)
t2 = time.perf_counter()
print(json.dumps({"load_s": t1 - t0, "solve_s": t2 - t1, **usage(), "eig": np.sort(e).tolist()}))
"""


def deepx_peak_GB(n_orb: int, n_R: int) -> float:
    """DeepH-dock's estimated peak memory (GB = 2^30 bytes) for one k, read from its HamiltonianObj and diag.

    H(R) and S(R) are dense real (n_R, n_orb, n_orb) arrays: n_R units of 8 n_orb^2 bytes each (loading holds
    a dict of the matrices and their stacked copy, 3 n_R units at most). H(k) = sum_R e^{2 pi i k.R} H(R) is one
    matmul of a complex phase row with the real stack, which casts the whole stack to complex first (2 n_R
    units) while H(R), S(R) and S(k) (2 units) are held: 4 n_R + 4 units, the peak. The shift-invert LU of
    H(k) - sigma S(k) or the dense eigh afterwards needs ~4 more units with only 2 n_R + 4 held."""
    return (4 * n_R + 4) * 8 * n_orb**2 / 2**30 + DEEPX_BASE_GB


def tile(data, n: int):
    """The exact n x n x 1 supercell (see :func:`deeph_jax.io.tiling.tile_deeph`)."""
    from deeph_jax.io.tiling import tile_deeph

    return tile_deeph(data, (n, n, 1))


def expected(small, n: int, sigma: float, k=(0.0, 0.0, 0.0)) -> np.ndarray:
    """The N_BANDS eigenvalues nearest sigma of the n x n supercell at its k, from the small cell's k-points
    (k + m) / n that fold onto it."""
    from deeph_jax.physics.bands import bands_at, nearest_bands

    ks = np.array([((k[0] + a) / n, (k[1] + b) / n, k[2]) for a in range(n) for b in range(n)])
    e = np.sort(bands_at(small, ks).reshape(-1))[None, :]
    return nearest_bands(e, sigma, N_BANDS)[0]


def timed_factor(solver: str, is_complex: bool, log: dict, single: bool = False):
    """A factorization object whose factorize and solve calls are timed and counted into ``log``."""
    from deeph_jax.physics.sparse_solve import make_factorization

    f = make_factorization(solver, is_complex, single=single)
    factorize, solve = f.factorize, f.solve

    key = "factor_single_s" if single else "factor_s"

    def timed_factorize(a):
        t0 = time.perf_counter()
        out = factorize(a)
        log[key] = log.get(key, 0.0) + time.perf_counter() - t0
        return out

    def counted_solve(b):
        log["solves"] = log.get("solves", 0) + (1 if np.ndim(b) == 1 else np.shape(b)[1])
        return solve(b)

    f.factorize, f.solve = timed_factorize, counted_solve
    log["backend"] = f.name
    return f


def usage() -> dict:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return {"rss_GB": r.ru_maxrss / 2**20, "cpu_s": r.ru_utime + r.ru_stime, "load_avg": os.getloadavg()[0]}


def ours_worker(folder: str, sigma: float, solver: str, near_range: float | None = None) -> None:
    from deeph_jax.io import read_deeph_dir
    from deeph_jax.physics.bands import bloch_pencil, single_precision_rough, solve_shift_invert

    t0 = time.perf_counter()
    data = read_deeph_dir(folder)
    t1 = time.perf_counter()
    h, s = bloch_pencil(data, np.zeros(3))
    t2 = time.perf_counter()
    log = {}
    if near_range is not None:
        return near_range_worker(data, h, s, sigma, solver, near_range, log, t0, t1, t2)
    factor = timed_factor(solver, np.iscomplexobj(h.data), log)
    rough = None
    if single_precision_rough(factor, h.shape[0]):  # as solve_shift_invert would, but timed
        rough = timed_factor(solver, np.iscomplexobj(h.data), log, single=True)
    stats = {}
    e = solve_shift_invert(h, s, sigma, N_BANDS, factor=factor, stats=stats, rough_factor=rough)
    t3 = time.perf_counter()
    print(json.dumps({"load_s": t1 - t0, "solve_s": t3 - t1, "build_s": t2 - t1, "eigen_s": t3 - t2 - log["factor_s"] - log.get("factor_single_s", 0.0),
                      **log, **usage(), "shifts_eV": stats["shifts"], "lanczos_passes": stats["passes"],
                      "eig": e.tolist()}))


def near_range_worker(data, h, s, sigma: float, solver: str, radius: float, log: dict, t0, t1, t2) -> None:
    """Gamma through the near-range pencil (bands.PathTracker with ``near``): its states start Davidson on
    the full pencil and its single-precision factorizations precondition it."""
    from deeph_jax.physics import bands
    from deeph_jax.physics.near_range import within_distance

    bands.make_factorization = lambda solver, is_complex, single=False: timed_factor(solver, is_complex, log, single)
    near = within_distance(data, radius)
    near_pencil = bands.bloch_pencil(near, np.zeros(3))
    data.hamiltonian = data.overlap = near = None  # the blocks and their patterns are not needed any more
    t3 = time.perf_counter()
    stats = {}
    e = bands.PathTracker(sigma, N_BANDS, solver).solve(h, s, np.zeros(3), None, stats, near=near_pencil)
    t4 = time.perf_counter()
    factor = log.get("factor_s", 0.0) + log.get("factor_single_s", 0.0)
    print(json.dumps({"load_s": t1 - t0, "solve_s": t4 - t1, "build_s": t2 - t1, "near_build_s": t3 - t2,
                      "eigen_s": t4 - t3 - factor, **log, **usage(), "near_range_A": radius, "method": stats["method"],
                      "davidson_iterations": stats["iterations"], "shifts_eV": stats["shifts"], "eig": e.tolist()}))


def path_kpoints(n_points: int) -> np.ndarray:
    """``n_points`` k along Gamma-M-K-Gamma (reduced coordinates of the cell), even in the path parameter."""
    corners = np.array([[0, 0, 0], [0.5, 0, 0], [1 / 3, 1 / 3, 0], [0, 0, 0]])
    lengths = np.linalg.norm(np.diff(corners, axis=0), axis=1)
    u = np.linspace(0.0, lengths.sum(), n_points)
    return np.array([np.interp(u, np.concatenate([[0], np.cumsum(lengths)]), corners[:, c]) for c in range(3)]).T


def path_worker(folder: str, sigma: float, solver: str, n_points: int, warm_start: bool, track: bool = False,
                first: int | None = None, near_range: float | None = None) -> None:
    from tqdm import tqdm

    from deeph_jax.io import read_deeph_dir
    from deeph_jax.physics import bands

    data = read_deeph_dir(folder)
    log, stamps = {}, []

    def factor_for(solver, is_complex, single=False):  # times the factorizations bands_at makes
        return timed_factor(solver, is_complex, log, single=single)

    bands.make_factorization = factor_for

    def progress(ks):
        for k in tqdm(ks, desc="k-points", file=sys.stderr):
            stamps.append(time.perf_counter())
            yield k
        stamps.append(time.perf_counter())

    t0 = time.perf_counter()
    k_stats = []
    e = bands.bands_at(data, path_kpoints(n_points)[:first], N_BANDS, sigma, progress=progress, solver=solver,
                       warm_start=warm_start, stats=k_stats, track=track, near_range=near_range)
    total = time.perf_counter() - t0
    # a k whose shifts include sigma located its edges anew (rough pass); the others started from the previous k's
    rough = [i for i, st in enumerate(k_stats) if sigma in st.get("shifts", [])]
    print(json.dumps({"path_s": total, "per_k_s": np.diff(stamps).tolist(), **log, **usage(),
                      "k_with_rough_pass": rough, "solves_per_k": [st.get("solves") for st in k_stats],
                      "davidson_iterations_per_k": [st.get("iterations") for st in k_stats],
                      "factorizations_per_k": [len(st.get("shifts", [])) for st in k_stats],
                      "eig": e.tolist()}))


def run(cmd, stderr=subprocess.PIPE) -> dict:
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True)
    if out.returncode:
        err = (out.stderr or "").strip()
        return {"error": err.splitlines()[-1] if err else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _json_safe(x):
    """NaN (a run that did not happen) as null: strict JSON readers reject NaN."""
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return None if isinstance(x, float) and x != x else x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[11, 35], help="tilings n (n x n x 8 atoms)")
    ap.add_argument("--solver", default="auto", help="sparse factorization: auto, pardiso, superlu")
    ap.add_argument("--path", action="store_true", help="time a band path of the --path-size cell instead")
    ap.add_argument("--path-size", type=int, default=35)
    ap.add_argument("--path-points", type=int, default=40)
    ap.add_argument("--warm-start", action="store_true", help="path: start each k from the previous k's eigenvectors")
    ap.add_argument("--path-first", type=int, default=None,
                    help="path: only its first N k-points (same spacing; to compare methods on a few k)")
    ap.add_argument("--track", action="store_true",
                    help="path: Davidson from k to k with earlier factorizations as preconditioners (bands.PathTracker)")
    ap.add_argument("--near-range", type=float, default=None, metavar="A",
                    help="Davidson on the full pencil, started and preconditioned by the pencil within A Angstrom "
                         "(Gamma, or every k of --path)")
    ap.add_argument("--deepx", default="/tmp/venv-deepx-dock/bin/python", help="DeepH-dock venv python")
    ap.add_argument("--deepx-max-atoms", type=int, default=2000, help="DeepH-dock only for cells up to this size")
    ap.add_argument("--deepx-max-GB", type=float, default=12.0,
                    help="DeepH-dock: skip a cell whose estimated peak memory exceeds this; cap the others' address "
                         "space at it (0: no cap, no skipping)")
    ap.add_argument("--deepx-dense", action="store_true", help="also time DeepH-dock's dense eigh (all bands)")
    ap.add_argument("--work", default="/tmp/bench-bands")
    ap.add_argument("--results", default=str(REPO / "bench" / "results"), help="folder for the raw JSON")
    ap.add_argument("--worker", nargs=2, metavar=("DIR", "SIGMA"), help=argparse.SUPPRESS)
    ap.add_argument("--path-worker", nargs=2, metavar=("DIR", "SIGMA"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return ours_worker(args.worker[0], float(args.worker[1]), args.solver, args.near_range)
    if args.path_worker:
        return path_worker(args.path_worker[0], float(args.path_worker[1]), args.solver, args.path_points,
                           args.warm_start, args.track, args.path_first, args.near_range)
    from deeph_jax.io import read_deeph_dir

    small = read_deeph_dir(SMALL)
    sigma = float(small.info["fermi_energy_eV"])
    print(f"source {SMALL.relative_to(REPO)}: {small.structure.n_atoms} atoms, E_F (sigma) {sigma:.6f} eV, {N_BANDS} bands")
    record = {"command": "python " + " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
              "date": datetime.datetime.now().isoformat(timespec="seconds"), "cpu_count": os.cpu_count(),
              "threads": {v: os.environ.get(v) for v in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")},
              "sigma_eV": sigma, "n_bands": N_BANDS, "load_avg_start": os.getloadavg()}
    if args.path:
        record["path"] = bench_path(args, small, sigma)
        name = f"bands-path-{args.solver}-{args.path_size}" + ("-warm" if args.warm_start else "") + \
            ("-track" if args.track else "") + (f"-first{args.path_first}" if args.path_first else "") + \
            (f"-near{args.near_range:g}" if args.near_range is not None else "")
    else:
        record["gamma"] = bench_gamma(args, small, sigma)
        name = f"bands-gamma-{args.solver}-" + "-".join(map(str, args.sizes)) + \
            (f"-near{args.near_range:g}" if args.near_range is not None else "")
    record["load_avg_end"] = os.getloadavg()
    out = Path(args.results) / f"{name}-{datetime.date.today().isoformat()}.json"
    out.write_text(json.dumps(_json_safe(record), indent=1, allow_nan=False) + "\n")
    print(f"raw results: {out}")


def cell_folder(work, small, n: int) -> Path:
    """The n x n tiled cell as a DeepH folder under ``work``, tiled and written on the first run only (the
    workers, and bench_kpm.py, read it like any DeepH folder)."""
    from deeph_jax.io import write_deeph_dir

    folder = Path(work) / f"hbn-{n}x{n}"
    if not (folder / "hamiltonian.h5").is_file():
        write_deeph_dir(folder, tile(small, n))
    return folder


def tiled_sizes(small, n: int) -> tuple[int, int, int]:
    """Atoms, orbitals and lattice vectors R of H(R) of the n x n tiling, from the small cell alone: a block
    (i, j, R) of the small cell at tile t lands in supercell vector floor((t + R) / n) in plane."""
    R = np.unique(small.hamiltonian.atom_pairs[:, :3], axis=0)
    tiles = np.array([[a, b, 0] for a in range(n) for b in range(n)])
    n_R = len(np.unique(np.floor_divide(tiles[:, None, :] + R[None], [n, n, 1]).reshape(-1, 3), axis=0))
    return small.structure.n_atoms * n * n, int(small.atom_offsets[-1]) * n * n, n_R


def bench_path(args, small, sigma: float) -> dict:
    n = args.path_size
    folder = cell_folder(args.work, small, n)
    n_atoms, n_orb, _ = tiled_sizes(small, n)
    ks = path_kpoints(args.path_points)[: args.path_first]
    cmd = [sys.executable, __file__, "--path-worker", str(folder), str(sigma), "--solver", args.solver,
           "--path-points", str(args.path_points)] + (["--warm-start"] if args.warm_start else []) + \
        (["--track"] if args.track else []) + \
        (["--path-first", str(args.path_first)] if args.path_first else []) + \
        (["--near-range", str(args.near_range)] if args.near_range is not None else [])
    r = run(cmd, stderr=None)  # tqdm's bar (with ETA) shows live
    if "eig" in r:
        ref = np.array([expected(small, n, sigma, k) for k in ks])
        r["max_abs_error_eV"] = float(np.abs(np.asarray(r.pop("eig")) - ref).max())
        print(f"{r['backend']}: {n_atoms} atoms, {len(ks)} k-points in {r['path_s']:.1f} s "
              f"({np.median(r['per_k_s']):.1f} s per k median), {r['solves']} solves, RSS {r['rss_GB']:.2f} GB, "
              f"max |e - exact| {r['max_abs_error_eV']:.2e} eV")
    else:
        print(f"path failed: {r['error']}")
    return {"atoms": n_atoms, "orbitals": n_orb, "kpoints": ks.tolist(), "warm_start": args.warm_start,
            "track": args.track, "near_range_A": args.near_range, **r}


def bench_gamma(args, small, sigma: float) -> list:
    rows = []
    for n in args.sizes:
        folder = cell_folder(args.work, small, n)
        n_atoms, n_orb, n_R = tiled_sizes(small, n)
        ref = expected(small, n, sigma)
        near = [] if args.near_range is None else ["--near-range", str(args.near_range)]
        r = run([sys.executable, __file__, "--worker", str(folder), str(sigma), "--solver", args.solver] + near)
        diff = float(np.abs(np.asarray(r["eig"]) - ref).max()) if "eig" in r else float("nan")
        start = len(rows)
        how = "shift-invert" if args.near_range is None else f"near-range {args.near_range:g} A + Davidson"
        rows.append((f"deeph-jax {how}, {r.get('backend', args.solver)}", n_atoms, n_orb, r, diff))
        if n_atoms <= args.deepx_max_atoms and Path(args.deepx).exists():
            for dense in ([False, True] if args.deepx_dense else [False]):
                rows.append(bench_deepx(args, folder, n_atoms, n_orb, n_R, sigma, dense, ref, r.get("eig")))
        for row in rows[start:]:
            print_row(row)
    print("\n| solver | atoms | orbitals | load (s) | factor (s) | Lanczos (s) | solves | total (s) | peak RSS (GB) "
          "| max |e - exact| (eV) | max |e - ours| (eV) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print_row(row, table=True)
    return [{"solver": name, "atoms": a, "orbitals": o, "max_abs_error_eV": d, **r} for name, a, o, r, d in rows]


def bench_deepx(args, folder, n_atoms: int, n_orb: int, n_R: int, sigma: float, dense: bool, ref, ours) -> tuple:
    """One DeepH-dock row: skipped when its estimated peak memory exceeds --deepx-max-GB, else run under that
    address-space cap; its N_BANDS eigenvalues nearest sigma against the exact ones and ours."""
    name = f"DeepH-dock {'dense eigh' if dense else 'eigsh (dense H(k))'}"
    estimate = deepx_peak_GB(n_orb, n_R)
    if args.deepx_max_GB and estimate > args.deepx_max_GB:
        d = {"error": f"skipped: estimated peak {estimate:.1f} GB ({n_R} R's of {n_orb}^2 dense) > "
                      f"--deepx-max-GB {args.deepx_max_GB:g}"}
    else:
        cap = int(args.deepx_max_GB * 2**30)
        d = run([args.deepx, "-c", DEEPX_WORKER, str(folder), str(sigma), str(N_BANDS), "1" if dense else "0",
                 str(cap)])
    d.update(estimate_GB=estimate, n_R=n_R, cap_GB=args.deepx_max_GB)
    diff = float("nan")
    if "eig" in d:
        e = np.asarray(d["eig"])
        e = np.sort(e[np.argsort(np.abs(e - sigma))[:N_BANDS]])
        d["eig"] = e.tolist()
        diff = float(np.abs(e - ref).max())
        if ours is not None:
            d["max_abs_diff_vs_ours_eV"] = float(np.abs(e - np.asarray(ours)).max())
    return name, n_atoms, n_orb, d, diff


def print_row(row, table=False):
    name, n_atoms, n_orb, r, diff = row
    if "error" in r:
        why = r["error"] if r["error"].startswith("skipped") else f"failed: {r['error']}"
        print(f"| {name} | {n_atoms} | {n_orb} | {why} ||||||||" if table else f"{name}: {r['error']}")
        return
    tot = r["load_s"] + r["solve_s"]
    vs_ours = f"{r['max_abs_diff_vs_ours_eV']:.2e}" if "max_abs_diff_vs_ours_eV" in r else ""
    factor, eigen = r.get("factor_s"), r.get("eigen_s")
    if factor is not None:  # double and single precision (the rough pass) together
        factor += r.get("factor_single_s", 0.0)
    split = f"{factor:.2f} | {eigen:.2f} | {r['solves']}" if factor is not None else f"| {r['solve_s']:.2f} |"
    if table:
        print(f"| {name} | {n_atoms} | {n_orb} | {r['load_s']:.2f} | {split} | {tot:.2f} | {r['rss_GB']:.2f} "
              f"| {diff:.2e} | {vs_ours} |")
    else:
        print(f"{name}: {n_atoms} atoms, load {r['load_s']:.2f} s, solve {r['solve_s']:.2f} s"
              + (f" (build {r['build_s']:.2f} s, factor {factor:.2f} s (single {r.get('factor_single_s', 0):.2f} s), "
                 f"Lanczos {eigen:.2f} s, {r['solves']} solves)" if factor is not None else "")
              + f", RSS {r['rss_GB']:.2f} GB, max |e - exact| {diff:.2e} eV"
              + (f", max |e - ours| {vs_ours} eV" if vs_ours else ""))


if __name__ == "__main__":
    main()
