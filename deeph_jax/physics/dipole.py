"""Molecular dipoles from a density matrix of (H, S), ionic charges, and Mulliken point charges.

The density is D = spin_factor * C_occ C_occ^dagger from the lowest occupied generalized
eigenvectors of (H, S) (closed shell). The dipole is

    mu = sum_A Z_A R_A - Tr(D r),     r_{mu nu} = <mu| r |nu>  (exact integrals, PySCF int1e_r),

in e*Angstrom about the Cartesian origin; Debye via :data:`deeph_jax.units.E_ANGSTROM_TO_DEBYE`.
Z_A are the nuclear charges of the basis's atoms (effective charges when it carries an ECP).
"""

from __future__ import annotations

import numpy as np

from deeph_jax.errors import DeephError
from deeph_jax.physics.bands import solve_dense
from deeph_jax.physics.fermi import occupied_bands, spin_factor
from deeph_jax.units import BOHR_TO_ANGSTROM


def density_matrix(h: np.ndarray, s: np.ndarray, n_electrons: float, spinful: bool = False, path=None) -> np.ndarray:
    """(n, n) closed-shell density matrix (spin summed) of the lowest N_e / spin_factor states."""
    n_occ = occupied_bands(n_electrons, spinful, path)
    _, c = solve_dense(h, s, (0, 0, 0), vectors=True, path=path)
    c = c[:, :n_occ]
    return spin_factor(spinful) * (c @ c.conj().T)


def mulliken_charges(d: np.ndarray, s: np.ndarray, atom_offsets: np.ndarray) -> np.ndarray:
    """(n_atoms,) electrons on each atom: sum over its orbitals of (D S)_{nu nu}."""
    pop = np.real(np.einsum("ij,ji->i", d, s))
    return np.add.reduceat(pop, np.asarray(atom_offsets[:-1]))


def point_charge_dipole(charges: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """sum_A q_A R_A: (3,) e*Angstrom for net charges q_A (e) at positions R_A (Angstrom)."""
    return np.asarray(charges) @ np.asarray(positions)


def position_integrals(structure, basis: str, path=None):
    """Exact <mu| r |nu> (3, n, n) in Angstrom in DeepH orbital order, and the nuclear charges Z_A.

    A PySCF molecule with the same atoms and basis; p shells reordered (x, y, z) -> (y, z, x).
    """
    from pyscf import gto

    from deeph_jax.dft.pyscf_common import ao_permutation

    try:
        mol = gto.M(atom=[(s, tuple(p)) for s, p in zip(structure.symbols, structure.positions)],
                    unit="Angstrom", basis=basis, spin=None, cart=False, verbose=0)
    except Exception as exc:  # unknown basis name, element missing from the basis
        raise DeephError(f"cannot build basis {basis!r} for these atoms ({type(exc).__name__}: {exc})", path) from None
    perm = ao_permutation(mol)
    r = mol.intor("int1e_r")[:, perm][:, :, perm] * BOHR_TO_ANGSTROM
    return r, np.asarray(mol.atom_charges(), dtype=np.float64)


def molecular_dipole(data, basis: str | None = None) -> tuple[np.ndarray, dict]:
    """Dipole (3,) e*Angstrom of a molecular :class:`~deeph_jax.io.DeephStructure` and details.

    ``basis`` defaults to info.json ``basis``. Details: nuclear charges, Mulliken charges and the
    Mulliken point-charge dipole of the same (H, S).
    """
    basis = basis or data.info.get("basis")
    path = data.path
    if not basis:
        raise DeephError("the dipole needs the basis set name: info.json has no 'basis'; pass --basis", path)
    if data.spinful:
        raise DeephError("spinful molecular dipoles are not supported", path)
    r, z = position_integrals(data.structure, basis, path)
    n = int(data.atom_offsets[-1])
    if r.shape[1] != n:
        raise DeephError(f"basis {basis!r} has {r.shape[1]} functions but the data have {n}: wrong --basis?", path)
    n_e = data.occupation if data.occupation is not None else z.sum() - data.info.get("charge", 0)
    h, s = data.hamiltonian_k((0, 0, 0)).real, data.overlap_k((0, 0, 0)).real
    d = density_matrix(h, s, n_e, False, path)
    electronic = -np.einsum("xij,ji->x", r, d)
    dipole = z @ data.structure.positions + electronic
    q = mulliken_charges(d, s, data.atom_offsets)
    details = {"nuclear_charges": z, "mulliken_electrons": q,
               "mulliken_dipole": point_charge_dipole(z - q, data.structure.positions), "n_electrons": n_e}
    return dipole, details
