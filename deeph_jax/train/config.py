"""Training configuration: YAML files with defaults, ``--set a.b=value`` overrides, strict keys.

A config has four sections: ``data`` (:class:`DataConfig`), ``model`` (the fields of
:class:`deeph_jax.model.config.ModelConfig`), ``train`` (:class:`TrainConfig`) and
``distributed``, plus a ``name``. :func:`load_config` checks every key and every value when the
config is read, before any data is loaded: a key that does not exist names the closest one, a
value outside its rule names the key, the value and what is allowed (see
:mod:`deeph_jax.train.rules`). What only the dataset can decide (does the model reach the basis'
blocks?) is checked by the trainer, right after reading the datasets' ``info.json``.
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from deeph_jax.errors import DeephError
from deeph_jax.train.rules import (Channels, Choice, EnergyWindow, Flag, Folders, Integer, Number, Optional, Text,
                                   check_section, check_value)

POSITIVE = Number(0.0, low_open=True)
NON_NEGATIVE = Number(0.0)


def _key(default, rule):
    """A config field: its default and the rule its values obey."""
    return field(default=default, metadata={"rule": rule})


def _rules(cls) -> dict:
    return {f.name: f.metadata["rule"] for f in fields(cls)}


def _check_fields(obj, section: str) -> None:
    """Each field of a frozen config dataclass through its rule, normalized in place."""
    for f in fields(obj):
        object.__setattr__(obj, f.name, check_value(f"{section}.{f.name}", getattr(obj, f.name), f.metadata["rule"], None))


@dataclass(frozen=True)
class DataConfig:
    """The ``data`` section: where the structures come from and how they are split.

    Attributes:
        train: DeepH dataset folder (or a list of folders).
        val: optional validation dataset folder (else ``val_fraction`` of ``train``).
        test: optional held-out dataset folder, evaluated at the end with the best parameters.
        val_fraction: share of ``train`` held out for validation when neither ``val`` nor split
            files are given; 0 for no validation set.
        split_seed: seed of that random split.
        train_split, val_split: optional text files, one structure folder (relative to the first
            ``train`` folder) per line.
        max_structures: use only the first N structures (quick runs).
    """

    train: str | list[str] | None = _key(None, Optional(Folders()))
    val: str | list[str] | None = _key(None, Optional(Folders()))
    test: str | list[str] | None = _key(None, Optional(Folders()))
    val_fraction: float = _key(0.1, Number(0.0, 1.0, high_open=True))
    split_seed: int = _key(0, Integer(0))
    train_split: str | None = _key(None, Optional(Text()))
    val_split: str | None = _key(None, Optional(Text()))
    max_structures: int | None = _key(None, Optional(Integer(1)))

    def __post_init__(self):
        _check_fields(self, "data")

    @classmethod
    def from_dict(cls, d: dict) -> "DataConfig":
        return cls(**d)


@dataclass(frozen=True)
class TrainConfig:
    """The ``train`` section: optimizer, schedule, loss weights, logging and checkpoints.

    Attributes:
        seed: parameter initialization and data order.
        init_from: inference bundle folder (``models/<name>/``) to start from: fine-tuning.
        batch_size: structures per step, over all devices and hosts.
        steps: optimizer steps of the run.
        time_limit_minutes: stop (as at the last step: save, evaluate, export) after this wall time of one
            invocation; ``--resume`` continues with the time afresh (a job scheduler's limit, not the run's).
        lr: peak learning rate; warmup_steps: linear warmup from 0 to ``lr``.
        schedule: ``cosine`` (decay to ``final_lr_fraction * lr`` at ``steps``) or ``constant``.
        weight_decay: AdamW's decoupled weight decay.
        grad_clip: global gradient norm clip; null for none.
        ema_decay: exponential moving average of the parameters, in [0, 1); null for none. EMA
            parameters are the ones validated, saved as best and exported.
        onsite_weight, offsite_weight: weights of the H loss of on-site blocks (self edge i == j,
            R = 0) and of off-site blocks; each term is the mean squared error (eV^2) over its own
            entries, so a few on-site blocks are not drowned by many hoppings.
        overlap_weight: weight of the S loss (S is unitless, H in eV); 0 leaves S out of the gradient.
        eigen_weight: weight of the eigenvalue loss (:mod:`deeph_jax.train.eigen_loss`; eV^2): the generalized
            eigenvalues of predicted H and DFT H with the DFT S at two generic k-points, those whose DFT value
            lies in ``eigen_window_eV`` (absolute, [low, high]; required with a weight), for structures of up to
            ``eigen_max_atoms`` atoms. 0 (default) leaves it out. Spinful H: the levels of the whole spinful
            pencil. ``eigen_kpoints``: how many of the k-points (1 for molecules: without periodic images every
            k gives the same levels, and the second would double the cost for nothing).
        shell_bias_weight: weight of the shell-bias loss (eV^2): the error of each off-site H entry averaged
            over the blocks of one element pair whose length falls in one ``shell_bias_bin_A`` (Angstrom) bin,
            squared and weighted by the blocks it averages (the part of the off-site MSE that is common to a
            neighbour shell), over the off-site entries. A bias shared by a shell's ~6-20 hoppings per atom
            moves bands coherently, where independent errors average out; the off-site MSE holds this part
            with weight 1 and this term adds to it. 0 (default) leaves it out.
        precision: float32 or float64 (all of training).
        eval_every, checkpoint_every, log_every: steps between validations, checkpoints, metric rows.
        val_band_window_eV: each validation also diagonalizes predicted and DFT H (DFT S) of the validation
            structures at four k-points and reports the mean |error| of the levels from this many eV below the
            DFT's highest occupied level to as far above its lowest empty one (absolute), and the mean |gap
            error| (:mod:`deeph_jax.train.band_metrics`; metrics.csv ``val_band_meV``, ``val_gap_meV``); null
            leaves it out.
        best_by: what the best checkpoint (and ``export: best``) is chosen by: ``h_mae`` (validation H MAE) or
            ``levels`` (``val_band_meV + val_gap_meV``: the levels near the gap and the gap, what a crystal's user
            judges; needs ``val_band_window_eV`` and validation structures with an electron count).
        keep_checkpoints: the last k checkpoints kept (the best one is kept apart).
        export: which parameters the run ships in ``model/``: ``best`` (the EMA parameters of the step with the
            best validation, see ``best_by``) or ``last`` (those of the last step). A fine-tuning on levels
            (``eigen_weight``) that trades a little block error for them wants ``best_by: levels`` or ``last``.
        progress: show a progress bar.
    """

    seed: int = _key(0, Integer(0))
    init_from: str | None = _key(None, Optional(Text()))
    batch_size: int = _key(8, Integer(1))
    steps: int = _key(1000, Integer(1))
    time_limit_minutes: float | None = _key(None, Optional(POSITIVE))
    lr: float = _key(3e-3, POSITIVE)
    warmup_steps: int = _key(50, Integer(0))
    schedule: str = _key("cosine", Choice(("cosine", "constant")))
    final_lr_fraction: float = _key(0.01, Number(0.0, 1.0))
    weight_decay: float = _key(0.0, NON_NEGATIVE)
    grad_clip: float | None = _key(1.0, Optional(POSITIVE))
    ema_decay: float | None = _key(0.99, Optional(Number(0.0, 1.0, high_open=True)))
    onsite_weight: float = _key(1.0, NON_NEGATIVE)
    offsite_weight: float = _key(1.0, NON_NEGATIVE)
    overlap_weight: float = _key(1.0, NON_NEGATIVE)
    eigen_weight: float = _key(0.0, NON_NEGATIVE)
    eigen_window_eV: list | None = _key(None, Optional(EnergyWindow()))
    eigen_max_atoms: int = _key(32, Integer(1))
    eigen_kpoints: int = _key(2, Integer(1, 2))
    shell_bias_weight: float = _key(0.0, NON_NEGATIVE)
    shell_bias_bin_A: float = _key(0.25, POSITIVE)
    precision: str = _key("float32", Choice(("float32", "float64")))
    eval_every: int = _key(100, Integer(1))
    val_band_window_eV: float | None = _key(3.0, Optional(POSITIVE))
    best_by: str = _key("h_mae", Choice(("h_mae", "levels")))
    checkpoint_every: int = _key(100, Integer(1))
    keep_checkpoints: int = _key(3, Integer(1))
    export: str = _key("best", Choice(("best", "last")))
    log_every: int = _key(10, Integer(1))
    progress: bool = _key(True, Flag())

    def __post_init__(self):
        _check_fields(self, "train")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return cls(**d)

    @classmethod
    def coerce(cls, tc: "TrainConfig | dict") -> "TrainConfig":
        """A TrainConfig from itself or from a (checked) ``train`` dict."""
        return tc if isinstance(tc, cls) else cls.from_dict(tc)


DISTRIBUTED_RULES = {"coordinator_address": Optional(Text()), "num_processes": Optional(Integer(1)),
                     "process_id": Optional(Integer(0))}

DEFAULTS: dict[str, Any] = {
    "name": "run",
    "data": asdict(DataConfig()),
    "model": {},  # ModelConfig fields (defaults there); model.cutoff is also the pair-graph cutoff
    "train": asdict(TrainConfig()),
    "distributed": {
        "coordinator_address": None,  # host:port of process 0; also DEEPH_COORDINATOR
        "num_processes": None,  # also DEEPH_NUM_PROCESSES
        "process_id": None,  # also DEEPH_PROCESS_ID
    },
}

MODEL_RULES = {
    "cutoff": POSITIVE, "message_cutoff": Optional(POSITIVE), "num_radial": Integer(1), "lmax": Integer(0),
    "node_channels": Channels(), "edge_channels": Channels(), "tp_channels": Channels(), "num_layers": Integer(1),
    "radial_hidden": Integer(1), "avg_num_neighbors": POSITIVE, "species_embed": Integer(1),
    "spin": Choice(("none", "soc", "collinear")), "radial_scale": Flag(),
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


def _check_sections_are_mappings(config: dict, source_of) -> None:
    for section in ("data", "model", "train", "distributed"):
        if not isinstance(config.get(section, {}), dict):
            raise DeephError(f"{section} = {config[section]!r}: must be a mapping of keys", source_of(section))


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
    """``"train.lr=1e-3"`` -> (["train", "lr"], '1e-3'); the value is parsed as YAML (and, for a
    number-valued key, as a number when checked)."""
    if "=" not in text:
        raise DeephError(f"override '{text}' is not KEY=VALUE (e.g. train.lr=1e-3)", source)
    key, value = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(value)


def _check_data(dc: dict, source_of) -> dict:
    dc = check_section(dc, _rules(DataConfig), "data", source_of)
    if dc["val_split"] and not dc["train_split"]:
        raise DeephError("data.val_split needs data.train_split (the structures to train on)",
                         source_of("data.val_split"))
    return dc


def _check_train(tc: dict, source_of) -> dict:
    tc = check_section(tc, _rules(TrainConfig), "train", source_of)
    weights = ("onsite_weight", "offsite_weight", "overlap_weight")
    if not any(tc[w] for w in weights):
        raise DeephError("train.onsite_weight, train.offsite_weight and train.overlap_weight are all 0: "
                         "nothing to train", source_of("train.onsite_weight"))
    if tc["eigen_weight"] and tc["eigen_window_eV"] is None:
        raise DeephError("train.eigen_weight needs train.eigen_window_eV: the [low, high] DFT eigenvalues (eV, "
                         "absolute) to compare, e.g. the Fermi level +- 4 eV", source_of("train.eigen_weight"))
    return tc


def _check_model(mc: dict, source_of) -> dict:
    """Each model value through its rule, then the cross-key rules of ModelConfig as one line."""
    from deeph_jax.model.config import ModelConfig

    mc = check_section(mc, MODEL_RULES, "model", source_of)
    for name in ("node_channels", "edge_channels", "tp_channels"):
        if len(mc[name]) != mc["lmax"] + 1:
            # Name where the user changed something: an overridden lmax against a file's lists.
            source = source_of("model.lmax") if source_of("model.lmax") == "--set" else source_of(f"model.{name}")
            raise DeephError(f"model.{name} = {mc[name]}: must have lmax + 1 = {mc['lmax'] + 1} entries "
                             f"(model.lmax = {mc['lmax']})", source)
    if mc["message_cutoff"] is not None and mc["message_cutoff"] > mc["cutoff"]:
        raise DeephError(f"model.message_cutoff = {mc['message_cutoff']}: must be <= model.cutoff = {mc['cutoff']}",
                         source_of("model.message_cutoff"))
    try:
        ModelConfig.from_dict(mc)
    except (TypeError, ValueError) as exc:  # a rule of ModelConfig not mirrored above
        raise DeephError(f"model: {exc}", source_of("model")) from None
    return mc


def check_config(config: dict, source_of=lambda key: None) -> dict:
    """A merged config with every value checked and normalized (numbers as int/float, lists as lists).

    ``source_of(dotted_key)`` names where a key was set (a file, ``--set``) for the error line.
    """
    out = dict(config)
    out["name"] = check_value("name", config["name"], Text(), source_of("name"))
    out["data"] = _check_data(config["data"], source_of)
    out["train"] = _check_train(config["train"], source_of)
    out["model"] = _check_model(config["model"], source_of)
    out["distributed"] = check_section(config["distributed"], DISTRIBUTED_RULES, "distributed", source_of)
    return out


def _read_yaml_mapping(path: Path) -> dict:
    if not path.is_file():
        raise DeephError("config file not found", path)
    try:
        user = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise DeephError(f"not valid YAML ({str(exc).splitlines()[0]})", path) from None
    if not isinstance(user, dict):
        raise DeephError("a config is a YAML mapping", path)
    return user


def load_config(path: str | Path | None = None, overrides: list[str] = (), base: dict | None = None) -> dict:
    """Defaults <- YAML file (or ``base``) <- overrides, every key and value checked. Returns a plain dict."""
    user: dict = {} if base is None else copy.deepcopy(base)
    if path is not None:
        path = Path(path)
        user = _read_yaml_mapping(path)
    reference = _reference()
    _check_keys(user, reference, "", path)
    overridden = set()
    for text in overrides:
        keys, value = parse_override(text)
        node = user
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise DeephError(f"'{text}': {k} is not a section", "--set")
        node[keys[-1]] = value
        overridden.add(".".join(keys))
        _check_keys(user, reference, "", "--set")

    def source_of(key: str):
        return "--set" if key in overridden else path

    _check_sections_are_mappings(user, source_of)
    config = _merge(DEFAULTS, user)
    config["model"] = _merge(reference["model"], user.get("model", {}))
    return check_config(config, source_of)


def save_config(config: dict, path: str | Path) -> None:
    from deeph_jax.io.atomic import write_text_atomic

    write_text_atomic(path, yaml.safe_dump(config, sort_keys=False))
