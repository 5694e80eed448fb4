"""Atomic structures: one small dataclass, loaded from any file ase reads or from pymatgen objects."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deeph_jax.errors import DeephError

MIN_ATOM_DISTANCE = 0.1  # Angstrom; closer atoms are a broken structure, not physics
VACUUM_GAP = 6.0  # Angstrom of empty space along a direction that makes it a vacuum direction


@dataclass(frozen=True, eq=False)
class Structure:
    """Atoms in a cell. Angstrom throughout.

    Attributes:
        symbols: (n_atoms,) element symbols, in the order every index refers to.
        positions: (n_atoms, 3) Cartesian positions.
        cell: (3, 3) lattice vectors as rows (a box for molecules: kept for the POSCAR).
        periodic: False for a molecule: no periodic images, even inside a box.
    """

    symbols: tuple[str, ...]
    positions: np.ndarray
    cell: np.ndarray
    periodic: bool = True

    def __post_init__(self):
        object.__setattr__(self, "symbols", tuple(str(s) for s in self.symbols))
        object.__setattr__(self, "positions", np.asarray(self.positions, dtype=np.float64).reshape(-1, 3))
        object.__setattr__(self, "cell", np.asarray(self.cell, dtype=np.float64).reshape(3, 3))

    @property
    def n_atoms(self) -> int:
        return len(self.symbols)

    @property
    def numbers(self) -> np.ndarray:
        from ase.data import atomic_numbers

        return np.asarray([atomic_numbers[s] for s in self.symbols], dtype=np.int64)

    @property
    def frac_positions(self) -> np.ndarray:
        return np.linalg.solve(self.cell.T, self.positions.T).T

    def to_ase(self):
        import ase

        return ase.Atoms(self.symbols, positions=self.positions, cell=self.cell, pbc=self.periodic)

    def as_molecule(self) -> "Structure":
        return Structure(self.symbols, self.positions, self.cell, periodic=False)


def _plane_spacings(cell: np.ndarray) -> np.ndarray:
    """(3,) distance between neighbouring lattice planes along each direction (Angstrom): the cell's height."""
    vol = abs(np.linalg.det(cell))
    return np.asarray([vol / np.linalg.norm(np.cross(cell[(a + 1) % 3], cell[(a + 2) % 3])) for a in range(3)])


def vacuum_directions(structure: Structure, gap: float = VACUUM_GAP) -> tuple[bool, bool, bool]:
    """For each lattice direction, whether the atoms leave an empty slab at least ``gap`` A thick."""
    heights = _plane_spacings(structure.cell)
    frac = structure.frac_positions % 1.0
    out = []
    for a in range(3):
        f = np.sort(frac[:, a])
        gaps = np.diff(np.concatenate([f, [f[0] + 1.0]]))
        out.append(bool(gaps.max() * heights[a] >= gap))
    return tuple(out)


def vacuum_heights(structure: Structure, gap: float = VACUUM_GAP) -> list[float]:
    """The cell's heights (Angstrom, between lattice planes) along the vacuum of a sheet or a wire (periodic DFT's
    energy zero, the mean electrostatic potential of the cell, moves with them); none for a bulk crystal, a
    molecule, or atoms with vacuum all round (a molecule in its box)."""
    vacuum = vacuum_directions(structure, gap)
    if not structure.periodic or all(vacuum):
        return []
    heights = _plane_spacings(structure.cell)
    return [float(heights[a]) for a, v in enumerate(vacuum) if v]


def validate_structure(structure: Structure, path=None) -> Structure:
    """Reject empty structures, unknown elements and atoms closer than 0.1 Angstrom (periodic images included)."""
    from ase.data import atomic_numbers

    if structure.n_atoms == 0:
        raise DeephError("structure has no atoms", path)
    unknown = sorted({s for s in structure.symbols if s not in atomic_numbers or s == "X"})
    if unknown:
        raise DeephError(f"unknown element symbol(s) {', '.join(unknown)}", path)
    if not np.all(np.isfinite(structure.positions)) or not np.all(np.isfinite(structure.cell)):
        raise DeephError("structure has non-finite positions or cell", path)
    if structure.periodic and abs(np.linalg.det(structure.cell)) < 1e-6:
        raise DeephError("periodic structure has a degenerate cell (zero volume)", path)
    _check_min_distance(structure, path)
    return structure


def _check_min_distance(structure: Structure, path) -> None:
    import vesin

    nl = vesin.NeighborList(cutoff=MIN_ATOM_DISTANCE, full_list=False)
    box = structure.cell if structure.periodic else np.zeros((3, 3))
    i, j, d = nl.compute(points=structure.positions, box=box, periodic=structure.periodic, quantities="ijd")
    if len(d):
        n = int(np.argmin(d))
        raise DeephError(
            f"atoms {int(i[n])} ({structure.symbols[i[n]]}) and {int(j[n])} ({structure.symbols[j[n]]}) "
            f"are {d[n]:.4f} A apart (< {MIN_ATOM_DISTANCE} A): overlapping atoms",
            path,
        )


def from_ase(atoms, periodic: bool | None = None) -> Structure:
    """ase.Atoms -> Structure. Periodic when any pbc flag is set and the cell is not empty."""
    cell = np.asarray(atoms.cell[:], dtype=np.float64)
    if periodic is None:
        periodic = bool(np.any(atoms.pbc)) and abs(np.linalg.det(cell)) > 1e-6
    if not periodic and abs(np.linalg.det(cell)) < 1e-6:
        cell = _bounding_box(np.asarray(atoms.positions))
    return Structure(tuple(atoms.get_chemical_symbols()), atoms.positions, cell, periodic=periodic)


def from_pymatgen(obj) -> Structure:
    """pymatgen Structure (periodic) or Molecule (not periodic) -> Structure."""
    from pymatgen.core import Molecule
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = AseAtomsAdaptor.get_atoms(obj)
    return from_ase(atoms, periodic=not isinstance(obj, Molecule))


def _bounding_box(positions: np.ndarray, vacuum: float = 15.0) -> np.ndarray:
    extent = positions.max(0) - positions.min(0) if len(positions) else np.zeros(3)
    return np.diag(extent + 2 * vacuum)


def load_structures(source: Any, index: str = ":", molecule: bool | None = None) -> list[Structure]:
    """Every frame of a structure file (POSCAR, CIF, extended XYZ, anything ``ase.io.read`` reads),
    or an ase/pymatgen object. ``molecule=True`` forces the non-periodic treatment."""
    if isinstance(source, Structure):
        frames = [source]
    elif hasattr(source, "get_chemical_symbols"):
        frames = [from_ase(source)]
    elif type(source).__module__.startswith("pymatgen"):
        frames = [from_pymatgen(source)]
    else:
        path = Path(source)
        if not path.exists():
            raise DeephError("structure file not found", path)
        import ase.io

        try:
            read = ase.io.read(str(path), index=index)
        except Exception as exc:  # ase raises many types; the user needs the file and the reason
            raise DeephError(f"cannot read structure ({type(exc).__name__}: {exc})", path) from None
        frames = [from_ase(a) for a in (read if isinstance(read, list) else [read])]
        if not frames:
            raise DeephError("structure file holds no frames", path)
        return [validate_structure(f.as_molecule() if molecule else f, path) for f in frames]
    return [validate_structure(f.as_molecule() if molecule else f) for f in frames]


def load_structure(source: Any, molecule: bool | None = None) -> Structure:
    """The single (last) frame of ``source``; see :func:`load_structures`."""
    return load_structures(source, index="-1", molecule=molecule)[-1]
