"""Every bad input gets one DeephError naming the file and the problem; the CLI prints one line.

Each case breaks a copy of a real structure folder: the project's shipped water molecule
(def2-SVP, s+p+d) and hBN cell (gth-szv, periodic), which always run, and the benzene of the
shared DeepH example data when ../shared is present.
"""

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from deeph_jax.cli import main as cli
from deeph_jax.errors import DeephError
from deeph_jax.io import read_deeph_dir, read_poscar

REPO = Path(__file__).resolve().parents[2]
SHIPPED = {
    "water": REPO / "datasets" / "water-pbe-def2svp" / "00000",
    "hbn": REPO / "datasets" / "hbn-szv" / "train-2x2" / "00000",
}


def rewrite_h5(path, **changes):
    """Rewrite a DeepH matrix file with some datasets replaced (value) or removed (None)."""
    with h5py.File(path, "r") as f:
        arrays = {k: f[k][()] for k in f}
    arrays.update(changes)
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            if v is not None:
                f.create_dataset(k, data=v)


def h5_array(path, name):
    with h5py.File(path, "r") as f:
        return f[name][()]


def break_missing_file(d):
    (d / "overlap.h5").unlink()
    return "overlap.h5", "file not found"


def break_missing_dataset(d):
    rewrite_h5(d / "hamiltonian.h5", chunk_shapes=None)
    return "hamiltonian.h5", "missing dataset"


def break_boundaries(d):
    b = h5_array(d / "hamiltonian.h5", "chunk_boundaries")
    b[3] += 1
    rewrite_h5(d / "hamiltonian.h5", chunk_boundaries=b)
    return "hamiltonian.h5", "chunk_boundaries inconsistent"


def break_block_shape(d):
    shapes = h5_array(d / "overlap.h5", "chunk_shapes")
    shapes[0] = [1, shapes[0, 0] * shapes[0, 1]]  # same size, so boundaries stay consistent
    rewrite_h5(d / "overlap.h5", chunk_shapes=shapes)
    return "overlap.h5", "orbital map gives"


def break_element_map(d):
    info = json.loads((d / "info.json").read_text())
    del info["elements_orbital_map"][read_poscar(d / "POSCAR").symbols[-1]]
    (d / "info.json").write_text(json.dumps(info))
    return "info.json", "absent from elements_orbital_map"


def break_nan(d):
    e = h5_array(d / "hamiltonian.h5", "entries")
    e[17] = np.nan
    rewrite_h5(d / "hamiltonian.h5", entries=e)
    return "hamiltonian.h5", "NaN"


def break_overlapping_atoms(d):
    lines = (d / "POSCAR").read_text().splitlines()
    lines[9] = lines[8].replace("0", "0", 1)[:-1] + "1"  # atom 1 within 1e-6 A of atom 0
    (d / "POSCAR").write_text("\n".join(lines) + "\n")
    return "POSCAR", "overlapping atoms"


def break_empty_structure(d):
    lines = (d / "POSCAR").read_text().splitlines()
    (d / "POSCAR").write_text("\n".join(lines[:5] + ["C", "0", "Cartesian"]) + "\n")
    return "POSCAR", "no atoms"


def break_not_hdf5(d):
    (d / "hamiltonian.h5").write_text("hello, I am not HDF5\n")
    return "hamiltonian.h5", "not an HDF5 file"


def break_truncated_info(d):
    text = (d / "info.json").read_text()
    (d / "info.json").write_text(text[: len(text) // 2])
    return "info.json", "not valid JSON"


def break_float_atom_pairs(d):
    rewrite_h5(d / "overlap.h5", atom_pairs=h5_array(d / "overlap.h5", "atom_pairs").astype(float))
    return "overlap.h5", "expected integers"


def break_repeated_block(d):
    pairs = h5_array(d / "hamiltonian.h5", "atom_pairs")
    pairs[-1] = pairs[0]
    rewrite_h5(d / "hamiltonian.h5", atom_pairs=pairs)
    return "hamiltonian.h5", "more than once"


def break_huge_dataset(d):
    """A chunked dataset never written: a few bytes on disk, 64 GiB of fill values when read."""
    with h5py.File(d / "hamiltonian.h5", "a") as f:
        del f["entries"]
        f.create_dataset("entries", shape=(2**33,), dtype=np.float64, chunks=(2**16,))
    return "hamiltonian.h5", "more than this file can hold"


def break_info_count_type(d):
    info = json.loads((d / "info.json").read_text())
    info["atoms_quantity"] = str(info["atoms_quantity"])
    (d / "info.json").write_text(json.dumps(info))
    return "info.json", "atoms_quantity must be a non-negative integer"


def break_orbital_map_type(d):
    info = json.loads((d / "info.json").read_text())
    info["elements_orbital_map"][read_poscar(d / "POSCAR").symbols[0]] = "spd"
    (d / "info.json").write_text(json.dumps(info))
    return "info.json", "must be a list of shell l"


def break_binary_info(d):
    (d / "info.json").write_bytes(b"\x89HDF\r\n\x1a\n\x00\x00")
    return "info.json", "not valid JSON"


CASES = [
    break_missing_file, break_missing_dataset, break_boundaries, break_block_shape, break_element_map,
    break_nan, break_overlapping_atoms, break_empty_structure, break_not_hdf5, break_truncated_info,
    break_float_atom_pairs, break_repeated_block, break_huge_dataset, break_info_count_type,
    break_orbital_map_type, break_binary_info,
]


@pytest.fixture(params=["water", "hbn", "shared-C6H6"])
def structure_dir(request) -> Path:
    """An intact structure folder to copy and break: shipped data, or the shared example (skipped when absent)."""
    if request.param in SHIPPED:
        return SHIPPED[request.param]
    return request.getfixturevalue("molecule_set_dir") / "1000"


@pytest.mark.parametrize("breaker", CASES, ids=[c.__name__[6:] for c in CASES])
def test_bad_input_one_clear_error(breaker, structure_dir, tmp_path, capsys):
    d = tmp_path / "s"
    shutil.copytree(structure_dir, d)
    read_deeph_dir(d)  # intact before breaking
    filename, problem = breaker(d)
    with pytest.raises(DeephError) as err:
        read_deeph_dir(d)
    message = str(err.value)
    assert filename in message and problem in message, message
    assert "\n" not in message

    assert cli(["inspect", "--quiet", str(d)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and filename in lines[0] and problem in lines[0]
    assert "Traceback" not in captured.err
