"""Audit stored crystal folders for PySCF's multigrid fault: integrate PySCF's atomic guess density D of each cell on
the generator's multigrid XC grid, and compare with its exact integral Tr(D S).

    python datasets/audit_grid_electrons.py datasets/hbn-szv/*/0* datasets/bilayer-graphene-szv/*/0*

The generator now makes this check before each SCF and runs the cell with FFTDF where it fails
(``deeph_jax.dft.crystals.exact_integrator``); folders written before that may hold a cell multigrid mishandled
(issue 19: a 28-atom twisted bilayer integrated to 111.41 of its 112 electrons and came out 18 eV per atom too low).
Seconds (8-18 atoms) to a minute (28+ atoms) per cell on one core. Prints one line per folder, and a summary.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deeph_jax.dft.crystals import GRID_ELECTRONS_RTOL, CrystalSettings, build_cell, multigrid_charge_error  # noqa: E402
from deeph_jax.io import read_deeph_dir  # noqa: E402


def charge_error(folder: Path) -> tuple[float, float]:
    """(relative charge error of the multigrid XC grid on PySCF's atomic guess density at Gamma, a1's angle from x
    in degrees) for the stored cell with its set's basis, as :func:`deeph_jax.dft.crystals.multigrid_charge_error` measures it."""
    structure = read_deeph_dir(folder, hamiltonian=None, overlap=False).structure
    settings = CrystalSettings.of_structure(folder)  # the set's basis: the grid depends on it
    cell = build_cell(structure, settings)
    error = multigrid_charge_error(cell, cell.make_kpts([1, 1, 1]), settings)
    return error, float(np.degrees(np.arctan2(structure.cell[0, 1], structure.cell[0, 0])))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", type=Path)
    args = ap.parse_args()
    bad = []
    for folder in args.folders:
        error, angle = charge_error(folder)
        ok = error <= GRID_ELECTRONS_RTOL
        print(f"{folder}: relative charge error {error:.1e} (a1 at {angle:.2f} deg from x) {'ok' if ok else 'WRONG'}",
              flush=True)
        if not ok:
            bad.append(str(folder))
    print(f"{len(args.folders) - len(bad)} of {len(args.folders)} folders integrate right" +
          (f"; wrong: {', '.join(bad)}" if bad else ""))


if __name__ == "__main__":
    main()
