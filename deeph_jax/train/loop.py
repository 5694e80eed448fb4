"""``train(config)``: the training run, from dataset folders to a run folder.

A run folder ``runs/<name>/`` holds ``config.yaml`` (resolved), ``basis.json``, ``metrics.csv``,
``log.txt``, ``checkpoints/{last,best}`` (orbax), ``plots/*.png``, ``breakdown.txt`` and, at the
end, an inference bundle ``model/`` (see :mod:`deeph_jax.predict.bundle`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from pathlib import Path

import jax
import numpy as np

from deeph_jax.errors import DeephError
from deeph_jax.io import OrbitalBasis, read_deeph_dir
from deeph_jax.io.atomic import write_text_atomic
from deeph_jax.train import data as D
from deeph_jax.train.config import TrainConfig, check_config, save_config
from deeph_jax.units import EV_TO_MICROHARTREE

METRIC_FIELDS = ["step", "epoch", "wall_time_s", "lr", "train_loss", "train_mae_eV",
                 "val_loss", "val_mae_meV", "val_mae_uHa", "val_mae_s"]


def init_distributed(dc: dict) -> None:
    """``jax.distributed.initialize`` from config or DEEPH_COORDINATOR / DEEPH_NUM_PROCESSES / DEEPH_PROCESS_ID."""
    addr = dc.get("coordinator_address") or os.environ.get("DEEPH_COORDINATOR")
    if not addr:
        return
    n = int(dc.get("num_processes") or os.environ["DEEPH_NUM_PROCESSES"])
    pid = int(dc.get("process_id") if dc.get("process_id") is not None else os.environ["DEEPH_PROCESS_ID"])
    # CPU hosts need a collectives implementation for cross-process all-reduce (GPUs use NCCL).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=addr, num_processes=n, process_id=pid)


def _graph_size(path: Path, cutoff: float) -> tuple[int, int]:
    from deeph_jax.graph import build_graph

    g = build_graph(read_deeph_dir(path, hamiltonian=None).structure, cutoff)
    return g.n_nodes, g.n_edges


def _write_metrics(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=METRIC_FIELDS, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    write_text_atomic(path, buf.getvalue())


def _read_metrics(path: Path, upto_step: int) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for r in csv.DictReader(path.read_text().splitlines()):
        row = {k: (float(v) if v not in ("", None) else None) for k, v in r.items()}
        row["step"] = int(row["step"])
        if row["step"] <= upto_step:
            rows.append(row)
    return rows


def check_model_fits_basis(model_config, layout, basis: OrbitalBasis) -> None:
    """One line when the model's edge irreps cannot emit every block of the dataset's basis.

    A Linear cannot create an irrep its input lacks, so each L of the blocks (l1 x l2 ->
    |l1 - l2| .. l1 + l2) needs L <= model.lmax and edge_channels[L] > 0.
    """
    need = sorted({ir.l for _, ir in layout.irreps})
    from deeph_jax.io.inspect import SHELL_LETTERS

    shells = ", ".join(f"{e} {''.join(SHELL_LETTERS[l] for l in basis.shells[e])}" for e in sorted(basis.elements))
    if need[-1] > model_config.lmax:
        raise DeephError(f"model.lmax = {model_config.lmax} is too small for the dataset basis ({shells}): its "
                         f"blocks need irreps up to L = {need[-1]}; set model.lmax >= {need[-1]}")
    missing = [L for L in need if model_config.edge_channels[L] == 0]
    if missing:
        raise DeephError(f"model.edge_channels = {list(model_config.edge_channels)} has no channels for L = "
                         f"{missing}, needed by the blocks of the dataset basis ({shells})")


def check_bundle_folder(path) -> None:
    if not (Path(path) / "model.yaml").is_file():
        raise DeephError("train.init_from: not an inference bundle (no model.yaml)", path)


class Trainer:
    """Holds what a run needs; :meth:`run` trains to ``train.steps``."""

    def __init__(self, config: dict, run_dir: str | Path, resume: bool = False, devices=None):
        from deeph_jax.model.config import ModelConfig
        from deeph_jax.model.irreps_blocks import build_layout, model_elements
        from deeph_jax.model.network import HamiltonianNet

        config = check_config(config)
        init_distributed(config["distributed"])
        self.config = config
        self.tc = TrainConfig.from_dict(config["train"])
        self.run_dir = Path(run_dir)
        self.is_main = jax.process_index() == 0
        if self.tc.precision == "float64":
            jax.config.update("jax_enable_x64", True)
        self.dtype = np.float64 if self.tc.precision == "float64" else np.float32

        dc = config["data"]
        if not dc["train"]:
            raise DeephError("config data.train names no dataset folder")
        all_dirs = D.list_structures(dc["train"], dc["max_structures"])
        if dc["val"]:
            self.train_dirs, self.val_dirs = all_dirs, D.list_structures(dc["val"])
        elif dc["train_split"]:
            root = dc["train"] if isinstance(dc["train"], str) else dc["train"][0]
            self.train_dirs = D.read_split_file(dc["train_split"], root)
            self.val_dirs = D.read_split_file(dc["val_split"], root) if dc["val_split"] else []
        else:
            self.train_dirs, self.val_dirs = D.split_structures(all_dirs, dc["val_fraction"], dc["split_seed"])
        self.basis = D.dataset_basis(self.train_dirs + self.val_dirs)
        basis_file = self.run_dir / "basis.json"
        if resume:
            saved = OrbitalBasis.from_orbital_map(json.loads(basis_file.read_text()))
            if saved != self.basis:
                raise DeephError(f"dataset basis {self.basis.to_orbital_map()} differs from the checkpoint's "
                                 f"{saved.to_orbital_map()}", basis_file)
        self.model_config = ModelConfig.from_dict(config["model"])
        self.layout = build_layout(self.basis)
        check_model_fits_basis(self.model_config, self.layout, self.basis)
        if self.tc.init_from and not resume:
            check_bundle_folder(self.tc.init_from)
        self.cutoff = self.model_config.cutoff
        self.model = HamiltonianNet(self.model_config, self.basis)
        self.elements = model_elements(self.basis)
        self.train_cache = D.SampleCache(self.train_dirs, self.basis, self.cutoff)
        self.val_samples = None

        devices = list(devices or jax.devices())
        self.n_shards = len(devices)
        B = self.tc.batch_size
        if B % self.n_shards:
            raise DeephError(f"train.batch_size {B} must be a multiple of the {self.n_shards} devices")
        from jax.sharding import Mesh

        self.mesh = Mesh(np.array(devices), ("data",))
        self.local_shards = [k for k, d in enumerate(devices) if d.process_index == jax.process_index()]
        sizes = [_graph_size(p, self.cutoff) for p in self.train_dirs]
        per = B // self.n_shards
        from deeph_jax.graph import padded_sizes

        self.shard_sizes = padded_sizes(per * max(n for n, _ in sizes), per * max(e for _, e in sizes), per)
        self.steps_per_epoch = len(self.train_dirs) // B
        if self.steps_per_epoch == 0:
            raise DeephError(f"train.batch_size {B} is larger than the {len(self.train_dirs)} training structures")
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(config, self.run_dir / "config.yaml")
            write_text_atomic(basis_file, json.dumps(self.basis.to_orbital_map()) + "\n")
            write_text_atomic(self.run_dir / "split.json", json.dumps(
                {"train": [str(p) for p in self.train_dirs], "val": [str(p) for p in self.val_dirs]}, indent=1))

    # -- batches ----------------------------------------------------------------------------------
    def local_batch(self, step: int):
        """The stacked batch of this host's devices for global step ``step``, and the epoch."""
        B = self.tc.batch_size
        idx, epoch = D.global_batch_indices(len(self.train_dirs), B, self.tc.seed, step)
        per = B // self.n_shards
        shards = []
        for k in self.local_shards:
            samples = [self.train_cache[int(i)] for i in idx[k * per : (k + 1) * per]]
            shards += D.shard_batches(samples, 1, self.elements, self.dtype, sizes=self.shard_sizes)
        return D.stack_batches(shards), epoch

    def log(self, text: str) -> None:
        if self.is_main:
            with open(self.run_dir / "log.txt", "a") as f:
                f.write(text + "\n")

    # -- validation -------------------------------------------------------------------------------
    def validate(self, params, samples=None):
        """(loss, Breakdown) on the validation set (or ``samples``), None when there is none."""
        from deeph_jax.train.evaluate import breakdown, predict_samples

        if samples is None:
            if self.val_samples is None:
                cache = D.SampleCache(self.val_dirs, self.basis, self.cutoff)
                self.val_samples = [cache[i] for i in range(len(cache))]
            samples = self.val_samples
        if not samples:
            return None
        local = jax.tree_util.tree_map(lambda x: np.asarray(x), params)
        preds = predict_samples(self.predict, local, samples, self.elements, self.dtype)
        bd = breakdown(samples, preds, self.basis)
        w = self.tc.overlap_weight
        loss = float(np.mean(bd.abs_err_h**2) + w * np.mean(bd.abs_err_s**2))
        return loss, bd

    def initial_params_from_bundle(self, path, like):
        from deeph_jax.predict.bundle import load_bundle

        config, basis, params, _ = load_bundle(path)
        if basis != self.basis or config != self.model_config:
            raise DeephError("train.init_from bundle has a different basis or model config than this run "
                             f"(bundle basis {basis.to_orbital_map()})", path)
        shapes = jax.tree_util.tree_map(np.shape, like)
        if jax.tree_util.tree_map(np.shape, params) != shapes:
            raise DeephError("train.init_from bundle parameters do not match this model", path)
        return jax.tree_util.tree_map(lambda p, l: jax.numpy.asarray(p, l.dtype), params, like)

    # -- the run ----------------------------------------------------------------------------------
    def run(self, resume: bool = False) -> dict:
        from tqdm import tqdm

        from deeph_jax.model.network import summary
        from deeph_jax.train import plots
        from deeph_jax.train.checkpoint import Checkpoints
        from deeph_jax.train.step import init_state, make_optimizer, make_predict, make_schedule, make_train_step, to_device_batch

        tc = self.tc
        tx = make_optimizer(tc)
        schedule = make_schedule(tc)
        self.predict = make_predict(self.model)
        example, _ = self.local_batch(0)
        example0 = jax.tree_util.tree_map(lambda x: x[0], example)
        state = init_state(self.model, tx, jax.random.PRNGKey(tc.seed), example0)
        if not resume:
            from deeph_jax.train.normalize import normalized_params
            from deeph_jax.train.step import TrainState

            if tc.init_from:
                params = self.initial_params_from_bundle(tc.init_from, state.params)
            else:
                stats_samples = [self.train_cache[i] for i in range(min(len(self.train_cache), 200))]
                params = normalized_params(state.params, stats_samples, self.layout, self.elements)
                if self.is_main:
                    print(D.dropped_summary(stats_samples, self.cutoff))
            state = TrainState(params, tx.init(params), jax.tree_util.tree_map(jax.numpy.array, params), state.step)
        ckpts = Checkpoints(self.run_dir, tc.keep_checkpoints)
        rows: list[dict] = []
        if resume:
            state = ckpts.restore(state)
            rows = _read_metrics(self.run_dir / "metrics.csv", int(state.step))
        best = ckpts.best_value()
        n_params = sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(state.params))
        head = summary(self.model_config, self.basis) + f", {n_params:,} params"
        if self.is_main:
            print(head)
            print(f"data: {len(self.train_dirs)} train / {len(self.val_dirs)} validation structures, "
                  f"{self.n_shards} device(s) on {jax.process_count()} process(es), padded shard "
                  f"(nodes, edges, graphs) = {self.shard_sizes}")
        self.log(head)
        step_fn = make_train_step(self.model, self.layout, tx, tc, self.mesh)
        from jax.sharding import NamedSharding, PartitionSpec

        state = jax.device_put(state, NamedSharding(self.mesh, PartitionSpec()))
        total = tc.steps
        start = int(state.step)
        t_start = time.perf_counter() - (rows[-1]["wall_time_s"] if rows else 0.0)
        bar = tqdm(total=total, initial=start, desc="train", unit="step", disable=not (tc.progress and self.is_main))
        recent = []
        last_epoch = None
        step = start
        while step < total:
            batch, epoch = self.local_batch(step)
            new_state, m = step_fn(state, to_device_batch(batch, self.mesh))
            loss = float(m["loss"])
            if not math.isfinite(loss):
                bar.close()
                last = ckpts.latest_step()
                ckpts.close()
                raise DeephError(f"loss became {loss} at step {step + 1}; stopped without saving it. Last good "
                                 f"checkpoint: step {last} (resume with --resume, perhaps with a lower train.lr)",
                                 self.run_dir)
            state = new_state
            step += 1
            recent.append((loss, float(m["mae_h"])))
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3e}", mae_meV=f"{1e3 * float(m['mae_h']):.1f}")
            if tc.time_limit_minutes and time.perf_counter() - t_start > 60 * tc.time_limit_minutes:
                bar.write(f"time limit of {tc.time_limit_minutes} min reached at step {step}")
                total = step
            do_eval = step % tc.eval_every == 0 or step == total
            if step % tc.log_every == 0 or do_eval:
                row = {"step": step, "epoch": epoch, "wall_time_s": time.perf_counter() - t_start,
                       "lr": float(schedule(step)), "train_loss": float(np.mean([r[0] for r in recent])),
                       "train_mae_eV": float(np.mean([r[1] for r in recent]))}
                recent = []
                if do_eval:
                    result = self.validate(state.ema)
                    if result is not None:
                        vloss, bd = result
                        row.update(val_loss=vloss, val_mae_meV=1e3 * bd.mae_h_eV,
                                   val_mae_uHa=EV_TO_MICROHARTREE * bd.mae_h_eV, val_mae_s=bd.mae_s)
                        is_best = best is None or bd.mae_h_eV < best
                        if is_best:
                            best = bd.mae_h_eV
                            ckpts.save(state, {"val_mae_h": bd.mae_h_eV})
                        bar.write(f"step {step} epoch {epoch}: train loss {row['train_loss']:.4e}, "
                                  f"val MAE {1e3 * bd.mae_h_eV:.3f} meV ({EV_TO_MICROHARTREE * bd.mae_h_eV:.1f} uHa)"
                                  + (" *" if is_best else ""))
                rows.append(row)
                if self.is_main:
                    _write_metrics(self.run_dir / "metrics.csv", rows)
            if epoch != last_epoch and last_epoch is not None:
                self.log(f"epoch {last_epoch} done at step {step}: loss {loss:.4e}")
            last_epoch = epoch
            if step % tc.checkpoint_every == 0 or step == total:
                ckpts.save(state)
        bar.close()
        result = {"steps": step, "wall_time_s": time.perf_counter() - t_start, "n_params": n_params,
                  "best_val_mae_eV": best}
        if self.is_main and self.val_dirs:
            best_state = ckpts.restore(state, which="best")
            _, bd = self.validate(best_state.ema)
            table = bd.table_text()
            write_text_atomic(self.run_dir / "breakdown.txt", table + "\n")
            print("validation error breakdown (best checkpoint, EMA parameters):\n" + table)
            plots.loss_curves(rows, self.run_dir / "plots" / "loss.png")
            plots.parity(bd.predicted, bd.reference, self.run_dir / "plots" / "parity_val.png",
                         f"validation: MAE {1e3 * bd.mae_h_eV:.3f} meV over {bd.abs_err_h.size} H entries")
            plots.breakdown_plot(bd.table(), self.run_dir / "plots" / "breakdown.png")
            from deeph_jax.predict.bundle import export_bundle, training_metadata

            meta = training_metadata(self.train_dirs[:200])
            if self.config["data"]["test"]:
                test_dirs = D.list_structures(self.config["data"]["test"])
                cache = D.SampleCache(test_dirs, self.basis, self.cutoff)
                _, tbd = self.validate(best_state.ema, [cache[i] for i in range(len(cache))])
                result.update(test_mae_eV=tbd.mae_h_eV, n_test=len(test_dirs))
                meta.update(test_data=str(self.config["data"]["test"]), n_test=len(test_dirs),
                            test_mae_meV=1e3 * tbd.mae_h_eV, test_mae_uHa=EV_TO_MICROHARTREE * tbd.mae_h_eV)
                print(f"test: MAE {1e3 * tbd.mae_h_eV:.3f} meV = {EV_TO_MICROHARTREE * tbd.mae_h_eV:.1f} uHa "
                      f"over {tbd.abs_err_h.size} H entries of {len(test_dirs)} structures")
            meta.update(training_data=str(self.config["data"]["train"]), n_train=len(self.train_dirs),
                        n_val=len(self.val_dirs), val_mae_meV=1e3 * bd.mae_h_eV,
                        val_mae_uHa=EV_TO_MICROHARTREE * bd.mae_h_eV, steps=step,
                        trained=time.strftime("%Y-%m-%d"), config_name=self.config["name"])
            export_bundle(self.run_dir / "model", self.model_config, self.basis, best_state.ema, meta)
        ckpts.close()
        self.final_state = state
        return result


def train(config: dict, run_dir: str | Path | None = None, resume: bool = False) -> dict:
    run_dir = Path(run_dir or Path("runs") / config["name"])
    trainer = Trainer(config, run_dir, resume=resume)
    return trainer.run(resume=resume)
