"""The current DeepH on-disk format: one folder per structure.

``POSCAR``, ``info.json``, ``overlap.h5``, ``hamiltonian.h5`` and optionally
``hamiltonian_pred.h5``; each matrix file holds ``atom_pairs``, ``chunk_shapes``,
``chunk_boundaries`` and ``entries`` (see :mod:`deeph_jax.io.blocks`). Every problem with a
file is raised as one :class:`DeephError` line naming the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from deeph_jax.errors import DeephError
from deeph_jax.io.atomic import atomic_path, write_text_atomic
from deeph_jax.io.basis import OrbitalBasis
from deeph_jax.io.blocks import BlockSparse, check_block_shapes
from deeph_jax.io.structures import Structure, validate_structure

POSCAR = "POSCAR"
INFO = "info.json"
OVERLAP = "overlap.h5"
HAMILTONIAN = "hamiltonian.h5"
HAMILTONIAN_PRED = "hamiltonian_pred.h5"
MATRIX_DATASETS = ("atom_pairs", "chunk_shapes", "chunk_boundaries", "entries")
REQUIRED_INFO_KEYS = ("atoms_quantity", "orbits_quantity", "spinful", "elements_orbital_map")


@dataclass(eq=False)
class DeephStructure:
    """One structure of a DeepH dataset: geometry, basis, metadata and its matrices.

    ``hamiltonian`` is in eV (complex spin blocks when ``spinful``); ``overlap`` is unitless and
    always spinless. Either may be None when its file is absent or not requested.
    """

    structure: Structure
    basis: OrbitalBasis
    info: dict
    overlap: BlockSparse | None = None
    hamiltonian: BlockSparse | None = None
    path: Path | None = None
    extra: dict = field(default_factory=dict)

    @property
    def spinful(self) -> bool:
        return bool(self.info.get("spinful", False))

    @property
    def fermi_energy_eV(self) -> float | None:
        return self.info.get("fermi_energy_eV")

    @property
    def occupation(self) -> float | None:
        return self.info.get("occupation")

    @property
    def atom_offsets(self) -> np.ndarray:
        """(n_atoms + 1,) start of each atom's orbitals (spin not counted)."""
        return self.basis.atom_offsets(self.structure.symbols)

    def hamiltonian_k(self, k) -> np.ndarray:
        """Dense, exactly Hermitian H(k) in eV; size n_orb (2 n_orb when spinful)."""
        if self.hamiltonian is None:
            raise DeephError("no Hamiltonian loaded", self.path)
        return self.hamiltonian.bloch_dense(k, self.atom_offsets, self.spinful)

    def overlap_k(self, k) -> np.ndarray:
        """Dense, exactly Hermitian S(k); doubled as diag(S, S) when spinful."""
        if self.overlap is None:
            raise DeephError("no overlap loaded", self.path)
        s = self.overlap.bloch_dense(k, self.atom_offsets, False)
        if self.spinful:
            z = np.zeros_like(s)
            s = np.block([[s, z], [z, s]])
        return s


# -- info.json -------------------------------------------------------------------------------------
MAX_SHELL_L = 8  # beyond any Gaussian or numerical atomic basis in use (k shells); larger is garbage


