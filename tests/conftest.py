"""Shared fixtures: the real DeepH example data in ../shared, skipped with a reason when absent."""

import os
import tempfile
from pathlib import Path

import pytest

# One XLA compilation cache for the whole session, shared with the subprocesses tests start:
# the same model compiled twice (another test, a resumed run, a second device count) is loaded.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="deeph-jax-xla-"))
# One BLAS thread: XLA's own threads, ARPACK and the subprocess tests (two processes on two cores) would
# otherwise oversubscribe the CPUs, and OpenBLAS's spinning threads make small eigh / ARPACK runs 10-30x slower.
for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


def pytest_configure(config):
    from deeph_jax.runtime import enable_compilation_cache

    enable_compilation_cache()

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "deeph-dock"


def shared_path(relative: str) -> Path:
    """A path under ../shared/data/deeph-dock; the calling test is skipped when it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"needs the shared DeepH example data at {path} (../shared beside the repository)")
    return path


@pytest.fixture
def mote2_dir() -> Path:
    return shared_path("compute/eigen/eigen.clean/MoTe2")


@pytest.fixture
def molecule_set_dir() -> Path:
    return shared_path("analyze/dataset/inputs.clean/dft")


@pytest.fixture
def legacy_mote2_dir() -> Path:
    return shared_path("convert/deeph/deeph_legacy_data/MoTe2")


@pytest.fixture
def updated_mote2_dir() -> Path:
    return shared_path("convert/deeph/deeph_updated_data/MoTe2")


@pytest.fixture(scope="session")
def water_sto3g(tmp_path_factory) -> Path:
    """16 water molecules, PBE/STO-3G with PySCF: a small real-DFT dataset for training tests.

    STO-3G has s and p shells only, so a model with lmax 2 covers every block and compiles fast.
    """
    from deeph_jax.cli import main

    out = tmp_path_factory.mktemp("data") / "water-sto3g"
    assert main(["generate", "molecules", "--name", "water", "--basis", "sto-3g", "--n", "16", "--seed", "3",
                 "--out", str(out), "--no-progress"]) == 0
    return out


TINY_MODEL = {"cutoff": 5.0, "num_radial": 4, "lmax": 2, "node_channels": [8, 4, 2], "edge_channels": [8, 4, 2],
              "tp_channels": [4, 2, 1], "num_layers": 2, "radial_hidden": 8, "species_embed": 4}


def tiny_config(dataset, **train):
    """A training config that compiles in seconds: the tiny lmax-2 model on ``dataset``."""
    from deeph_jax.train.config import load_config

    base = {"name": "test", "data": {"train": str(dataset), "val_fraction": 0.0}, "model": dict(TINY_MODEL),
            "train": {"batch_size": 4, "steps": 3, "lr": 1e-2, "warmup_steps": 1, "eval_every": 1000,
                      "checkpoint_every": 1000, "log_every": 1, "progress": False, **train}}
    return load_config(base=base)


def subprocess_env() -> dict:
    """Environment for test subprocesses: the session's compilation cache, unbuffered output."""
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def two_molecules(a: Path, b: Path, out: Path, offset=(12.0, 0.0, 0.0)) -> None:
    """One structure folder holding the molecules of ``a`` and ``b`` far apart (``offset`` in
    Angstrom, beyond any test cutoff): its blocks are the two molecules' own blocks, with none
    between them, as DFT gives for molecules that far apart."""
    from dataclasses import replace

    import numpy as np

    from deeph_jax.io import read_deeph_dir, write_deeph_dir
    from deeph_jax.io.blocks import BlockSparse

    da, db = read_deeph_dir(a), read_deeph_dir(b)
    n = len(da.structure.symbols)
    structure = replace(da.structure, symbols=da.structure.symbols + db.structure.symbols,
                        positions=np.vstack([da.structure.positions, db.structure.positions + np.asarray(offset)]))

    def union(ma: BlockSparse, mb: BlockSparse) -> BlockSparse:
        blocks = dict(ma.blocks())
        blocks.update({(r1, r2, r3, i + n, j + n): v for (r1, r2, r3, i, j), v in mb.blocks()})
        return BlockSparse.from_blocks(blocks)

    info = {**da.info, "atoms_quantity": n + len(db.structure.symbols),
            "orbits_quantity": da.info["orbits_quantity"] + db.info["orbits_quantity"],
            "occupation": da.info["occupation"] + db.info["occupation"]}
    write_deeph_dir(out, replace(da, structure=structure, info=info, overlap=union(da.overlap, db.overlap),
                                 hamiltonian=union(da.hamiltonian, db.hamiltonian)))


@pytest.fixture(scope="session")
def water_mixed_sto3g(water_sto3g, tmp_path_factory) -> Path:
    """Structures of unequal size: 6 single water molecules of ``water_sto3g`` and 2 structures of
    two molecules each (3 and 6 atoms, 9 and 18 blocks), so data-parallel shards hold unequal
    numbers of block entries."""
    import shutil

    from deeph_jax.io import find_structure_dirs

    dirs = find_structure_dirs(water_sto3g)
    out = tmp_path_factory.mktemp("data") / "water-mixed-sto3g"
    for k, d in enumerate(dirs[:6]):
        shutil.copytree(d, out / f"{k:05d}")
    for k in range(2):
        two_molecules(dirs[6 + 2 * k], dirs[7 + 2 * k], out / f"{6 + k:05d}")
    return out
