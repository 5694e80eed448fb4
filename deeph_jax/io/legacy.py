"""The legacy DeepH-pack / DeepH-E3 format, read and converted to the current one.

A legacy structure folder holds ``lat.dat`` (lattice vectors as columns, Angstrom),
``site_positions.dat`` (3 x N Cartesian, Angstrom), ``element.dat`` (atomic numbers),
``orbital_types.dat`` (the l of each shell, one row per atom), ``info.json`` (``nsites``,
``isorthogonal``, ``isspinful``, ``fermi_level`` in eV) and ``hamiltonians.h5`` /
``overlaps.h5`` with one dataset per block named ``"[Rx, Ry, Rz, i, j]"`` (1-based atoms,
OpenMX orbital order, H in eV). Conversion keeps the atom order.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from deeph_jax.errors import DeephError
from deeph_jax.io.basis import OrbitalBasis
from deeph_jax.io.blocks import BlockSparse, check_block_shapes
from deeph_jax.io.deeph import DeephStructure, write_deeph_dir
from deeph_jax.io.structures import Structure, validate_structure

LEGACY_FILES = ("lat.dat", "site_positions.dat", "element.dat", "orbital_types.dat", "info.json")


def is_legacy_dir(path: str | Path) -> bool:
    path = Path(path)
    return all((path / f).is_file() for f in LEGACY_FILES)


def _loadtxt(path: Path, **kw) -> np.ndarray:
    if not path.is_file():
        raise DeephError("file not found", path)
    try:
        return np.loadtxt(path, **kw)
    except ValueError as exc:
        raise DeephError(f"cannot parse ({exc})", path) from None


def _read_legacy_matrix(path: Path, perms: list[np.ndarray], spinful: bool) -> BlockSparse:
    """Blocks keyed "[Rx, Ry, Rz, i, j]" (1-based, OpenMX order) -> BlockSparse (0-based, m = -l..l)."""
    if not path.is_file():
        raise DeephError("file not found", path)
    if not h5py.is_hdf5(path):
        raise DeephError("not an HDF5 file", path)
    blocks = {}
    with h5py.File(path, "r") as f:
        for key in f.keys():
            try:
                rx, ry, rz, i, j = (int(x) for x in json.loads(key))
            except (ValueError, TypeError):
                raise DeephError(f"dataset name {key!r} is not '[Rx, Ry, Rz, i, j]'", path) from None
            i, j = i - 1, j - 1
            if not (0 <= i < len(perms) and 0 <= j < len(perms)):
                raise DeephError(f"block {key} names an atom outside 1..{len(perms)}", path)
            m = np.asarray(f[key][()])
            pi, pj = perms[i], perms[j]
            if spinful:
                a, b = m.shape[0] // 2, m.shape[1] // 2
                if (a, b) != (len(pi), len(pj)):
                    raise DeephError(f"block {key} has shape {m.shape}, expected {(2 * len(pi), 2 * len(pj))}", path)
                q = m.reshape(2, a, 2, b)[:, pi][:, :, :, pj]
                m = q.reshape(2 * a, 2 * b)
            else:
                if m.shape != (len(pi), len(pj)):
                    raise DeephError(f"block {key} has shape {m.shape}, expected {(len(pi), len(pj))}", path)
                m = m[pi][:, pj]
            if not np.all(np.isfinite(m)):
                raise DeephError(f"block {key} contains NaN/Inf", path)
            blocks[(rx, ry, rz, i, j)] = m
    return BlockSparse.from_blocks(blocks)


def read_legacy_dir(path: str | Path) -> DeephStructure:
    """Read one legacy structure folder into the in-memory form of the current format."""
    from ase.data import chemical_symbols

    path = Path(path)
    if not path.is_dir():
        raise DeephError("legacy structure folder not found", path)
    lattice = _loadtxt(path / "lat.dat", ndmin=2).T
    positions = _loadtxt(path / "site_positions.dat", ndmin=2).T
    numbers = _loadtxt(path / "element.dat", ndmin=1).astype(int)
    orbital_file = path / "orbital_types.dat"
    if not orbital_file.is_file():
        raise DeephError("file not found", orbital_file)
    orbital_types = [[int(x) for x in line.split()] for line in orbital_file.read_text().splitlines() if line.strip()]
    try:
        legacy_info = json.loads((path / "info.json").read_text())
    except FileNotFoundError:
        raise DeephError("file not found", path / "info.json") from None
    except json.JSONDecodeError as exc:
        raise DeephError(f"not valid JSON ({exc.msg} at line {exc.lineno})", path / "info.json") from None
    if lattice.shape != (3, 3):
        raise DeephError(f"expected a 3 x 3 lattice, got {lattice.shape}", path / "lat.dat")
    if not (len(numbers) == positions.shape[0] == len(orbital_types)):
        raise DeephError(
            f"{len(numbers)} elements, {positions.shape[0]} positions and {len(orbital_types)} orbital rows disagree",
            path,
        )
    symbols = tuple(chemical_symbols[z] for z in numbers)
    shells: dict[str, tuple[int, ...]] = {}
    for s, ls in zip(symbols, orbital_types):
        if shells.setdefault(s, tuple(ls)) != tuple(ls):
            raise DeephError(f"element {s} has different orbital types on different atoms", orbital_file)
    basis = OrbitalBasis(shells)
    structure = validate_structure(Structure(symbols, positions, lattice, periodic=True), path / "site_positions.dat")
    spinful = bool(legacy_info.get("isspinful", False))
    info = {
        "atoms_quantity": len(symbols),
        "orbits_quantity": int(basis.atom_offsets(symbols)[-1]),
        "orthogonal_basis": bool(legacy_info.get("isorthogonal", False)),
        "spinful": spinful,
        "fermi_energy_eV": legacy_info.get("fermi_level"),
        "elements_orbital_map": basis.to_orbital_map(),
    }
    perms = [basis.openmx_to_wiki(s) for s in symbols]
    n_orb = np.diff(basis.atom_offsets(symbols))
    data = DeephStructure(structure, basis, info, path=path)
    if (path / "overlaps.h5").exists():
        data.overlap = _read_legacy_matrix(path / "overlaps.h5", perms, False)
        check_block_shapes(data.overlap, symbols, n_orb, False, path / "overlaps.h5")
    if (path / "hamiltonians.h5").exists():
        data.hamiltonian = _read_legacy_matrix(path / "hamiltonians.h5", perms, spinful)
        check_block_shapes(data.hamiltonian, symbols, n_orb, spinful, path / "hamiltonians.h5")
    return data


def convert_legacy(in_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Convert a legacy folder (one structure, or a tree of them) to the current format.

    One structure: ``out_dir`` becomes its folder. Several: one sub-folder each, named by the
    relative path. Returns the written folders.
    """
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.is_dir():
        raise DeephError("input folder not found", in_dir)
    if is_legacy_dir(in_dir):
        write_deeph_dir(out_dir, read_legacy_dir(in_dir))
        return [out_dir]
    found = sorted({p.parent for p in in_dir.rglob("element.dat") if is_legacy_dir(p.parent)})
    if not found:
        raise DeephError(f"no legacy DeepH structure found (a folder with {', '.join(LEGACY_FILES)})", in_dir)
    written = []
    for src in found:
        dst = out_dir / src.relative_to(in_dir)
        write_deeph_dir(dst, read_legacy_dir(src))
        written.append(dst)
    return written
