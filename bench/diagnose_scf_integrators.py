"""One DFT folder's cell, SCF at Gamma with the generator's multigrid integrator and with plain FFTDF (by hand).

    python bench/diagnose_scf_integrators.py datasets/bilayer-graphene-szv/test-twist-m1/00000 multigrid
    python bench/diagnose_scf_integrators.py datasets/bilayer-graphene-szv/test-twist-m1/00000 fftdf
    python bench/diagnose_scf_integrators.py datasets/bilayer-graphene-szv/test-twist-m1/00000 multigrid rotated
    python bench/diagnose_scf_integrators.py FOLDER veff [basis]

``veff`` compares V_eff on PySCF's atomic guess density, multigrid against FFTDF at Gamma (meV; no SCF), in the
stored cell or, with ``basis``, in the cell basis the generator's ``exact_integrator`` picks.

``rotated`` turns the cell rigidly first (a1 along x, a2 in the xy-plane); the energy must not change. With multigrid
it did (issue 19): Gamma-only -171.29 eV per atom as stored, -154.60 turned. Turning is no cure: the turned cell still
integrates the guess density 6e-3 electrons short, and a primitive hBN cell goes wrong by turning
(``deeph_jax.dft.crystals.multigrid_charge_error``, ``datasets/audit_grid_electrons.py``).

Prints the total energy per atom (eV). Issue 19's 28-atom twisted cell came out 18 eV per atom below the 2x2 bilayers
of the same settings, with E_F 5 eV lower; its h_core agrees across both integrators to 1.4e-8 Ha, so this compares
the SCF itself. Each run takes tens of minutes on one core for that cell.
"""

import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deeph_jax.dft.crystals import CrystalSettings, build_cell, make_kmf  # noqa: E402
from deeph_jax.io import read_deeph_dir  # noqa: E402
from deeph_jax.units import HARTREE_TO_EV  # noqa: E402


def _lower_triangular(structure):
    """The structure turned rigidly so that a1 lies along x and a2 in the xy-plane (ase's Cell.standard_form)."""
    from ase.cell import Cell

    cell, rotation = Cell(structure.cell).standard_form()
    return dataclasses.replace(structure, positions=structure.positions @ rotation.T, cell=cell.array)


def compare_veff(folder, structure, settings, picked_basis: bool) -> None:
    """Print mean and max |V_eff(multigrid) - V_eff(FFTDF)| (meV) on the guess density at Gamma, and the diagonal mean."""
    import numpy as np
    from pyscf.pbc import dft as pdft

    from deeph_jax.dft.crystals import exact_integrator

    if picked_basis:
        structure, _ = exact_integrator(structure, settings, folder)
    cell = build_cell(structure, settings)
    kpts = cell.make_kpts([1, 1, 1])
    multigrid = make_kmf(cell, kpts, settings)
    dm = np.asarray(multigrid.get_init_guess())
    t0 = time.perf_counter()
    v_mg = np.asarray(multigrid.get_veff(cell, dm))
    t1 = time.perf_counter()
    v_fft = np.asarray(pdft.KRKS(cell, kpts, xc=settings.xc).get_veff(cell, dm))
    t2 = time.perf_counter()
    d = np.abs(v_mg - v_fft) * HARTREE_TO_EV * 1e3
    diagonal = np.mean([np.abs(np.diagonal(x)).mean() for x in d])
    print(f"{folder} veff{' (picked basis)' if picked_basis else ''}: |multigrid - FFTDF| mean {d.mean():.4f} meV, "
          f"max {d.max():.4f} meV, diagonal mean {diagonal:.4f} meV; {t1 - t0:.0f} s vs {t2 - t1:.0f} s", flush=True)


def main() -> None:
    from pyscf.pbc import dft as pdft
    from pyscf.pbc.scf import addons

    folder, which = sys.argv[1], sys.argv[2]
    settings = CrystalSettings.of_structure(folder)  # the set's own basis and smearing, as the generator ran it
    structure = read_deeph_dir(folder, hamiltonian=None, overlap=False).structure
    if which == "veff":
        compare_veff(folder, structure, settings, "basis" in sys.argv[3:])
        return
    if "rotated" in sys.argv[3:]:
        structure = _lower_triangular(structure)
    cell = build_cell(structure, settings)
    kpts = cell.make_kpts([1, 1, 1])
    if which == "multigrid":
        mf = make_kmf(cell, kpts, settings)
    else:
        mf = pdft.KRKS(cell, kpts, xc=settings.xc)
        if settings.smearing_eV:
            mf = addons.smearing_(mf, sigma=settings.smearing_eV / HARTREE_TO_EV, method="fermi")
        mf.conv_tol = settings.conv_tol
    t0 = time.perf_counter()
    energy = mf.kernel()
    print(f"{folder} {' '.join(sys.argv[2:])}: {energy * HARTREE_TO_EV / cell.natm:.4f} eV per atom, converged {mf.converged}, "
          f"{time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
