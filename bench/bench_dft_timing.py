"""Seconds per structure of the DFT generators (PySCF), and what the shipped datasets recorded.

    python bench/bench_dft_timing.py                      # water x5 + hBN primitive cell
    python bench/bench_dft_timing.py --crystal 2,2,1      # also one rattled 8-atom hBN
    python bench/bench_dft_timing.py --datasets datasets  # only summarize shipped datasets

Wall-clock seconds on this machine with the given thread count (PySCF OpenMP); a machine
shared with other jobs reads slower. The crystal generator records its own SCF and dense-Fock
seconds in each structure's info.json (seconds_scf, seconds_dense_fock); --datasets averages them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def bench_water(n: int, basis: str) -> dict:
    from deeph_jax.dft.molecules import MoleculeSettings, compute_molecule, rng_for, water_geometry

    settings = MoleculeSettings(basis=basis)
    compute_molecule(water_geometry(rng_for(99, 0)), settings)  # warm-up: imports, basis parsing
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        compute_molecule(water_geometry(rng_for(99, i + 1)), settings)
        times.append(time.perf_counter() - t0)
    return {"case": f"water PBE/{basis}", "n": n, "seconds_mean": float(np.mean(times)),
            "seconds_min": float(np.min(times))}


def bench_crystal(reps, rattle: float, kmesh=None) -> dict:
    from deeph_jax.dft.crystals import CrystalSettings, CrystalSource, compute_crystal

    source = CrystalSource(name="hbn", supercell=tuple(reps), rattle=rattle)
    structure = source.geometry(99, 0)
    settings = CrystalSettings(kmesh=tuple(kmesh) if kmesh else None)
    t0 = time.perf_counter()
    data, _, extras = compute_crystal(structure, settings)
    total = time.perf_counter() - t0
    return {"case": f"hBN {reps[0]}x{reps[1]} ({structure.n_atoms} atoms), gth-szv PBE multigrid",
            "scf_kmesh": list(extras["scf_mesh"]), "dense_kmesh": list(extras["dense_mesh"]),
            "seconds_scf": extras["t_scf"], "seconds_dense_fock": extras["t_dense"], "seconds_total": total,
            "blocks": data.hamiltonian.n_blocks}


def summarize_datasets(root: Path) -> list[dict]:
    out = []
    for meta_path in sorted(root.rglob("metadata.json")):
        ds = meta_path.parent
        meta = json.loads(meta_path.read_text())
        dirs = [p for p in ds.iterdir() if p.is_dir() and not p.name.startswith(".")]
        size = sum(f.stat().st_size for f in ds.rglob("*") if f.is_file())
        row = {"dataset": str(ds), "structures": len(dirs), "bytes": size, "kind": meta.get("kind")}
        scf, dense = [], []
        for d in dirs:
            info = json.loads((d / "info.json").read_text())
            if "seconds_scf" in info:
                scf.append(info["seconds_scf"])
                dense.append(info["seconds_dense_fock"])
        if scf:
            row["seconds_per_structure_mean"] = float(np.mean(np.add(scf, dense)))
            row["seconds_scf_mean"] = float(np.mean(scf))
            row["seconds_dense_fock_mean"] = float(np.mean(dense))
            row["seconds_scf_range"] = [float(np.min(scf)), float(np.max(scf))]
            row["seconds_dense_fock_range"] = [float(np.min(dense)), float(np.max(dense))]
        out.append(row)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--water", type=int, default=5, help="water structures to time (0: skip)")
    p.add_argument("--basis", default="def2-SVP")
    p.add_argument("--crystal", action="append", default=None,
                   help="hBN supercell to time, e.g. 1,1,1 or 2,2,1 (repeatable; default 1,1,1)")
    p.add_argument("--no-crystal", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="OpenMP threads (default: PySCF's choice)")
    p.add_argument("--datasets", default=None, help="only summarize the shipped datasets under this folder")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    from deeph_jax.dft.pyscf_common import limit_threads

    limit_threads(args.threads)
    results = []
    if args.datasets:
        results = summarize_datasets(Path(args.datasets))
    else:
        if args.water:
            results.append(bench_water(args.water, args.basis))
            print(json.dumps(results[-1]), flush=True)
        if not args.no_crystal:
            for text in args.crystal or ["1,1,1"]:
                reps = [int(x) for x in text.split(",")]
                results.append(bench_crystal(reps, rattle=0.0 if reps == [1, 1, 1] else 0.1))
                print(json.dumps(results[-1]), flush=True)
    if args.datasets:
        for r in results:
            print(json.dumps(r))
    if args.json:
        from deeph_jax.provenance import write_result

        print(f"raw results: {write_result(args.json, results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
