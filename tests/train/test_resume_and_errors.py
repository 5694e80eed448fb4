"""Kill and resume gives the uninterrupted result bitwise; bad configs get one clear line."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import subprocess_env, tiny_config
from deeph_jax.errors import DeephError
from deeph_jax.train.config import load_config

REPO = Path(__file__).resolve().parents[2]


def write_config(config: dict, path: Path) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(config))
    return path


def final_checkpoint(run_dir: Path) -> dict:
    mngr = ocp.CheckpointManager((run_dir / "checkpoints" / "last").resolve())
    tree = mngr.restore(mngr.latest_step(), args=ocp.args.StandardRestore())
    mngr.close()
    import jax

    return {jax.tree_util.keystr(k): np.asarray(v) for k, v in jax.tree_util.tree_leaves_with_path(tree)}


@pytest.mark.slow
def test_kill_and_resume_is_bitwise_identical(water_sto3g, tmp_path):
    env = subprocess_env()
    config = tiny_config(water_sto3g, steps=8, checkpoint_every=2)
    cfg = write_config(config, tmp_path / "c.yaml")
    train = [sys.executable, str(REPO / "train.py"), "--config", str(cfg)]
    full = subprocess.run(train + ["--run-dir", str(tmp_path / "full")], env=env, capture_output=True, text=True, timeout=900)
    assert full.returncode == 0, full.stderr[-3000:]

    run = tmp_path / "killed"
    proc = subprocess.Popen(train + ["--run-dir", str(run)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    marker = run / "checkpoints" / "last" / "2" / "commit_success.txt"
    deadline = time.time() + 600
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert marker.exists(), "no checkpoint before the kill"
    steps_done = sorted(int(p.name) for p in (run / "checkpoints" / "last").iterdir() if p.name.isdigit())
    assert steps_done[-1] < 8, "the run finished before it was killed; nothing was resumed"

    resumed = subprocess.run([sys.executable, str(REPO / "train.py"), "--resume", str(run)], env=env,
                             capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = final_checkpoint(tmp_path / "full"), final_checkpoint(run)
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), f"{k} differs after resume"


def test_unknown_config_key_suggests_closest(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  learning_rate: 0.1\n")
    with pytest.raises(DeephError, match=r"unknown config key 'train.learning_rate'.*did you mean 'train.lr"):
        load_config(cfg)
    with pytest.raises(DeephError, match=r"'model.num_layer'.*did you mean 'model.num_layers'"):
        load_config(None, ["model.num_layer=2"])


def test_cli_errors_are_one_line(tmp_path, water_sto3g):
    empty = tmp_path / "empty"
    empty.mkdir()
    cfg = write_config(tiny_config(empty), tmp_path / "c.yaml")
    out = subprocess.run([sys.executable, str(REPO / "train.py"), "--config", str(cfg)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "no structures" in out.stderr and out.stderr.strip().count("\n") == 0

    out = subprocess.run([sys.executable, str(REPO / "train.py"), "--config", str(cfg), "--set", "train.lrr=1"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "did you mean 'train.lr'" in out.stderr


@pytest.mark.slow
def test_resume_with_a_different_basis_is_refused(water_sto3g, tmp_path):
    from deeph_jax.train.loop import Trainer

    run = tmp_path / "run"
    Trainer(tiny_config(water_sto3g), run)  # writes basis.json
    other = tmp_path / "other"
    shutil.copytree(water_sto3g, other)
    for info_file in other.rglob("info.json"):
        info = json.loads(info_file.read_text())
        info["elements_orbital_map"]["H"] = [0, 0]
        info["orbits_quantity"] = info["orbits_quantity"] + 2
        info_file.write_text(json.dumps(info))
    with pytest.raises(DeephError, match="differs from the checkpoint"):
        Trainer(tiny_config(other), run, resume=True)


def test_time_limit_counts_one_invocation(water_sto3g, tmp_path):
    """A time limit is a job scheduler's: --resume gets it afresh, however long the run's earlier invocations took
    (counting the run's total wall time, a run past its limit took one step per resume)."""
    from deeph_jax.train.loop import train

    run = tmp_path / "run"
    first = train(tiny_config(water_sto3g, steps=3, checkpoint_every=1, time_limit_minutes=1e-6), run)
    assert first["steps"] == 1
    metrics = run / "metrics.csv"
    header, *rows = metrics.read_text().splitlines()
    col = header.split(",").index("wall_time_s")
    aged = [",".join("1e6" if k == col else v for k, v in enumerate(r.split(","))) for r in rows]
    metrics.write_text("\n".join([header, *aged]) + "\n")  # as if the first invocation had run 11 days
    second = train(load_config(run / "config.yaml", ["train.time_limit_minutes=10"]), run, resume=True)
    assert second["steps"] == 3
