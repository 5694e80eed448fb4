"""Fuzzing the DeepH reader with hypothesis: a copy of a shipped structure folder (the water
molecule, the periodic hBN cell) with one file broken - truncated or overwritten bytes, datasets
of the wrong dtype or shape, odd info.json, odd POSCAR - is either read, or refused with one
:class:`DeephError` whose message names the broken file (or the file it contradicts). Never
another exception type and never a hang.

Examples are derandomized, so CI sees the same cases on every run; each strategy tries a few
dozen of them.
"""

from __future__ import annotations

import json
import shutil
import signal
import tempfile
from contextlib import contextmanager
from pathlib import Path

import h5py
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from deeph_jax.errors import DeephError
from deeph_jax.io import HAMILTONIAN, INFO, OVERLAP, POSCAR, read_deeph_dir

REPO = Path(__file__).resolve().parents[2]
SOURCES = {
    "water": REPO / "datasets" / "water-pbe-def2svp" / "00000",
    "hbn": REPO / "datasets" / "hbn-szv" / "train-2x2" / "00000",
}
MATRIX_FILES = (OVERLAP, HAMILTONIAN)
ALL_FILES = (POSCAR, INFO, OVERLAP, HAMILTONIAN)
MATRIX_DATASETS = ("atom_pairs", "chunk_shapes", "chunk_boundaries", "entries")
SECONDS_PER_EXAMPLE = 30  # a read takes well under a second; more is a hang

FUZZ = settings(max_examples=40, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

source_names = pytest.mark.parametrize("source", sorted(SOURCES))


# -- the property ------------------------------------------------------------------------------------
@contextmanager
def broken_copy(source: str):
    """A fresh copy of a shipped structure folder, deleted afterwards (hypothesis reuses no tmp_path)."""
    with tempfile.TemporaryDirectory(prefix="deeph-fuzz-") as tmp:
        folder = Path(tmp) / source
        shutil.copytree(SOURCES[source], folder)
        yield folder


@contextmanager
def time_limit(seconds: int):
    """Turn a hang into a failure (SIGALRM; the tests run in pytest's main thread)."""
    def hang(signum, frame):
        raise AssertionError(f"reader still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def assert_read_or_clear_error(folder: Path, blamed: tuple[str, ...]) -> None:
    """read_deeph_dir succeeds, or raises one DeephError on one line naming one of ``blamed``."""
    with time_limit(SECONDS_PER_EXAMPLE):
        try:
            data = read_deeph_dir(folder)
        except DeephError as exc:
            message = str(exc)
            assert "\n" not in message, message
            assert any(str(folder / name) in message for name in blamed), f"names none of {blamed}: {message}"
            return
    # Read without complaint: then what was read keeps the contract the checks promise.
    for matrix in (data.overlap, data.hamiltonian):
        assert matrix.atom_pairs.dtype == np.int64 and matrix.atom_pairs.shape[1] == 5
        assert np.all(np.isfinite(matrix.entries))
        assert matrix.boundaries[-1] == matrix.entries.shape[0]


# -- bytes of the matrix files -----------------------------------------------------------------------
@source_names
@FUZZ
@given(name=st.sampled_from(MATRIX_FILES), fraction=st.floats(0.0, 1.0))
def test_truncated_matrix_file(source, name, fraction):
    with broken_copy(source) as folder:
        path = folder / name
        raw = path.read_bytes()
        path.write_bytes(raw[: int(fraction * len(raw))])
        assert_read_or_clear_error(folder, (name,))


# Where to write, as (in the head?, fraction): the first 4 KiB hold HDF5's superblock and object
# headers, so aim there half of the time; elsewhere is mostly raw data.
HEAD_BYTES = 4096
offsets = st.tuples(st.booleans(), st.floats(0.0, 1.0, exclude_max=True))


def byte_offset(where: tuple[bool, float], size: int) -> int:
    in_head, fraction = where
    return int(fraction * min(size, HEAD_BYTES) if in_head else fraction * size)


@source_names
@FUZZ
@given(name=st.sampled_from(MATRIX_FILES),
       patches=st.lists(st.tuples(offsets, st.binary(min_size=1, max_size=16)), min_size=1, max_size=8))
def test_overwritten_matrix_bytes(source, name, patches):
    with broken_copy(source) as folder:
        path = folder / name
        raw = bytearray(path.read_bytes())
        for where, patch in patches:
            at = byte_offset(where, len(raw))
            raw[at : at + len(patch)] = patch[: len(raw) - at]
        path.write_bytes(bytes(raw))
        assert_read_or_clear_error(folder, (name,))


# -- datasets of the wrong dtype, shape or content -----------------------------------------------------
DTYPES = [np.int64, np.int32, np.uint8, np.float64, np.float32, np.complex128, np.bool_, "S4"]


def mutations(original: np.ndarray):
    """Strategies of plausible mistakes made to one dataset, derived from its original value."""
    n = max(len(original), 1)
    index = st.integers(0, max(original.size - 1, 0))
    as_float = original.astype(np.float64)

    def with_value(i, value):
        out = as_float.copy().reshape(-1)
        if out.size:
            out[i] = value
        return out.reshape(original.shape)

    return st.one_of(
        st.sampled_from([
            original.astype(np.float64),  # atom_pairs float
            original[..., :-1] if original.ndim == 2 else original[:-1],  # N x 4, or one entry short
            np.concatenate([original, original[..., :1]], axis=-1) if original.ndim else original,  # N x 6
            original.T,
            original[::-1],
            original[:0],
            original.reshape(-1)[:1].reshape(()),  # a scalar
            original.reshape(1, -1),
            original.astype(np.int32),  # legitimate: other tools write int32
            original.astype(np.float32),
            original.astype("S8"),
            original.astype(np.complex128),
            original.astype(np.bool_),
            -original,
            original * 2**40,
            original + 7,
        ]),
        st.integers(1, n).map(lambda k: original[:-k]),
        st.integers(1, n).map(lambda k: np.concatenate([original, original[:k]])),
        st.tuples(index, st.sampled_from([np.nan, np.inf, -np.inf, 1e308, -1.0, 2.0**63])).map(
            lambda iv: with_value(*iv)),
        hnp.arrays(st.sampled_from(DTYPES), hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6)),
    )


def rewrite_dataset(path: Path, name: str, value) -> None:
    """Replace one dataset: an array, None (removed), "group" (a group where a dataset belongs) or
    "empty" (a dataset without dataspace)."""
    with h5py.File(path, "a") as f:
        del f[name]
        if isinstance(value, str) and value == "group":
            f.create_group(name)
        elif isinstance(value, str) and value == "empty":
            f.create_dataset(name, data=h5py.Empty("f8"))
        elif value is not None:
            f.create_dataset(name, data=value)


@source_names
@FUZZ
@given(data=st.data())
def test_replaced_matrix_dataset(source, data):
    name = data.draw(st.sampled_from(MATRIX_FILES), label="file")
    dataset = data.draw(st.sampled_from(MATRIX_DATASETS), label="dataset")
    with h5py.File(SOURCES[source] / name, "r") as f:
        original = f[dataset][()]
    value = data.draw(st.one_of(st.sampled_from([None, "group", "empty"]), mutations(original)), label="value")
    with broken_copy(source) as folder:
        rewrite_dataset(folder / name, dataset, value)
        assert_read_or_clear_error(folder, (name,))


# -- info.json -------------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=8,
)