def read_json_object(path: str | Path) -> dict:
    """A JSON file holding one object (info.json, metadata.json), as a dict; anything else is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise DeephError("file not found", path)
    try:
        info = json.loads(path.read_bytes())
    except json.JSONDecodeError as exc:
        raise DeephError(f"not valid JSON (truncated or malformed: {exc.msg} at line {exc.lineno})", path) from None
    except (UnicodeDecodeError, RecursionError) as exc:  # binary garbage; absurdly deep nesting
        raise DeephError(f"not valid JSON ({type(exc).__name__})", path) from None
    except OSError as exc:
        raise DeephError(f"cannot read ({exc})", path) from None
    if not isinstance(info, dict):
        raise DeephError(f"expected a JSON object, found a {type(info).__name__}", path)
    return info


def read_info(path: str | Path) -> dict:
    """info.json as a dict, its keys checked for presence and type (see :func:`check_info`)."""
    path = Path(path)
    info = read_json_object(path)
    missing = [k for k in REQUIRED_INFO_KEYS if k not in info]
    if missing:
        raise DeephError(f"missing key(s) {', '.join(missing)}", path)
    check_info(info, path)
    return info


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _short(x, width: int = 60) -> str:
    """repr of a found value, cut so that a huge one keeps the message to one readable line."""
    text = repr(x)
    return text if len(text) <= width else text[: width - 3] + "..."


def check_info(info: dict, path: Path) -> None:
    """The keys deeph-jax uses have the types of the data contract (DESIGN.md section 1)."""
    for key in ("atoms_quantity", "orbits_quantity"):
        if not _is_int(info[key]) or info[key] < 0:
            raise DeephError(f"{key} must be a non-negative integer, found {_short(info[key])}", path)
    for key in ("spinful", "orthogonal_basis"):
        if key in info and not isinstance(info[key], bool):
            raise DeephError(f"{key} must be true or false, found {_short(info[key])}", path)
    for key in ("fermi_energy_eV", "occupation"):
        if info.get(key) is not None and not _is_number(info[key]):
            raise DeephError(f"{key} must be a number or null, found {_short(info[key])}", path)
    check_orbital_map(info["elements_orbital_map"], path)


def check_orbital_map(orbital_map, path: Path) -> None:
    """``{"element": [l of each shell, ...]}`` with integer l in 0..MAX_SHELL_L."""
    if not isinstance(orbital_map, dict):
        raise DeephError(f"elements_orbital_map must be an object, found a {type(orbital_map).__name__}", path)
    for element, shells in orbital_map.items():
        if not isinstance(shells, list) or not all(_is_int(l) and 0 <= l <= MAX_SHELL_L for l in shells):
            raise DeephError(f"elements_orbital_map[{element!r}] must be a list of shell l in 0..{MAX_SHELL_L}, "
                             f"found {_short(shells)}", path)


def write_info(path: str | Path, info: dict) -> None:
    write_text_atomic(path, json.dumps(info, indent=2) + "\n")


# -- POSCAR ----------------------------------------------------------------------------------------
def read_poscar(path: str | Path) -> Structure:
    path = Path(path)
    if not path.is_file():
        raise DeephError("file not found", path)
    import ase.io

    try:
        atoms = ase.io.read(str(path), format="vasp")
    except Exception as exc:  # ase raises many types for a broken POSCAR
        raise DeephError(f"cannot read POSCAR ({type(exc).__name__}: {exc})", path) from None
    return Structure(tuple(atoms.get_chemical_symbols()), atoms.positions, atoms.cell[:], periodic=True)


def format_poscar(structure: Structure, comment: str = "written by deeph-jax") -> str:
    """POSCAR text with Cartesian positions; species are written in runs, so atom order is kept."""
    runs: list[list] = []
    for s in structure.symbols:
        if runs and runs[-1][0] == s:
            runs[-1][1] += 1
        else:
            runs.append([s, 1])
    lines = [comment, "1.0"]
    lines += ["  " + "  ".join(f"{x:.16f}" for x in row) for row in structure.cell]
    lines.append(" ".join(r[0] for r in runs))
    lines.append(" ".join(str(r[1]) for r in runs))
    lines.append("Cartesian")
    lines += ["    " + "  ".join(f"{x:.16f}" for x in p) for p in structure.positions]
    return "\n".join(lines) + "\n"


def write_poscar(path: str | Path, structure: Structure) -> None:
    write_text_atomic(path, format_poscar(structure))


# -- matrix h5 -------------------------------------------------------------------------------------
# A dataset may decompress to at most this many times its file's size: deflate (gzip) tops out near
# 1032:1. Claims beyond that come from a damaged header, and reading them would exhaust memory.
MAX_EXPANSION = 1100
MIN_DATASET_LIMIT = 1 << 26  # bytes; small files may still hold a few MB of well-compressed zeros


def read_h5_datasets(path: str | Path, names=MATRIX_DATASETS) -> dict[str, np.ndarray]:
    """The named datasets of an HDF5 file as numpy arrays; any damage becomes one DeephError."""
    path = Path(path)
    if not path.is_file():
        raise DeephError("file not found", path)
    try:
        is_hdf5 = h5py.is_hdf5(path)
        limit = max(MIN_DATASET_LIMIT, MAX_EXPANSION * path.stat().st_size)
    except OSError as exc:
        raise DeephError(f"cannot read ({exc})", path) from None
    if not is_hdf5:
        raise DeephError("not an HDF5 file", path)
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in names if k not in f]
            if missing:
                raise DeephError(f"missing dataset(s) {', '.join(missing)}", path)
            return {k: _read_dataset(f[k], k, limit, path) for k in names}
    except DeephError:
        raise
    except Exception as exc:  # h5py raises OSError, RuntimeError, KeyError, ValueError... on a damaged file
        raise DeephError(f"cannot read HDF5, damaged file? ({type(exc).__name__}: {exc})", path) from None


def _read_dataset(item, name: str, limit: int, path: Path) -> np.ndarray:
    if not isinstance(item, h5py.Dataset):
        raise DeephError(f"{name} is not a dataset (an HDF5 {type(item).__name__})", path)
    if item.shape is None:
        raise DeephError(f"{name} is an empty dataset (no dataspace)", path)
    claimed = int(item.size or 0) * item.dtype.itemsize
    if claimed > limit:
        raise DeephError(f"{name} claims {claimed} bytes, more than this file can hold: damaged header?", path)
    return np.asarray(item[()])


def _integer_array(array: np.ndarray, name: str, path: Path) -> np.ndarray:
    if array.dtype.kind not in "iu":
        raise DeephError(f"{name} has dtype {array.dtype}, expected integers", path)
    return array.astype(np.int64)


def _entries_array(array: np.ndarray, path: Path) -> np.ndarray:
    """float64 or complex128 (float32 and complex64 files are widened)."""
    if array.dtype.kind not in "fc":
        raise DeephError(f"entries has dtype {array.dtype}, expected float64 or complex128", path)
    if array.ndim != 1:
        raise DeephError(f"entries has shape {array.shape}, expected one dimension", path)
    return array.astype(np.complex128 if array.dtype.kind == "c" else np.float64, copy=False)


def check_matrix_layout(pairs, shapes, bounds, entries, path: Path) -> None:
    """Shapes of the four arrays agree, blocks tile ``entries`` exactly, and no (R, i, j) repeats."""
    n = pairs.shape[0] if pairs.ndim == 2 else -1
    if pairs.ndim != 2 or pairs.shape[1] != 5:
        raise DeephError(f"atom_pairs has shape {pairs.shape}, expected (n_blocks, 5)", path)
    if shapes.shape != (n, 2):
        raise DeephError(f"chunk_shapes has shape {shapes.shape}, expected ({n}, 2)", path)
    if bounds.shape != (n + 1,):
        raise DeephError(f"chunk_boundaries has shape {bounds.shape}, expected ({n + 1},)", path)
    if np.any(shapes < 0) or np.any(shapes > entries.shape[0]):
        raise DeephError(f"chunk_shapes outside 0..{entries.shape[0]} (the number of entries)", path)
    sizes = shapes[:, 0] * shapes[:, 1]  # no overflow: each factor is at most len(entries)
    if bounds[0] != 0 or np.any(np.diff(bounds) != sizes) or bounds[-1] != entries.shape[0]:
        raise DeephError(
            f"chunk_boundaries inconsistent with chunk_shapes and entries "
            f"(last boundary {bounds[-1]}, entries {entries.shape[0]})",
            path,
        )
    unique, first, counts = np.unique(pairs, axis=0, return_index=True, return_counts=True)
    if unique.shape[0] != n:
        twice = pairs[first[np.nonzero(counts > 1)[0][0]]]
        raise DeephError(f"atom_pairs lists block {twice.tolist()} more than once", path)


def read_matrix(path: str | Path) -> BlockSparse:
    """Read one DeepH matrix file, checking its four datasets for dtype, consistency and finiteness."""
    path = Path(path)
    arrays = read_h5_datasets(path)
    pairs = _integer_array(arrays["atom_pairs"], "atom_pairs", path)
    shapes = _integer_array(arrays["chunk_shapes"], "chunk_shapes", path)
    bounds = _integer_array(arrays["chunk_boundaries"], "chunk_boundaries", path)
    entries = _entries_array(arrays["entries"], path)
    check_matrix_layout(pairs, shapes, bounds, entries, path)
    if not np.all(np.isfinite(entries)):
        bad = int(np.nonzero(~np.isfinite(entries))[0][0])
        block = int(np.searchsorted(bounds, bad, side="right") - 1)
        raise DeephError(f"entries contain NaN/Inf (first in block {pairs[block].tolist()})", path)
    return BlockSparse(pairs, shapes, bounds, entries)


def write_matrix(path: str | Path, matrix: BlockSparse, compression: str | None = None) -> None:
    """Write atomically; ``compression="gzip"`` shrinks shipped datasets and is transparent to readers."""
    kw = {"compression": compression, "shuffle": True} if compression else {}
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("atom_pairs", data=matrix.atom_pairs)
            f.create_dataset("chunk_shapes", data=matrix.shapes)
            f.create_dataset("chunk_boundaries", data=matrix.boundaries)
            f.create_dataset("entries", data=matrix.entries, **kw)


# -- whole structures ------------------------------------------------------------------------------
def read_deeph_dir(
    path: str | Path,
    hamiltonian: str | None = HAMILTONIAN,
    overlap: bool = True,
) -> DeephStructure:
    """Read one structure folder.

    Args:
        hamiltonian: file name of the H to load (``hamiltonian.h5``, ``hamiltonian_pred.h5``), or None.
        overlap: load ``overlap.h5``.

    The structure is treated as a molecule (no periodic images) when every stored R is zero.
    """
    path = Path(path)
    if not path.is_dir():
        raise DeephError("structure folder not found", path)
    info = read_info(path / INFO)
    structure = validate_structure(read_poscar(path / POSCAR), path / POSCAR)
    basis = OrbitalBasis.from_orbital_map(info["elements_orbital_map"])
    basis.check_elements(structure.symbols, path / INFO)
    if info["atoms_quantity"] != structure.n_atoms:
        raise DeephError(f"atoms_quantity {info['atoms_quantity']} but POSCAR has {structure.n_atoms} atoms", path / INFO)
    offsets = basis.atom_offsets(structure.symbols)
    if info["orbits_quantity"] != offsets[-1]:
        raise DeephError(
            f"orbits_quantity {info['orbits_quantity']} but the orbital map gives {offsets[-1]} for this POSCAR",
            path / INFO,
        )
    n_orb = np.diff(offsets)
    spinful = bool(info["spinful"])
    data = DeephStructure(structure, basis, info, path=path)
    if overlap:
        data.overlap = read_matrix(path / OVERLAP)
        check_block_shapes(data.overlap, structure.symbols, n_orb, False, path / OVERLAP)
    if hamiltonian is not None:
        data.hamiltonian = read_matrix(path / hamiltonian)
        if spinful and not data.hamiltonian.is_complex:
            data.hamiltonian = BlockSparse(
                data.hamiltonian.atom_pairs, data.hamiltonian.shapes, data.hamiltonian.boundaries,
                data.hamiltonian.entries.astype(np.complex128),
            )
        check_block_shapes(data.hamiltonian, structure.symbols, n_orb, spinful, path / hamiltonian)
    stored = [m for m in (data.overlap, data.hamiltonian) if m is not None]
    if stored and all(not np.any(m.atom_pairs[:, :3]) for m in stored):
        data.structure = structure.as_molecule()
    return data


def write_deeph_dir(
    path: str | Path,
    data: DeephStructure,
    hamiltonian_name: str = HAMILTONIAN,
    compression: str | None = None,
) -> None:
    """Write POSCAR, info.json and whichever matrices ``data`` holds, each file atomically."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    write_poscar(path / POSCAR, data.structure)
    info = dict(data.info)
    info["atoms_quantity"] = data.structure.n_atoms
    info["orbits_quantity"] = int(data.atom_offsets[-1])
    info["elements_orbital_map"] = data.basis.to_orbital_map()
    info.setdefault("orthogonal_basis", False)
    info.setdefault("spinful", False)
    info.setdefault("fermi_energy_eV", None)
    write_info(path / INFO, info)
    if data.overlap is not None:
        write_matrix(path / OVERLAP, data.overlap, compression)
    if data.hamiltonian is not None:
        write_matrix(path / hamiltonian_name, data.hamiltonian, compression)


def find_structure_dirs(root: str | Path) -> list[Path]:
    """Every folder under ``root`` (itself included) holding a POSCAR, sorted by relative path.

    Hidden folders (temporary ones of an interrupted atomic write) are skipped.
    """
    root = Path(root)
    if not root.is_dir():
        raise DeephError("dataset folder not found", root)
    found = [p.parent for p in root.rglob(POSCAR) if not any(part.startswith(".") for part in p.relative_to(root).parts)]
    return sorted(found, key=lambda p: str(p.relative_to(root)))
