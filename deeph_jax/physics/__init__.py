"""Physics from H(R), S(R): bands (dense and sparse shift-invert), Fermi level, DOS, Berry-phase
polarization and molecular dipoles. Energies in eV, lengths in Angstrom, k in reciprocal lattice units."""

from deeph_jax.physics.bands import bands_at, nearest_bands, solve_dense, solve_shift_invert
from deeph_jax.physics.berry import Polarization, berry_polarization, valence_charges
from deeph_jax.physics.dipole import molecular_dipole, mulliken_charges
from deeph_jax.physics.dos import gaussian_dos
from deeph_jax.physics.fermi import fermi_level
from deeph_jax.physics.kpath import KPath, auto_segments, build_path, parse_kpath, read_kpath

__all__ = [
    "KPath", "Polarization", "auto_segments", "bands_at", "berry_polarization", "build_path", "fermi_level",
    "gaussian_dos", "molecular_dipole", "mulliken_charges", "nearest_bands", "parse_kpath", "read_kpath",
    "solve_dense", "solve_shift_invert", "valence_charges",
]