def info_mutations(info: dict):
    keys = st.sampled_from(sorted(info))
    elements = sorted(info["elements_orbital_map"])

    def without(key):
        return {k: v for k, v in info.items() if k != key}

    def replaced(kv):
        return {**info, kv[0]: kv[1]}

    def shells(kv):
        return {**info, "elements_orbital_map": {**info["elements_orbital_map"], kv[0]: kv[1]}}

    text = json.dumps(info)
    return st.one_of(
        keys.map(without).map(json.dumps),
        st.tuples(keys, json_values).map(replaced).map(json.dumps),
        st.tuples(st.sampled_from(["atoms_quantity", "orbits_quantity"]), st.integers(-5, 2**64)).map(
            replaced).map(json.dumps),
        st.tuples(st.sampled_from(elements), st.one_of(
            st.lists(st.integers(-3, 10**6), max_size=4), json_values)).map(shells).map(json.dumps),
        st.just(json.dumps([info])),
        st.just(json.dumps(list(info.items()))),
        st.integers(0, len(text)).map(lambda k: text[:k]),
        st.integers(1, 10**5).map(lambda depth: "[" * depth + "]" * depth),
        st.binary(max_size=64),
    )


@source_names
@FUZZ
@given(data=st.data())
def test_odd_info_json(source, data):
    info = json.loads((SOURCES[source] / INFO).read_text())
    content = data.draw(info_mutations(info), label="info.json")
    with broken_copy(source) as folder:
        path = folder / INFO
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        # An orbital map or spin flag that contradicts the blocks is reported on the matrix file.
        assert_read_or_clear_error(folder, (INFO, OVERLAP, HAMILTONIAN))


# -- POSCAR ----------------------------------------------------------------------------------------
line_values = st.one_of(
    st.lists(st.integers(-3, 10**12), min_size=0, max_size=4).map(lambda xs: " ".join(map(str, xs))),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=0, max_size=4).map(
        lambda xs: " ".join(map(repr, xs))),
    st.lists(st.sampled_from(["O", "H", "B", "N", "X", "Xx", "Cartesian", "Direct", "", "1e999"]),
             max_size=4).map(" ".join),
    st.text(max_size=12),
)


def poscar_mutations(text: str):
    lines = text.splitlines()
    line_index = st.integers(0, len(lines) - 1)

    def replaced(iv):
        i, value = iv
        return "\n".join(lines[:i] + [value] + lines[i + 1 :]) + "\n"

    def deleted(i):
        return "\n".join(lines[:i] + lines[i + 1 :]) + "\n"

    return st.one_of(
        st.integers(0, len(text)).map(lambda k: text[:k]),
        st.tuples(line_index, line_values).map(replaced),
        st.tuples(st.just(6), line_values).map(replaced),  # the counts line
        st.tuples(st.just(5), line_values).map(replaced),  # the species line
        line_index.map(deleted),
        st.binary(max_size=64),
        st.tuples(st.integers(0, len(text)), st.binary(min_size=1, max_size=8)).map(
            lambda kb: text.encode()[: kb[0]] + kb[1] + text.encode()[kb[0] :]),
    )


@source_names
@FUZZ
@given(data=st.data())
def test_odd_poscar(source, data):
    text = (SOURCES[source] / POSCAR).read_text()
    content = data.draw(poscar_mutations(text), label="POSCAR")
    with broken_copy(source) as folder:
        path = folder / POSCAR
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        # Atoms that no longer match info.json or the blocks are reported on those files.
        assert_read_or_clear_error(folder, ALL_FILES)
