"""``train(config)``: the training run, from dataset folders to a run folder.

The run folder (see :mod:`deeph_jax.train.run_folder`) holds one run: the resolved config,
metrics, checkpoints, plots, the error breakdown and, at the end, an inference bundle ``model/``
(see :mod:`deeph_jax.predict.bundle`). :class:`Trainer` reads the datasets and builds the model
(``__init__``); :meth:`Trainer.run` starts or restores the state, steps to ``train.steps``
(validating, checkpointing) and finishes (breakdown, plots, test set, bundle).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from deeph_jax.errors import DeephError
from deeph_jax.io import OrbitalBasis, read_deeph_dir
from deeph_jax.io.atomic import write_text_atomic
from deeph_jax.runtime import init_distributed
from deeph_jax.train import data as D
from deeph_jax.train.config import TrainConfig, check_config, save_config
from deeph_jax.train.run_folder import clear_run, read_metrics, refuse_existing_run, write_metrics
from deeph_jax.units import EV_TO_MICROHARTREE


# Padded-size buckets per octave for training steps. Power-of-two buckets padded two 18-atom hBN cells
# (4,340 edges) to 8,192 edges, and the step's cost follows the padded edges; quarter octaves pad by at most
# 25 %, and a training set of a few cell sizes still compiles only a handful of shapes.
STEP_BUCKETS_PER_OCTAVE = 4


def _graph_size(path: Path, cutoff: float) -> tuple[int, int]:
    from deeph_jax.graph import build_graph

    g = build_graph(read_deeph_dir(path, hamiltonian=None).structure, cutoff)
    return g.n_nodes, g.n_edges


def check_model_fits_basis(model_config, layout, basis: OrbitalBasis) -> None:
    """One line when the model's edge irreps cannot emit every block of the dataset's basis.

    A Linear cannot create an irrep its input lacks, so each L of the blocks (l1 x l2 ->
    |l1 - l2| .. l1 + l2) needs L <= model.lmax and edge_channels[L] > 0.
    """
    from deeph_jax.io.inspect import SHELL_LETTERS

    need = sorted({ir.l for _, ir in layout.irreps})
    shells = ", ".join(f"{e} {''.join(SHELL_LETTERS[l] for l in basis.shells[e])}" for e in sorted(basis.elements))
    if need[-1] > model_config.lmax:
        raise DeephError(f"model.lmax = {model_config.lmax} is too small for the dataset basis ({shells}): its "
                         f"blocks need irreps up to L = {need[-1]}; set model.lmax >= {need[-1]}")
    missing = [L for L in need if model_config.edge_channels[L] == 0]
    if missing:
        raise DeephError(f"model.edge_channels = {list(model_config.edge_channels)} has no channels for L = "
                         f"{missing}, needed by the blocks of the dataset basis ({shells})")
    if model_config.spin == "soc":
        from deeph_jax.model.network import check_output_reachable

        try:
            check_output_reachable(model_config, layout)
        except ValueError as exc:
            raise DeephError(f"model.spin = soc with the dataset basis ({shells}): {exc}") from None


def check_bundle_folder(path) -> None:
    if not (Path(path) / "model.yaml").is_file():
        raise DeephError("train.init_from: not an inference bundle (no model.yaml)", path)


class Validation(NamedTuple):
    """One validation: the loss (eV^2), the entry errors, and the level errors ({'band_mae_meV',
    'gap_error_meV', 'n'}; None when not asked for or no structure has an electron count)."""

    loss: float
    breakdown: object  # deeph_jax.train.evaluate.Breakdown
    levels: dict | None


@dataclass
class Progress:
    """What the step loop carries: metric rows, losses since the last row, the best validation."""

    rows: list[dict]
    t_start: float  # perf_counter of step 0 (a resumed run counts its earlier wall time)
    best_mae_eV: float | None = None  # validation H MAE of the best checkpoint
    best_score: float | None = None  # what train.best_by chose it by (lower is better)
    recent: list[tuple[float, float]] = field(default_factory=list)  # (loss, MAE H eV) per step
    last_epoch: int | None = None
    t_invocation: float = field(default_factory=time.perf_counter)  # perf_counter when this process took over

    def wall_time_s(self) -> float:
        return time.perf_counter() - self.t_start

    def invocation_time_s(self) -> float:
        """Wall time of this invocation alone: what a job scheduler's limit counts."""
        return time.perf_counter() - self.t_invocation


