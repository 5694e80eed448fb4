"""Whether a structure or a DeepH dataset fits a model, checked before anything is written.

A model emits blocks of one orbital basis: the shells (l of each radial shell) per element it
was trained on. Data in another basis (def2-TZVP water for a def2-SVP model) have other block
shapes, so a prediction could not be compared with, or stand in for, their Hamiltonian.
"""

from __future__ import annotations

from pathlib import Path

from deeph_jax.errors import DeephError
from deeph_jax.io import HAMILTONIAN, INFO, OrbitalBasis, read_deeph_dir


def same_basis_name(a: str, b: str) -> bool:
    """Basis names as PySCF reads them: case, '-', '_' and spaces do not matter (def2-SVP = def2svp)."""

    def canonical(name: str) -> str:
        return "".join(c for c in name.lower() if c not in "-_ ")

    return canonical(a) == canonical(b)


def check_elements(model_basis: OrbitalBasis, symbols, path=None) -> None:
    unknown = sorted(set(symbols) - set(model_basis.elements))
    if unknown:
        raise DeephError(f"element(s) {', '.join(unknown)} not in the model (trained on "
                         f"{', '.join(sorted(model_basis.elements))})", path)


def check_basis_name(model_name: str | None, data_name: str | None, path=None) -> None:
    """The basis names, where both the data and the model record one, agree."""
    if model_name and data_name and not same_basis_name(model_name, data_name):
        raise DeephError(f"basis {data_name!r} but the model was trained on {model_name!r}", path)


def check_shells(model_basis: OrbitalBasis, data_basis: OrbitalBasis, symbols, path=None) -> None:
    """Each element of ``symbols`` has the same shells (l per shell, in order) in both bases."""
    for el in sorted(set(symbols)):
        if tuple(data_basis.shells[el]) != tuple(model_basis.shells[el]):
            raise DeephError(f"element {el} has shells (l per shell) {list(data_basis.shells[el])} but the model's "
                             f"basis has {list(model_basis.shells[el])}", path)


VACUUM_HEIGHT_TOLERANCE = 0.5  # Angstrom


def vacuum_mismatch(metadata: dict, structure) -> str | None:
    """Why ``structure``'s vacuum differs from the training cells' (``vacuum_heights_A`` in the bundle's
    metadata), or None. Periodic DFT puts the energy zero at the cell's mean electrostatic potential, which
    moves with the height of the vacuum (and a rattled sheet's dipole field across it, which the long-range
    channel sums in the cell): predicted energies keep the training cells' reference."""
    from deeph_jax.io.structures import vacuum_heights

    trained = metadata.get("vacuum_heights_A")
    heights = vacuum_heights(structure)
    if not trained or not heights:
        return None
    lo, hi = trained
    off = [h for h in heights if not lo - VACUUM_HEIGHT_TOLERANCE <= h <= hi + VACUUM_HEIGHT_TOLERANCE]
    if not off:
        return None
    span = f"{lo:.2f} A" if abs(hi - lo) < 1e-3 else f"{lo:.2f}-{hi:.2f} A"
    return (f"the cell is {off[0]:.2f} A high across its vacuum, the training cells {span}: periodic DFT's energy "
            f"zero moves with that height, so predicted energies follow the training cells' reference, not this "
            f"cell's")


def check_folder(predictor, folder: Path) -> None:
    """One DeepH structure folder against ``predictor``: info.json and POSCAR only (no h5 read)."""
    data = read_deeph_dir(folder, hamiltonian=None, overlap=False)  # also checks info.json against POSCAR
    info_path = Path(folder) / INFO
    symbols = data.structure.symbols
    check_elements(predictor.basis, symbols, info_path)
    check_basis_name(predictor.metadata.get("basis"), data.info.get("basis"), info_path)
    check_shells(predictor.basis, data.basis, symbols, info_path)
    spin = predictor.config.spin
    if data.spinful and spin == "none":
        raise DeephError("spinful data, but the model predicts a spinless Hamiltonian", info_path)
    if not data.spinful and spin != "none" and (Path(folder) / HAMILTONIAN).is_file():
        raise DeephError(f"spinless data, but the model (spin = {spin}) predicts a spinful Hamiltonian", info_path)


def check_dataset(predictor, folders) -> None:
    """Every structure folder of a dataset, before the first prediction is written."""
    for folder in folders:
        check_folder(predictor, folder)
