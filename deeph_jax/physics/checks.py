"""Checks of the ``bands``, ``dos`` and ``polarization`` requests, run before anything is computed
or written: each bad value is one :class:`DeephError` line naming the option (and the file it
contradicts), instead of an IndexError or a ZeroDivisionError deep in numpy. Energies in eV.
"""

from __future__ import annotations

import math
from pathlib import Path

from deeph_jax.errors import DeephError
from deeph_jax.io import HAMILTONIAN, HAMILTONIAN_PRED, INFO, OVERLAP, POSCAR

OUTPUT_SUFFIXES = (".npz", ".h5", ".hdf5")
MAX_DOS_GRID = 2_000_000  # energy-grid points: beyond this a tiny --sigma only burns memory
MAX_KPOINTS = 1_000_000  # a mesh beyond this is a typo (each k-point is one dense eigensolve)


def check_kmesh(kmesh, option: str = "--kmesh") -> tuple[int, int, int]:
    """Three integers >= 1 (points along each reciprocal vector) -> a tuple of ints."""
    mesh = tuple(int(n) for n in kmesh)
    if len(mesh) != 3 or any(n < 1 for n in mesh):
        raise DeephError(f"{option} needs three integers >= 1 (points along each reciprocal vector), got "
                         f"{' '.join(str(n) for n in mesh)}")
    if math.prod(mesh) > MAX_KPOINTS:
        raise DeephError(f"{option} {' '.join(str(n) for n in mesh)} is {math.prod(mesh):,} k-points, over the "
                         f"{MAX_KPOINTS:,} limit")
    return mesh


def check_positive_energy(value: float, option: str) -> float:
    """A finite energy > 0 in eV (a smearing width or a Gaussian broadening)."""
    if not (math.isfinite(value) and value > 0):
        raise DeephError(f"{option} must be a positive energy in eV, got {value:g}")
    return float(value)


def check_finite_energy(value: float | None, option: str) -> float | None:
    if value is not None and not math.isfinite(value):
        raise DeephError(f"{option} must be a finite energy in eV, got {value:g}")
    return value


def check_near_range(value) -> float:
    """--near-range: "auto", "off" or a radius in Angstrom (at least NEAR_RANGE_MIN_A)."""
    from deeph_jax.physics.near_range import NEAR_RANGE_MIN_A

    try:
        radius = float(value)
    except (TypeError, ValueError):
        raise DeephError(f"--near-range must be auto, off or a radius in Angstrom, got {value!r}") from None
    if not (math.isfinite(radius) and radius >= NEAR_RANGE_MIN_A):
        raise DeephError(f"--near-range must be at least {NEAR_RANGE_MIN_A:g} A (shorter drops the bonds), got {value}")
    return radius


def check_npoints(npoints: int) -> int:
    if npoints < 2:
        raise DeephError(f"--npoints must be at least 2 (both ends of the path), got {npoints}")
    return int(npoints)


def check_output(out: str | Path | None, folder: Path, default: str) -> Path:
    """The output path (``folder/default`` when None): a .npz or .h5 file that is none of the
    structure's own DeepH files, so a typo cannot overwrite the Hamiltonian."""
    path = Path(out) if out else folder / default
    if path.suffix not in OUTPUT_SUFFIXES:
        raise DeephError("output must end in .npz or .h5", path)
    if path.is_dir():
        raise DeephError("output is a folder: name a .npz or .h5 file", path)
    inputs = {(folder / name).resolve() for name in (POSCAR, INFO, OVERLAP, HAMILTONIAN, HAMILTONIAN_PRED)}
    if path.resolve() in inputs:
        raise DeephError("output would overwrite an input file of the structure: choose another --out", path)
    return path


def check_band_request(nbands: int | None, sigma: float | None) -> None:
    """--nbands N (>= 1) and --sigma (finite eV, only with --nbands)."""
    check_finite_energy(sigma, "--sigma")
    if nbands is None and sigma is not None:
        raise DeephError("--sigma is the centre of a sparse solve and needs --nbands N (without --nbands "
                         "the dense solver gives every band)")
    if nbands is not None and nbands < 1:
        raise DeephError(f"--nbands must be at least 1, got {nbands}")


def check_nbands_fit(nbands: int | None, n_orbitals: int, spinful: bool, path=None) -> None:
    """--nbands against the size of H(k): ``n_orbitals`` (info.json orbits_quantity), doubled when
    spinful. Shift-invert Lanczos (ARPACK) finds at most n - 2 of the n eigenvalues; the dense
    solver gives all of them."""
    n = n_orbitals * (2 if spinful else 1)
    if nbands is not None and nbands > n - 2:
        size = f"{n_orbitals} orbitals x 2 spin = {n}" if spinful else f"{n} orbitals"
        raise DeephError(f"--nbands {nbands} but H(k) has {size}; the sparse solver finds at most "
                         f"{max(n - 2, 0)}: drop --nbands for all {n} bands (dense)", path)


def check_occupation(data) -> None:
    """info.json ``occupation`` (electrons per cell, spin included) fits in the bands of H(k)."""
    occ = data.occupation
    if occ is None:
        return
    n_orbitals = int(data.atom_offsets[-1])
    capacity = 2 * n_orbitals  # spinless: 2 per orbital; spinful: 2 n_orbitals bands of 1
    if not (math.isfinite(occ) and 0 < occ <= capacity):
        raise DeephError(f"occupation {occ:g} electrons does not fit in {n_orbitals} orbitals (at most {capacity})",
                         None if data.path is None else Path(data.path) / INFO)


def check_dos_grid(energies, sigma: float) -> None:
    """The DOS grid (step sigma / 4 over the eigenvalue range +- 5 sigma) stays under MAX_DOS_GRID points."""
    span = float(energies.max() - energies.min()) + 10 * sigma
    n = int(span / (sigma / 4.0)) + 1
    if n > MAX_DOS_GRID:
        raise DeephError(f"--sigma {sigma:g} eV over the {span:.1f} eV range of the eigenvalues needs {n:,} grid points "
                         f"(over {MAX_DOS_GRID:,}): use --sigma >= {4 * span / MAX_DOS_GRID:.2g}")


def check_kpath_periodic(segments, periodic, path=None) -> None:
    """Every K_PATH point lies in the periodic directions: along a direction with no stored block
    at R != 0 (a sheet's vacuum axis), H(k) does not depend on k, and the path's length would
    count a move that changes nothing."""
    import numpy as np

    off = ~np.asarray(periodic, bool)
    for n, seg in enumerate(segments, start=1):
        if np.any(np.abs(np.stack([seg.start, seg.end])[:, off]) > 1e-8):
            axes = ", ".join(f"b{i + 1}" for i in np.nonzero(off)[0])
            raise DeephError(f"segment {n} ({seg.labels[0]}-{seg.labels[1]}) has k along {axes}, a non-periodic "
                             f"direction (no stored block has R there): keep those k components zero", path)