class Trainer:
    """Holds what a run needs; :meth:`run` trains to ``train.steps``.

    ``overwrite`` clears a run folder that holds another run; without it such a folder is
    refused (``resume`` continues the run it holds instead).
    """

    def __init__(self, config: dict, run_dir: str | Path, resume: bool = False, devices=None,
                 overwrite: bool = False):
        from deeph_jax.model.config import ModelConfig
        from deeph_jax.model.irreps_blocks import build_layout, model_elements
        from deeph_jax.model.network import HamiltonianNet

        config = check_config(config)
        init_distributed(config["distributed"])
        self.config = config
        self.tc = TrainConfig.from_dict(config["train"])
        self.run_dir = Path(run_dir)
        self.is_main = jax.process_index() == 0
        if not (resume or overwrite):
            refuse_existing_run(self.run_dir)
        if self.tc.precision == "float64":
            jax.config.update("jax_enable_x64", True)
        self.dtype = np.float64 if self.tc.precision == "float64" else np.float32

        self.train_dirs, self.val_dirs = self._select_structures(config["data"])
        self.basis = D.dataset_basis(self.train_dirs + self.val_dirs)
        if resume:
            self._check_saved_basis()
        if self.tc.init_from and not resume:
            check_bundle_folder(self.tc.init_from)
            # The bundle's parameters were trained with or without the heads' off-site shift; a fine-tuning keeps
            # that (without it a bundle trained with it loses an offset on every hopping: ~1 eV on water). Written
            # into the run's config, so that a resume does not need the bundle.
            from deeph_jax.predict.bundle import load_model_config

            shift = load_model_config(self.tc.init_from).offsite_shift
            self.config = config = {**config, "model": {**config["model"], "offsite_shift": shift}}
        self.model_config = ModelConfig.from_dict(config["model"])
        D.check_spin_data(self.train_dirs + self.val_dirs, self.model_config.spin)
        self.layout = build_layout(self.basis)
        check_model_fits_basis(self.model_config, self.layout, self.basis)
        self.cutoff = self.model_config.cutoff
        self.model = HamiltonianNet(self.model_config, self.basis)
        self.elements = model_elements(self.basis)
        self.train_cache = self.sample_cache(self.train_dirs)
        self.val_samples = None
        self._plan_shards(list(devices or jax.devices()))
        if self.is_main:
            if overwrite and not resume:
                clear_run(self.run_dir)  # only now: a config error above leaves the old run intact
            self._write_run_files()

    # -- setup ------------------------------------------------------------------------------------
    @staticmethod
    def _select_structures(dc: dict) -> tuple[list[Path], list[Path]]:
        """(training, validation) structure folders per the data section."""
        if not dc["train"]:
            raise DeephError("config data.train names no dataset folder")
        all_dirs = D.list_structures(dc["train"], dc["max_structures"])
        if dc["val"]:
            return all_dirs, D.list_structures(dc["val"])
        if dc["train_split"]:
            root = dc["train"] if isinstance(dc["train"], str) else dc["train"][0]
            val = D.read_split_file(dc["val_split"], root) if dc["val_split"] else []
            return D.read_split_file(dc["train_split"], root), val
        return D.split_structures(all_dirs, dc["val_fraction"], dc["split_seed"])

    def _check_saved_basis(self) -> None:
        basis_file = self.run_dir / "basis.json"
        saved = OrbitalBasis.from_orbital_map(json.loads(basis_file.read_text()))
        if saved != self.basis:
            raise DeephError(f"dataset basis {self.basis.to_orbital_map()} differs from the checkpoint's "
                             f"{saved.to_orbital_map()}", basis_file)

    def _plan_shards(self, devices: list) -> None:
        """The device mesh, this host's shards and one padded shard size for every step."""
        from jax.sharding import Mesh

        from deeph_jax.graph import padded_sizes

        self.n_shards = len(devices)
        B = self.tc.batch_size
        if B % self.n_shards:
            raise DeephError(f"train.batch_size {B} must be a multiple of the {self.n_shards} devices")
        self.mesh = Mesh(np.array(devices), ("data",))
        self.local_shards = [k for k, d in enumerate(devices) if d.process_index == jax.process_index()]
        self.steps_per_epoch = len(self.train_dirs) // B
        if self.steps_per_epoch == 0:
            raise DeephError(f"train.batch_size {B} is larger than the {len(self.train_dirs)} training structures")
        self.graph_sizes = np.array([_graph_size(p, self.cutoff) for p in self.train_dirs])  # (n, 2) nodes, edges
        per = B // self.n_shards
        # the largest a step can need
        self.shard_sizes = padded_sizes(*(per * self.graph_sizes.max(axis=0)), per, STEP_BUCKETS_PER_OCTAVE)

    def step_shard_sizes(self, idx: np.ndarray) -> tuple[int, int, int]:
        """The padded shard size of the step drawing structures ``idx``: buckets of a quarter octave
        (:data:`STEP_BUCKETS_PER_OCTAVE`) of the largest shard's totals, so mixed cell sizes (8 to 72 atoms)
        compile a few shapes instead of padding every step to the largest. Every host computes it from the
        global indices alone and gets the same answer."""
        from deeph_jax.graph import padded_sizes

        per = self.tc.batch_size // self.n_shards
        totals = self.graph_sizes[np.asarray(idx, dtype=np.int64)].reshape(self.n_shards, per, 2).sum(axis=1)
        return padded_sizes(*totals.max(axis=0), per, STEP_BUCKETS_PER_OCTAVE)

    def _write_run_files(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_config(self.config, self.run_dir / "config.yaml")
        write_text_atomic(self.run_dir / "basis.json", json.dumps(self.basis.to_orbital_map()) + "\n")
        write_text_atomic(self.run_dir / "split.json", json.dumps(
            {"train": [str(p) for p in self.train_dirs], "val": [str(p) for p in self.val_dirs]}, indent=1))

    # -- batches ----------------------------------------------------------------------------------
    def local_batch(self, step: int):
        """The stacked batch of this host's devices for global step ``step``, and the epoch."""
        B = self.tc.batch_size
        idx, epoch = D.global_batch_indices(len(self.train_dirs), B, self.tc.seed, step)
        per = B // self.n_shards
        sizes = self.step_shard_sizes(idx)
        shards = []
        for k in self.local_shards:
            samples = [self.train_cache[int(i)] for i in idx[k * per : (k + 1) * per]]
            shards += D.shard_batches(samples, 1, self.elements, self.dtype, sizes=sizes)
        return D.stack_batches(shards), epoch

    def sample_cache(self, dirs) -> D.SampleCache:
        """Structures loaded as this model sees them (pair graph, long-range potentials, DFT targets)."""
        mc = self.model_config
        return D.SampleCache(dirs, self.basis, self.cutoff, mc.long_range_alpha, mc.spin, mc.long_range_charges)

    def log(self, text: str) -> None:
        if self.is_main:
            with open(self.run_dir / "log.txt", "a") as f:
                f.write(text + "\n")

    # -- validation -------------------------------------------------------------------------------
    def validate(self, params, samples=None, dirs=None, levels: bool = True) -> "Validation | None":
        """Loss, Breakdown and (with ``levels`` and ``train.val_band_window_eV``) the level errors of
        :mod:`deeph_jax.train.band_metrics` on the validation set (or ``samples`` from ``dirs``); None when
        there is none."""
        from deeph_jax.train.band_metrics import validation_levels
        from deeph_jax.train.evaluate import breakdown, predict_samples

        if samples is None:
            if self.val_samples is None:
                cache = self.sample_cache(self.val_dirs)
                self.val_samples = [cache[i] for i in range(len(cache))]
            samples, dirs = self.val_samples, self.val_dirs
        if not samples:
            return None
        local = jax.tree_util.tree_map(lambda x: np.asarray(x), params)
        preds = predict_samples(self.predict, local, samples, self.elements, self.dtype)
        bd = breakdown(samples, preds, self.basis, self.model_config.spin)
        tc = self.tc
        found = None
        if levels and tc.val_band_window_eV is not None and dirs is not None:
            found = validation_levels(samples, preds, dirs, self.basis, self.model_config.spin, tc.val_band_window_eV)
        return Validation(bd.loss(tc.onsite_weight, tc.offsite_weight, tc.overlap_weight), bd, found)

    def initial_params_from_bundle(self, path, like):
        from deeph_jax.predict.bundle import load_bundle

        config, basis, params, _ = load_bundle(path)
        # A bundle without environment-dependent charges can seed a run with them: the charge net is new and
        # starts at zero output, so the run starts from the bundle's predictions.
        adds_charges = self.model_config.long_range_charges and not config.long_range_charges
        same_but_charges = config.replace(long_range_charges=self.model_config.long_range_charges) == self.model_config
        if basis != self.basis or not same_but_charges:
            raise DeephError("train.init_from bundle has a different basis or model config than this run "
                             f"(bundle basis {basis.to_orbital_map()})", path)
        if adds_charges:
            params = {"params": {**params["params"], "charge_net": like["params"]["charge_net"]}}
        shapes = jax.tree_util.tree_map(np.shape, like)
        if jax.tree_util.tree_map(np.shape, params) != shapes:
            raise DeephError("train.init_from bundle parameters do not match this model", path)
        return jax.tree_util.tree_map(lambda p, l: jax.numpy.asarray(p, l.dtype), params, like)

    # -- the run ----------------------------------------------------------------------------------
    def run(self, resume: bool = False) -> dict:
        """Train to ``train.steps`` (or the time limit); returns a summary dict."""
        from deeph_jax.train.checkpoint import Checkpoints
        from deeph_jax.train.step import make_optimizer, make_predict, make_schedule, make_train_step

        tx = make_optimizer(self.tc)
        self.schedule = make_schedule(self.tc)
        self.predict = make_predict(self.model)
        # The main process checks that a new run starts without checkpoints; the others would race
        # with its --overwrite clearing.
        ckpts = Checkpoints(self.run_dir, self.tc.keep_checkpoints, fresh=self.is_main and not resume)
        try:
            state = self.initial_state(tx, resume)
            rows = []
            if resume:
                state = ckpts.restore(state)
                rows = read_metrics(self.run_dir / "metrics.csv", int(state.step))
            best = self.best_checkpoint_metrics(ckpts)
            progress = Progress(rows, time.perf_counter() - (rows[-1]["wall_time_s"] if rows else 0.0),
                                best_mae_eV=best and best["val_mae_h"], best_score=best and best["score"])
            n_params = self.announce(state)
            self.step_fn = make_train_step(self.model, self.layout, tx, self.tc, self.mesh)
            state, step = self.train_steps(state, ckpts, progress)
            result = {"steps": step, "wall_time_s": progress.wall_time_s(), "n_params": n_params,
                      "best_val_mae_eV": progress.best_mae_eV}
            if self.is_main:
                self.finish(state, ckpts, progress, result)
        finally:
            ckpts.close()
        self.final_state = state
        return result

    def initial_state(self, tx, resume: bool):
        """A TrainState: fresh parameters normalized to the data (or from ``train.init_from``);
        on resume only its structure matters (the checkpoint replaces it)."""
        from deeph_jax.train.step import TrainState, init_state

        example, _ = self.local_batch(0)
        example0 = jax.tree_util.tree_map(lambda x: x[0], example)
        state = init_state(self.model, tx, jax.random.PRNGKey(self.tc.seed), example0)
        if resume:
            return state
        params = self.fresh_params(state.params)
        return TrainState(params, tx.init(params), jax.tree_util.tree_map(jax.numpy.array, params), state.step)

    def fresh_params(self, params):
        """Initial parameters: the fine-tuning bundle's, else ``params`` with the output heads
        set from the statistics of (up to 200) training structures."""
        from deeph_jax.train.normalize import normalized_params

        if self.tc.init_from:
            return self.initial_params_from_bundle(self.tc.init_from, params)
        stats_samples = [self.train_cache[i] for i in range(min(len(self.train_cache), 200))]
        if self.is_main:
            print(D.dropped_summary(stats_samples, self.cutoff))
        return normalized_params(params, stats_samples, self.layout, self.elements, self.model_config.spin,
                                 self.model_config.radial_scale_nodes)

    def announce(self, state) -> int:
        """Print and log the model and data summary; returns the parameter count."""
        from deeph_jax.model.network import summary

        n_params = sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(state.params))
        head = summary(self.model_config, self.basis) + f", {n_params:,} params"
        if self.is_main:
            print(head)
            print(f"data: {len(self.train_dirs)} train / {len(self.val_dirs)} validation structures, "
                  f"{self.n_shards} device(s) on {jax.process_count()} process(es), padded shard "
                  f"(nodes, edges, graphs) up to {self.shard_sizes} (quarter-octave buckets per step)")
        self.log(head)
        return n_params

    def train_steps(self, state, ckpts, progress: Progress):
        """Step from the state's step to ``train.steps`` (or the time limit): (state, last step)."""
        from jax.sharding import NamedSharding, PartitionSpec
        from tqdm import tqdm

        tc = self.tc
        state = jax.device_put(state, NamedSharding(self.mesh, PartitionSpec()))
        step, total = int(state.step), tc.steps
        bar = tqdm(total=total, initial=step, desc="train", unit="step", disable=not (tc.progress and self.is_main))
        try:
            while step < total:
                batch, epoch = self.local_batch(step)
                state, metrics = self.take_step(state, batch, step, ckpts)
                step += 1
                loss, mae = float(metrics["loss"]), float(metrics["mae_h"])
                progress.recent.append((loss, mae))
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3e}", mae_meV=f"{1e3 * mae:.1f}")
                if tc.time_limit_minutes and progress.invocation_time_s() > 60 * tc.time_limit_minutes:
                    bar.write(f"time limit of {tc.time_limit_minutes} min reached at step {step}")
                    total = step
                self.record(step, epoch, step == total, state, ckpts, progress, bar.write)
                self.log_epoch(step, epoch, loss, progress)
                if step % tc.checkpoint_every == 0 or step == total:
                    ckpts.save(state)
        finally:
            bar.close()
        return state, step

    def take_step(self, state, batch, step: int, ckpts):
        """One optimizer step; a non-finite loss stops the run before anything of it is saved."""
        from deeph_jax.train.step import to_device_batch

        new_state, metrics = self.step_fn(state, to_device_batch(batch, self.mesh))
        loss = float(metrics["loss"])
        if not math.isfinite(loss):
            raise DeephError(f"loss became {loss} at step {step + 1}; stopped without saving it. Last good "
                             f"checkpoint: step {ckpts.latest_step()} (resume with --resume, perhaps with a lower "
                             f"train.lr)", self.run_dir)
        return new_state, metrics

    def record(self, step: int, epoch: int, is_last: bool, state, ckpts, progress: Progress, write) -> None:
        """Every ``log_every`` steps a metric row; every ``eval_every`` steps (and at the end) also
        validation, with a best checkpoint when the validation H MAE improved."""
        tc = self.tc
        do_eval = step % tc.eval_every == 0 or is_last
        if not (step % tc.log_every == 0 or do_eval):
            return
        losses, maes = zip(*progress.recent)
        row = {"step": step, "epoch": epoch, "wall_time_s": progress.wall_time_s(), "lr": float(self.schedule(step)),
               "train_loss": float(np.mean(losses)), "train_mae_eV": float(np.mean(maes))}
        progress.recent = []
        if do_eval:
            self.validate_step(row, state, ckpts, progress, write)
        progress.rows.append(row)
        if self.is_main:
            write_metrics(self.run_dir / "metrics.csv", progress.rows)

    def validate_step(self, row: dict, state, ckpts, progress: Progress, write) -> None:
        result = self.validate(state.ema)
        if result is None:
            return
        vloss, bd, levels = result
        row.update(val_loss=vloss, val_mae_meV=1e3 * bd.mae_h_eV, val_mae_onsite_meV=1e3 * bd.mae_h_onsite_eV,
                   val_mae_offsite_meV=1e3 * bd.mae_h_offsite_eV, val_mae_uHa=EV_TO_MICROHARTREE * bd.mae_h_eV,
                   val_mae_s=bd.mae_s)
        if levels is not None:
            row.update(val_band_meV=levels["band_mae_meV"], val_gap_meV=levels["gap_error_meV"])
        score = self.best_score(bd, levels)
        is_best = progress.best_score is None or score < progress.best_score
        if is_best:
            progress.best_mae_eV, progress.best_score = bd.mae_h_eV, score
            ckpts.save(state, {"val_mae_h": bd.mae_h_eV, "score": score, "best_by": self.tc.best_by})
        write(f"step {row['step']} epoch {row['epoch']}: train loss {row['train_loss']:.4e}, "
              f"val MAE {1e3 * bd.mae_h_eV:.3f} meV ({EV_TO_MICROHARTREE * bd.mae_h_eV:.1f} uHa; on-site "
              f"{1e3 * bd.mae_h_onsite_eV:.3f}, off-site {1e3 * bd.mae_h_offsite_eV:.3f} meV)"
              + (f"; levels within {self.tc.val_band_window_eV:g} eV of the gap {levels['band_mae_meV']:.1f} meV, "
                 f"|gap error| {levels['gap_error_meV']:.1f} meV" if levels is not None else "")
              + (" *" if is_best else ""))

    def best_score(self, bd, levels: dict | None) -> float:
        """The validation's score by ``train.best_by`` (lower is better): H MAE in eV, or the level errors in meV."""
        if self.tc.best_by == "h_mae":
            return bd.mae_h_eV
        if levels is None:
            raise DeephError("train.best_by: levels needs train.val_band_window_eV and validation structures with "
                             "an electron count (info.json occupation)", self.val_dirs[0].parent)
        gap = levels["gap_error_meV"]  # nan when no structure has an empty level in its basis
        return levels["band_mae_meV"] + (gap if math.isfinite(gap) else 0.0)

    def best_checkpoint_metrics(self, ckpts) -> dict | None:
        """The best checkpoint's metrics; an error when another ``train.best_by`` chose it (the scores would not
        compare, and orbax keeps the lower one)."""
        best = ckpts.best_metrics()
        if best is not None and best["best_by"] != self.tc.best_by:
            raise DeephError(f"train.best_by is {self.tc.best_by} but the best checkpoint was chosen by "
                             f"{best['best_by']}: keep best_by, or move checkpoints/best aside to choose afresh",
                             self.run_dir)
        return best

    def log_epoch(self, step: int, epoch: int, loss: float, progress: Progress) -> None:
        if progress.last_epoch is not None and epoch != progress.last_epoch:
            self.log(f"epoch {progress.last_epoch} done at step {step}: loss {loss:.4e}")
        progress.last_epoch = epoch

    # -- the end of a run -------------------------------------------------------------------------
    def finish(self, state, ckpts, progress: Progress, result: dict) -> None:
        """Main process: pick the parameters to ship, report them (breakdown, plots, test set) and
        export the inference bundle ``model/``."""
        from deeph_jax.predict.bundle import export_bundle, training_metadata
        from deeph_jax.train import plots

        params, meta = self.final_parameters(state, ckpts)
        plots.loss_curves(progress.rows, self.run_dir / "plots" / "loss.png")
        if self.val_dirs:
            meta.update(self.report_validation(params))
        if self.config["data"]["test"]:
            meta.update(self.report_test(params, result))
        meta.update(training_data=str(self.config["data"]["train"]), n_train=len(self.train_dirs),
                    n_val=len(self.val_dirs), steps=result["steps"], trained=time.strftime("%Y-%m-%d"),
                    config_name=self.config["name"])
        export_bundle(self.run_dir / "model", self.model_config, self.basis, params,
                      {**training_metadata(self.train_dirs[:200]), **meta})

    def final_parameters(self, state, ckpts) -> tuple[dict, dict]:
        """(EMA parameters to ship, metadata saying which): those of the best validation step, or the last step's
        with ``train.export: last`` or when the run has no validation set."""
        if self.tc.export == "last":
            step = int(state.step)
            return state.ema, {"parameters": f"EMA parameters of the last step {step} (train.export: last)",
                               "selected_step": step}
        best_step = ckpts.best_step()
        if self.val_dirs and best_step is not None:
            params = ckpts.restore(state, which="best").ema
            return params, {"parameters": f"EMA parameters of the best validation step {best_step}",
                            "selected_step": best_step}
        step = int(state.step)
        return state.ema, {"parameters": f"EMA parameters of the last step {step} (no validation set: "
                                         f"nothing to select the best step by)", "selected_step": step}

    def report_validation(self, params) -> dict:
        """Breakdown table and plots of the shipped parameters on the validation set; bundle metadata."""
        from deeph_jax.train import plots

        bd = self.validate(params, levels=False).breakdown  # the breakdown table only
        table = bd.table_text()
        write_text_atomic(self.run_dir / "breakdown.txt", table + "\n")
        print("validation error breakdown (shipped EMA parameters):\n" + table)
        predicted, reference = bd.predicted, bd.reference
        if np.iscomplexobj(predicted):  # spinful H: real and imaginary parts as points of one plot
            predicted, reference = (np.concatenate([x.real, x.imag]) for x in (predicted, reference))
        plots.parity(predicted, reference, self.run_dir / "plots" / "parity_val.png",
                     f"validation: MAE {1e3 * bd.mae_h_eV:.3f} meV over {bd.abs_err_h.size} H entries")
        plots.breakdown_plot(bd.table(), self.run_dir / "plots" / "breakdown.png")
        return {"val_mae_meV": 1e3 * bd.mae_h_eV, "val_mae_uHa": EV_TO_MICROHARTREE * bd.mae_h_eV,
                "val_mae_onsite_meV": 1e3 * bd.mae_h_onsite_eV, "val_mae_offsite_meV": 1e3 * bd.mae_h_offsite_eV}

    def report_test(self, params, result: dict) -> dict:
        """The held-out test set (data.test) with the shipped parameters; bundle metadata."""
        test_dirs = D.list_structures(self.config["data"]["test"])
        cache = self.sample_cache(test_dirs)
        tested = self.validate(params, [cache[i] for i in range(len(cache))], test_dirs)
        bd, levels = tested.breakdown, tested.levels
        result.update(test_mae_eV=bd.mae_h_eV, n_test=len(test_dirs))
        print(f"test: MAE {1e3 * bd.mae_h_eV:.3f} meV = {EV_TO_MICROHARTREE * bd.mae_h_eV:.1f} uHa "
              f"over {bd.abs_err_h.size} H entries of {len(test_dirs)} structures (on-site "
              f"{1e3 * bd.mae_h_onsite_eV:.3f}, off-site {1e3 * bd.mae_h_offsite_eV:.3f} meV)"
              + (f"; levels within {self.tc.val_band_window_eV:g} eV of the gap {levels['band_mae_meV']:.1f} meV, "
                 f"|gap error| {levels['gap_error_meV']:.1f} meV" if levels is not None else ""))
        meta = {"test_data": str(self.config["data"]["test"]), "n_test": len(test_dirs),
                "test_mae_meV": 1e3 * bd.mae_h_eV, "test_mae_uHa": EV_TO_MICROHARTREE * bd.mae_h_eV,
                "test_mae_onsite_meV": 1e3 * bd.mae_h_onsite_eV, "test_mae_offsite_meV": 1e3 * bd.mae_h_offsite_eV}
        if levels is not None:
            meta.update(test_band_meV=levels["band_mae_meV"], test_gap_meV=levels["gap_error_meV"])
        return meta


def train(config: dict, run_dir: str | Path | None = None, resume: bool = False, overwrite: bool = False) -> dict:
    """Train per ``config`` into ``run_dir`` (default ``runs/<name>``); see :class:`Trainer`."""
    run_dir = Path(run_dir or Path("runs") / config["name"])
    trainer = Trainer(config, run_dir, resume=resume, overwrite=overwrite)
    return trainer.run(resume=resume)
