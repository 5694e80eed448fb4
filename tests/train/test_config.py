"""Every config value is checked when the config is read: one line naming key, value and what is allowed."""

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY_MODEL, tiny_config
from deeph_jax.errors import DeephError
from deeph_jax.train.config import DataConfig, TrainConfig, load_config

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "configs" / "demo.yaml"


BAD_OVERRIDES = [
    ("train.precision=float16", r"train.precision = 'float16': must be one of float32, float64"),
    ("train.schedule=nonsense", r"train.schedule = 'nonsense': must be one of cosine, constant"),
    ("train.lr=-1e-3", r"train.lr = '-1e-3': must be a number > 0"),
    ("train.lr=0", r"train.lr = 0: must be a number > 0"),
    ("train.steps=2.5", r"train.steps = 2.5: must be an integer >= 1"),
    ("train.steps=-10", r"train.steps = -10: must be an integer >= 1"),
    ("train.steps=many", r"train.steps = 'many': must be an integer >= 1"),
    ("train.batch_size=0", r"train.batch_size = 0: must be an integer >= 1"),
    ("train.eval_every=0", r"train.eval_every = 0: must be an integer >= 1"),
    ("train.checkpoint_every=-1", r"train.checkpoint_every = -1: must be an integer >= 1"),
    ("train.log_every=1.5", r"train.log_every = 1.5: must be an integer >= 1"),
    ("train.keep_checkpoints=0", r"train.keep_checkpoints = 0: must be an integer >= 1"),
    ("train.ema_decay=1.0", r"train.ema_decay = 1.0: must be a number in \[0, 1\), or null"),
    ("train.ema_decay=-0.5", r"train.ema_decay = -0.5: must be a number in \[0, 1\), or null"),
    ("train.grad_clip=0", r"train.grad_clip = 0: must be a number > 0, or null"),
    ("train.warmup_steps=-1", r"train.warmup_steps = -1: must be an integer >= 0"),
    ("train.weight_decay=-1", r"train.weight_decay = -1: must be a number >= 0"),
    ("train.overlap_weight=-1", r"train.overlap_weight = -1: must be a number >= 0"),
    ("train.onsite_weight=.nan", r"train.onsite_weight = nan: must be a number >= 0"),
    ("train.progress=3", r"train.progress = 3: must be true or false"),
    ("train.time_limit_minutes=0", r"train.time_limit_minutes = 0: must be a number > 0, or null"),
    ("train.seed=-1", r"train.seed = -1: must be an integer >= 0"),
    ("data.val_fraction=1", r"data.val_fraction = 1: must be a number in \[0, 1\)"),
    ("data.max_structures=0", r"data.max_structures = 0: must be an integer >= 1, or null"),
    ("data.train=[]", r"data.train = \[\]: must be a folder path or a list of folder paths, or null"),
    ("model.cutoff=0", r"model.cutoff = 0: must be a number > 0"),
    ("model.lmax=1", r"model.node_channels = \[48, 16, 8, 4, 4\]: must have lmax \+ 1 = 2 entries \(model.lmax = 1\)"),
    ("model.edge_channels=[8,4]", r"model.edge_channels = \[8, 4\]: must have lmax \+ 1 = 5 entries"),
    ("model.node_channels=[0,4,2,2,2]", r"model.node_channels = \[0, 4, 2, 2, 2\]: must be a list of integers >= 0"),
    ("model.message_cutoff=9", r"model.message_cutoff = 9.0: must be <= model.cutoff = 6.0"),
    ("model.radial_scale=maybe", r"model.radial_scale = 'maybe': must be true or false"),
    ("train=3", r"train = 3: must be a mapping of keys"),
    ("train.eigen_window_eV=[1,0]", r"train.eigen_window_eV = \[1, 0\]: must be a list \[low, high\] of two numbers"),
    ("train.eigen_weight=1", r"train.eigen_weight needs train.eigen_window_eV"),
]


@pytest.mark.parametrize("override, message", BAD_OVERRIDES, ids=[o for o, _ in BAD_OVERRIDES])
def test_bad_value_is_one_line_naming_key_value_and_rule(override, message):
    with pytest.raises(DeephError, match=r"^--set: " + message) as info:
        load_config(DEMO, [override])
    assert "\n" not in str(info.value)


def test_bad_value_in_a_file_names_the_file(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  precision: float16\n")
    with pytest.raises(DeephError, match=r"c.yaml: train.precision = 'float16': must be one of float32, float64"):
        load_config(cfg)


def test_all_loss_weights_zero_is_refused():
    with pytest.raises(DeephError, match="all 0: nothing to train"):
        load_config(DEMO, ["train.onsite_weight=0", "train.offsite_weight=0", "train.overlap_weight=0"])


def test_environment_charges_need_the_long_range_channel():
    with pytest.raises(DeephError, match="long_range_charges needs the long-range channel: set long_range_alpha"):
        load_config(DEMO, ["model.long_range_charges=true"])


def test_val_split_needs_train_split():
    with pytest.raises(DeephError, match="data.val_split needs data.train_split"):
        load_config(DEMO, ["data.val_split=val.txt"])


def test_values_are_normalized_and_typed():
    config = load_config(DEMO, ["train.lr=1e-3", "train.steps=1e4", "train.warmup_steps=20000", "train.grad_clip=null"])
    tc = TrainConfig.from_dict(config["train"])
    assert tc.lr == 1e-3 and isinstance(tc.lr, float)  # PyYAML reads 1e-3 as a string
    assert tc.steps == 10000 and isinstance(tc.steps, int)
    assert tc.warmup_steps == 20000  # warmup longer than the run is allowed
    assert tc.grad_clip is None
    assert DataConfig.from_dict(config["data"]).train == "datasets/water-pbe-def2svp"
    assert config["model"]["node_channels"] == [48, 16, 8, 4, 4]


def test_shipped_configs_are_valid():
    for path in sorted((REPO / "configs").glob("*.yaml")):
        load_config(path)


def test_model_that_cannot_reach_the_basis_is_refused_before_training(tmp_path):
    from deeph_jax.train.loop import Trainer

    model = {**TINY_MODEL}  # lmax 2: enough for s and p shells, not for def2-SVP's d shells on O
    config = load_config(base={"data": {"train": str(REPO / "datasets" / "water-pbe-def2svp"), "max_structures": 4},
                               "model": model})
    with pytest.raises(DeephError, match=r"model.lmax = 2 is too small for the dataset basis \(H ssp, O sssppd\).*"
                                         r"L = 4; set model.lmax >= 4"):
        Trainer(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def _tiny_config_file(tmp_path) -> Path:
    import yaml

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(REPO / "datasets" / "water-pbe-def2svp")))
    return cfg


def test_cli_bad_value_is_one_line_exit_2_and_writes_nothing(tmp_path):
    run = tmp_path / "run"
    out = subprocess.run([sys.executable, str(REPO / "train.py"), "--config", str(_tiny_config_file(tmp_path)),
                          "--run-dir", str(run), "--set", "train.precision=float16"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr == ("train.py: error: --set: train.precision = 'float16': must be one of float32, float64\n")
    assert not run.exists()


@pytest.mark.parametrize("override", ["train.schedule=nonsense", "model.lmax=1", "train.batch_size=-8"])
def test_train_main_bad_value_is_one_line_exit_2(tmp_path, capsys, override):
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_entry", REPO / "train.py")
    entry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(entry)
    run = tmp_path / "run"
    status = entry.main(["--config", str(_tiny_config_file(tmp_path)), "--run-dir", str(run), "--set", override])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and err.startswith("train.py: error: --set: "), err
    assert "Traceback" not in err and not run.exists()
