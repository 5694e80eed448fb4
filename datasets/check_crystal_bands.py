"""Check one stored crystal structure against PySCF: re-run its SCF, compare bands off the k-meshes.

    python datasets/check_crystal_bands.py datasets/hbn-szv/train-2x2/00000

Reads the structure folder and its dataset's metadata.json (basis, pseudopotential, functional,
meshes, cutoff, smearing), re-runs the SCF, and prints max |E_stored(k) - E_get_bands(k)| in meV
over the occupied bands and the lowest 4 empty ones, at k-points on neither mesh.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from deeph_jax.dft.crystals import CrystalSettings, bands_check, build_cell, make_kmf, run_kscf
from deeph_jax.io import Structure, read_deeph_dir

K_POINTS = np.array([[0.13, 0.29, 0.0], [0.41, 0.07, 0.0], [0.071, 0.213, 0.0], [1 / 3, 2 / 3, 0.0], [0.45, 0.45, 0.0]])


def main(path: str) -> int:
    folder = Path(path)
    meta = json.loads((folder.parent / "metadata.json").read_text())
    stored = read_deeph_dir(folder)
    s = stored.structure
    structure = Structure(s.symbols, s.positions, s.cell, periodic=True)
    smearing = (meta.get("smearing") or {}).get("width_eV")
    settings = CrystalSettings(basis=meta["basis"], pseudo=meta["pseudopotential"], xc=meta["functional"],
                               kmesh=tuple(meta["scf_kmesh"]), dense_kmesh=tuple(meta["dense_kmesh"]),
                               cutoff=meta["cutoff_A"], smearing_eV=smearing,
                               conv_tol=meta["conv_tol_hartree_per_cell"])
    t0 = time.time()
    cell = build_cell(structure, settings, folder)
    mf = run_kscf(make_kmf(cell, cell.make_kpts(settings.kmesh), settings))
    kpts = K_POINTS.copy()
    kpts[:, 2] = 0.0 if meta["vacuum_directions"][2] else 0.17
    err = bands_check(stored, mf, kpts, n_empty=4)
    print(f"{folder}: band error vs get_bands, meV per k: {np.round(err * 1000, 3).tolist()}; "
          f"max {err.max() * 1000:.3f} meV ({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
