"""Data parallel over 2 devices and over 2 processes equals one device with the same global batch.

The data mixes structures of one and two water molecules, so the two shards of a step hold
unequal numbers of block entries: a loss averaged per device (not over the global entry counts)
would differ from one device.
"""

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import subprocess_env, tiny_config

WORKER = Path(__file__).with_name("steps_worker.py")
pytestmark = pytest.mark.slow


def run_worker(config, run_dir: Path, out: Path, env: dict, n_devices=None, wait=True):
    cfg_file = run_dir.parent / f"{run_dir.name}.json"
    cfg_file.write_text(json.dumps(config))
    cmd = [sys.executable, str(WORKER), str(cfg_file), str(run_dir), str(out)] + ([str(n_devices)] if n_devices else [])
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if not wait:
        return proc
    text, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, text[-3000:]
    return text


def load(out: Path, pid: int = 0) -> dict:
    with np.load(f"{out}.{pid}.npz") as f:
        return {k: f[k] for k in f.files}


def assert_leaves_close(a: dict, b: dict, rtol: float = 1e-6):
    assert a.keys() == b.keys()
    for k in a:
        diff = np.linalg.norm(a[k].astype(np.float64) - b[k])
        assert diff <= rtol * max(np.linalg.norm(b[k].astype(np.float64)), 1e-30), (k, diff)


def shard_entry_counts(dataset: Path, config: dict, n_shards: int = 2) -> list[tuple[int, ...]]:
    """Per step, the H block entries (orbital pairs over graph edges) of each shard."""
    from deeph_jax.io import find_structure_dirs, read_deeph_dir
    from deeph_jax.train.data import global_batch_indices

    dirs = find_structure_dirs(dataset)
    entries = [read_deeph_dir(d).hamiltonian.entries.size for d in dirs]
    B = config["train"]["batch_size"]
    counts = []
    for step in range(config["train"]["steps"]):
        idx, _ = global_batch_indices(len(dirs), B, config["train"]["seed"], step)
        per = B // n_shards
        counts.append(tuple(sum(entries[i] for i in idx[k * per:(k + 1) * per]) for k in range(n_shards)))
    return counts


def test_the_shards_are_unequal(water_mixed_sto3g):
    counts = shard_entry_counts(water_mixed_sto3g, tiny_config(water_mixed_sto3g))
    assert any(len(set(c)) > 1 for c in counts), counts


@pytest.fixture(scope="module")
def one_device_params(water_mixed_sto3g, tmp_path_factory):
    d = tmp_path_factory.mktemp("dp")
    env = subprocess_env()
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    run_worker(tiny_config(water_mixed_sto3g), d / "one", d / "one", env, n_devices=1)
    return load(d / "one"), d


def test_two_devices_equal_one(one_device_params, water_mixed_sto3g):
    ref, d = one_device_params
    env = subprocess_env()
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    text = run_worker(tiny_config(water_mixed_sto3g), d / "two", d / "two", env)
    assert "devices 2 processes 1" in text
    two = load(d / "two")
    assert_leaves_close(two, ref)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one_device(one_device_params, water_mixed_sto3g):
    ref, d = one_device_params
    port = free_port()
    procs = []
    for pid in range(2):
        env = subprocess_env()
        env.update(DEEPH_COORDINATOR=f"127.0.0.1:{port}", DEEPH_NUM_PROCESSES="2", DEEPH_PROCESS_ID=str(pid),
                   JAX_PLATFORMS="cpu")
        env.pop("XLA_FLAGS", None)
        procs.append(run_worker(tiny_config(water_mixed_sto3g), d / "multi", d / "multi", env, wait=False))
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    for p, text in zip(procs, outputs):
        assert p.returncode == 0, text[-3000:]
    assert "devices 2 processes 2" in outputs[0]
    p0, p1 = load(d / "multi", 0), load(d / "multi", 1)
    for k in p0:
        assert np.array_equal(p0[k], p1[k]), k  # both hosts hold identical parameters
    assert_leaves_close(p0, ref)
