"""One run per run folder; the exported bundle holds the best validation step's EMA parameters of
this run (the last step's when there is no validation set).

The runs share one compiled train step: they differ only in seed, validation split and
reported validation errors, none of which enters the program.
"""

import importlib.util
import json
from pathlib import Path

import jax
import numpy as np
import pytest

from conftest import tiny_config
from deeph_jax.errors import DeephError
from deeph_jax.train.data import list_structures
from deeph_jax.train.loop import Trainer

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def leaves(tree) -> dict:
    return {jax.tree_util.keystr(k): np.asarray(v, np.float64) for k, v in jax.tree_util.tree_leaves_with_path(tree)}


def bundle_params(run_dir: Path) -> dict:
    from deeph_jax.predict.bundle import load_bundle

    return leaves(load_bundle(run_dir / "model")[2])


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


class RecordingTrainer(Trainer):
    """Keeps the EMA parameters it validates at each step; ``mae_factors[k]`` rescales the k-th
    validation's H errors, so a chosen step is the best."""

    def __init__(self, *args, mae_factors=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.mae_factors = mae_factors
        self.validated: dict[int, dict] = {}
        self._factor = None

    def validate_step(self, row, state, ckpts, progress, write):
        self.validated[row["step"]] = leaves(state.ema)
        if self.mae_factors:
            self._factor = self.mae_factors[len(self.validated) - 1]
        super().validate_step(row, state, ckpts, progress, write)
        self._factor = None

    def validate(self, params, samples=None, *args, **kwargs):
        result = super().validate(params, samples, *args, **kwargs)
        if result is not None and self._factor is not None:
            result[1].abs_err_h = result[1].abs_err_h * self._factor
        return result


def run_config(dataset, seed: int, val_fraction: float) -> dict:
    config = tiny_config(dataset, seed=seed, eval_every=1, checkpoint_every=1)
    config["data"].update(max_structures=12, val_fraction=val_fraction)
    return config


@pytest.fixture(scope="module")
def two_runs(water_sto3g, tmp_path_factory):
    """Run A (seed 0) into a folder, then run B (seed 1, the best validation at step 2 of 3) into
    the same folder: first without --overwrite (refused), then with it."""
    run = tmp_path_factory.mktemp("runs") / "run"
    first = RecordingTrainer(run_config(water_sto3g, 0, 1 / 3), run)
    first.run()
    params_a = bundle_params(run)
    with pytest.raises(DeephError) as refused:
        Trainer(run_config(water_sto3g, 1, 1 / 3), run)
    second = RecordingTrainer(run_config(water_sto3g, 1, 1 / 3), run, overwrite=True, mae_factors=[1.0, 0.5, 2.0])
    second.run()
    return run, first, params_a, refused.value, second


def test_new_run_into_a_run_folder_is_refused(two_runs):
    run, _, _, refused, _ = two_runs
    assert str(refused) == f"{run}: run folder already holds a run; use --resume to continue it or --overwrite to " \
                          f"start afresh"


def test_overwrite_exports_the_new_runs_parameters(two_runs):
    run, first, params_a, _, second = two_runs
    exported = bundle_params(run)
    assert not same(exported, params_a)
    assert any(same(exported, p) for p in second.validated.values())
    assert not any(same(exported, p) for p in first.validated.values())
    assert sorted(int(p.name) for p in (run / "checkpoints" / "best").iterdir() if p.name.isdigit()) == [2]


def test_exported_parameters_are_the_best_validation_steps_not_the_last(two_runs):
    run, _, _, _, second = two_runs
    exported = bundle_params(run)
    assert same(exported, second.validated[2])
    assert not same(exported, second.validated[3])
    meta = json.loads((run / "model" / "metadata.json").read_text())
    assert meta["selected_step"] == 2 and "best validation step 2" in meta["parameters"]
    rows = (run / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert "val_mae_onsite_meV" in header and "val_mae_offsite_meV" in header
    values = dict(zip(header, rows[-1].split(",")))
    assert float(values["val_mae_onsite_meV"]) > 0 and float(values["val_mae_offsite_meV"]) > 0
    # the levels of predicted and DFT H (water: the molecule's levels around its HOMO-LUMO gap)
    assert 0 < float(values["val_band_meV"]) < 1e4 and 0 <= float(values["val_gap_meV"]) < 1e4
    table = (run / "breakdown.txt").read_text()
    assert "block         on-site" in table and "block         off-site" in table


def test_export_last_ships_the_last_step_even_when_an_earlier_one_validated_better(water_sto3g, tmp_path):
    config = run_config(water_sto3g, 1, 1 / 3)
    config["train"]["export"] = "last"
    trainer = RecordingTrainer(config, tmp_path / "run", mae_factors=[1.0, 0.5, 2.0])
    trainer.run()
    assert same(bundle_params(tmp_path / "run"), trainer.validated[3])
    meta = json.loads((tmp_path / "run" / "model" / "metadata.json").read_text())
    assert meta["selected_step"] == 3 and "train.export: last" in meta["parameters"]


def test_best_by_levels_exports_the_step_with_the_best_levels_and_refuses_a_switch(water_sto3g, tmp_path):
    import csv

    config = run_config(water_sto3g, 0, 1 / 3)
    config["train"]["best_by"] = "levels"
    config["data"]["test"] = str(water_sto3g)  # not held out: only to see the test report carry the levels
    Trainer(config, tmp_path / "run").run()
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").read_text().splitlines()))
    scores = {int(r["step"]): float(r["val_band_meV"]) + float(r["val_gap_meV"]) for r in rows if r["val_band_meV"]}
    assert sorted(scores) == [1, 2, 3]
    meta = json.loads((tmp_path / "run" / "model" / "metadata.json").read_text())
    assert meta["selected_step"] == min(scores, key=scores.get)
    assert meta["test_band_meV"] > 0 and meta["test_gap_meV"] >= 0
    assert meta["n_test"] == len(list_structures(water_sto3g))
    # resuming under the other criterion would compare H MAE in eV with level errors in meV
    config["train"].update(best_by="h_mae", steps=4)
    with pytest.raises(DeephError, match="best checkpoint was chosen by levels"):
        Trainer(config, tmp_path / "run", resume=True).run(resume=True)


def test_run_without_validation_set_exports_the_last_ema_parameters(water_sto3g, tmp_path):
    trainer = Trainer(run_config(water_sto3g, 0, 0.0), tmp_path / "run")
    trainer.run()
    assert same(bundle_params(tmp_path / "run"), leaves(trainer.final_state.ema))
    meta = json.loads((tmp_path / "run" / "model" / "metadata.json").read_text())
    assert meta["selected_step"] == 3 and "no validation set" in meta["parameters"]


def test_cli_refuses_a_run_folder_that_holds_a_run(tmp_path, capsys, water_sto3g):
    import yaml

    run = tmp_path / "run"
    (run / "checkpoints" / "last" / "3").mkdir(parents=True)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(water_sto3g)))
    spec = importlib.util.spec_from_file_location("train_entry", REPO / "train.py")
    entry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(entry)
    assert entry.main(["--config", str(cfg), "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert err == f"train.py: error: {run}: run folder already holds a run; use --resume to continue it or " \
                  f"--overwrite to start afresh\n"
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints"]  # nothing written
