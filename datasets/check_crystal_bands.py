"""Check one stored crystal structure against PySCF: re-run its SCF, compare bands off the k-meshes.

    python datasets/check_crystal_bands.py datasets/hbn-szv/train-2x2/00000 [MORE ...] [--json FILE]

Reads each structure folder and its dataset's metadata.json (basis, pseudopotential, functional,
meshes, cutoff, smearing; a mesh recorded per structure in info.json wins), re-runs the SCF, and
prints max |E_stored(k) - E_get_bands(k)| in meV over the occupied bands and the lowest 4 empty
ones, at k-points on neither mesh. The graphene figure of datasets/README.md:

    deeph-jax generate crystal --name graphene --n 1 --out /tmp/graphene-check
    python datasets/check_crystal_bands.py /tmp/graphene-check/00000 --json bench/results/check_bands_graphene.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from deeph_jax.dft.crystals import (GRID_ELECTRONS_RTOL, CrystalSettings, bands_check, build_cell, make_kmf,
                                   multigrid_charge_error, run_kscf)
from deeph_jax.io import Structure, read_deeph_dir
from deeph_jax.provenance import write_result

K_POINTS = np.array([[0.13, 0.29, 0.0], [0.41, 0.07, 0.0], [0.071, 0.213, 0.0], [1 / 3, 2 / 3, 0.0], [0.45, 0.45, 0.0]])


def check(folder: Path) -> dict:
    meta = json.loads((folder.parent / "metadata.json").read_text())
    stored = read_deeph_dir(folder)
    s = stored.structure
    structure = Structure(s.symbols, s.positions, s.cell, periodic=True)
    settings = CrystalSettings.of_structure(folder)
    t0 = time.time()
    cell = build_cell(structure, settings, folder)
    scf_kpts = cell.make_kpts(settings.kmesh)
    # the stored basis fixes the k-points compared, so where multigrid misses charge in it, FFTDF instead
    if multigrid_charge_error(cell, scf_kpts, settings) > GRID_ELECTRONS_RTOL:
        settings = replace(settings, multigrid=False)
    mf = run_kscf(make_kmf(cell, scf_kpts, settings))
    kpts = K_POINTS.copy()
    kpts[:, 2] = 0.0 if meta["vacuum_directions"][2] else 0.17
    err = bands_check(stored, mf, kpts, n_empty=4)
    seconds = time.time() - t0
    print(f"{folder}: band error vs get_bands, meV per k: {np.round(err * 1000, 3).tolist()}; "
          f"max {err.max() * 1000:.3f} meV ({seconds:.0f} s)", flush=True)
    return {"structure": str(folder), "kpoints": kpts.tolist(), "max_error_meV_per_k": (err * 1000).tolist(),
            "max_error_meV": float(err.max() * 1000), "seconds": seconds}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", help="structure folders (DATASET/NNNNN)")
    ap.add_argument("--json", default=None, help="raw results (e.g. bench/results/check_bands_hbn.json)")
    args = ap.parse_args(argv)
    rows = [check(Path(f)) for f in args.folders]
    if args.json:
        print(f"raw results: {write_result(args.json, rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
