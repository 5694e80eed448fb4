"""Training configuration: YAML files with defaults, ``--set a.b=value`` overrides, strict keys.

A config has four sections: ``data``, ``model`` (the fields of
:class:`deeph_jax.model.config.ModelConfig`), ``train`` and ``distributed``, plus a ``name``.
A key that does not exist is an error that names it and suggests the closest one.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

import yaml

from deeph_jax.errors import DeephError

DEFAULTS: dict[str, Any] = {
    "name": "run",
    "data": {
        "train": None,  # DeepH dataset folder (list of folders allowed)
        "val": None,  # optional validation dataset folder (else a val_fraction of data.train)
        "test": None,  # optional held-out dataset folder, evaluated at the end with the best parameters
        "val_fraction": 0.1,  # of the training folder, when neither data.val nor split files are given
        "split_seed": 0,
        "train_split": None,  # optional text file: one structure folder (relative path) per line
        "val_split": None,
        "max_structures": None,  # use only the first N structures (quick runs)
    },
    "model": {},  # ModelConfig fields (defaults there); model.cutoff is also the pair-graph cutoff
    "train": {
        "seed": 0,
        "init_from": None,  # inference bundle (models/<name>/) to start from: fine-tuning
        "batch_size": 8,  # structures per step, over all devices and hosts
        "steps": 1000,
        "time_limit_minutes": None,  # stop (as at the last step: save, evaluate, export) after this wall time
        "lr": 3e-3,
        "warmup_steps": 50,
        "schedule": "cosine",  # cosine | constant
        "final_lr_fraction": 0.01,
        "weight_decay": 0.0,
        "grad_clip": 1.0,  # global norm; null for none
        "ema_decay": 0.99,  # null for no EMA; EMA parameters are the ones validated and saved as best
        "overlap_weight": 1.0,  # weight of the S loss (S is unitless, H in eV)
        "precision": "float32",  # float32 | float64
        "eval_every": 100,
        "checkpoint_every": 100,
        "keep_checkpoints": 3,
        "log_every": 10,
        "progress": True,
    },
    "distributed": {
        "coordinator_address": None,  # host:port of process 0; also DEEPH_COORDINATOR
        "num_processes": None,  # also DEEPH_NUM_PROCESSES
        "process_id": None,  # also DEEPH_PROCESS_ID
    },
}


# Names users bring from other codes, mapped to ours for the "did you mean" hint.
ALIASES = {"learning_rate": "lr", "epochs": "steps", "max_steps": "steps", "layers": "num_layers",
           "n_layers": "num_layers", "r_cut": "cutoff", "rcut": "cutoff", "ema": "ema_decay", "clip": "grad_clip",
           "warmup": "warmup_steps", "dataset": "train", "batch": "batch_size"}


def _model_fields() -> dict[str, Any]:
    from deeph_jax.model.config import ModelConfig

    return ModelConfig().to_dict()


def _check_keys(config: dict, reference: dict, where: str, source) -> None:
    for key, value in config.items():
        if key not in reference:
            close = [ALIASES[key]] if ALIASES.get(key) in reference else difflib.get_close_matches(key, list(reference), n=1)
            hint = f"; did you mean '{where}{close[0]}'?" if close else f"; known: {', '.join(sorted(reference))}"
            raise DeephError(f"unknown config key '{where}{key}'{hint}", source)
        if isinstance(reference[key], dict) and reference[key] and isinstance(value, dict):
            _check_keys(value, reference[key], f"{where}{key}.", source)


def _merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in update.items():
        out[k] = _merge(out[k], v) if isinstance(out.get(k), dict) and isinstance(v, dict) else v
    return out


def _reference() -> dict:
    ref = copy.deepcopy(DEFAULTS)
    ref["model"] = _model_fields()
    return ref


def parse_override(text: str, source="--set") -> tuple[list[str], Any]:
    """``"train.lr=1e-3"`` -> (["train", "lr"], 0.001); the value is parsed as YAML."""
    if "=" not in text:
        raise DeephError(f"override '{text}' is not KEY=VALUE (e.g. train.lr=1e-3)", source)
    key, value = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(value)


def load_config(path: str | Path | None = None, overrides: list[str] = (), base: dict | None = None) -> dict:
    """Defaults <- YAML file (or ``base``) <- overrides, every key checked. Returns a plain dict."""
    user: dict = {} if base is None else copy.deepcopy(base)
    source = path
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise DeephError("config file not found", path)
        try:
            user = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise DeephError(f"not valid YAML ({str(exc).splitlines()[0]})", path) from None
        if not isinstance(user, dict):
            raise DeephError("a config is a YAML mapping", path)
    reference = _reference()
    _check_keys(user, reference, "", source)
    for text in overrides:
        keys, value = parse_override(text)
        node = user
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
        _check_keys(user, reference, "", "--set")
    config = _merge(DEFAULTS, user)
    config["model"] = _merge(reference["model"], user.get("model", {}))
    return config


def save_config(config: dict, path: str | Path) -> None:
    from deeph_jax.io.atomic import write_text_atomic

    write_text_atomic(path, yaml.safe_dump(config, sort_keys=False))
