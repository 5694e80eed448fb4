"""Orbax checkpoints of the whole training state: the last k, and the best validation (``train.best_by``).

Orbax writes each checkpoint into a temporary folder and renames it when complete, so a kill
during a save leaves the previous checkpoint intact. Saved: parameters, optimizer state, EMA,
step; the data order needs no RNG state because it is a pure function of (seed, epoch).
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from deeph_jax.errors import DeephError
from deeph_jax.train.step import TrainState


def _to_tree(state: TrainState) -> dict:
    return {"params": state.params, "opt_state": state.opt_state, "ema": state.ema, "step": state.step}


def _from_tree(tree: dict) -> TrainState:
    return TrainState(tree["params"], tree["opt_state"], tree["ema"], tree["step"])


def _score(metrics: dict) -> float:
    """The number a best checkpoint was chosen by (lower is better); checkpoints before ``train.best_by``
    stored the validation H MAE alone."""
    return float(metrics.get("score", metrics["val_mae_h"]))


class Checkpoints:
    """``run_dir/checkpoints/last`` (keeps ``keep``) and ``run_dir/checkpoints/best`` (keeps 1).

    ``fresh``: a new run, which must find no checkpoint (an old run's steps would be skipped
    as already saved and its best would be taken over); see :mod:`deeph_jax.train.run_folder`.
    """

    def __init__(self, run_dir: str | Path, keep: int = 3, fresh: bool = False):
        root = Path(run_dir).resolve() / "checkpoints"
        opts = dict(create=True, enable_async_checkpointing=False)
        self.last = ocp.CheckpointManager(root / "last", options=ocp.CheckpointManagerOptions(max_to_keep=keep, **opts))
        self.best = ocp.CheckpointManager(
            root / "best",
            options=ocp.CheckpointManagerOptions(max_to_keep=1, best_fn=_score, best_mode="min", **opts),
        )
        if fresh and (self.last.latest_step() is not None or self.best.latest_step() is not None):
            self.close()
            raise DeephError("checkpoints of another run are here; a new run needs an empty run folder "
                             "(--overwrite clears it)", root)

    def save(self, state: TrainState, best_metrics: dict | None = None) -> None:
        step = int(state.step)
        if self.last.latest_step() != step:
            self.last.save(step, args=ocp.args.StandardSave(_to_tree(state)), force=True)
        if best_metrics is not None and self.best.latest_step() != step:
            self.best.save(step, args=ocp.args.StandardSave(_to_tree(state)), metrics=best_metrics, force=True)
        self.last.wait_until_finished()
        self.best.wait_until_finished()

    def latest_step(self) -> int | None:
        return self.last.latest_step()

    def best_step(self) -> int | None:
        """Step of the best checkpoint (lowest validation H MAE), None before any."""
        return self.best.best_step()

    def best_metrics(self) -> dict | None:
        """The best checkpoint's metrics: ``val_mae_h`` (eV), ``score`` and ``best_by`` (what chose it; absent
        before ``train.best_by``: the H MAE), or None before any."""
        step = self.best.best_step()
        if step is None:
            return None
        metrics = self.best.metrics(step) if hasattr(self.best, "metrics") else None
        if metrics is None:
            return None
        return {"best_by": "h_mae", "score": _score(metrics), **metrics}

    def restore(self, like: TrainState, which: str = "last", step: int | None = None) -> TrainState:
        mngr = self.last if which == "last" else self.best
        step = step if step is not None else (mngr.latest_step() if which == "last" else mngr.best_step())
        if step is None:
            raise DeephError(f"no {which} checkpoint found", mngr.directory)
        abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, _to_tree(like))
        try:
            tree = mngr.restore(step, args=ocp.args.StandardRestore(abstract))
        except (ValueError, KeyError) as exc:
            raise DeephError(f"checkpoint does not match this model/config ({str(exc).splitlines()[0][:200]})",
                             mngr.directory) from None
        return _from_tree(tree)

    def close(self) -> None:
        self.last.close()
        self.best.close()


def tree_allclose(a, b, rtol: float) -> bool:
    """Per-leaf relative norm difference ||a - b|| / ||b|| <= rtol (element-wise is wrong under Adam)."""
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        if np.linalg.norm(x - y) > rtol * max(np.linalg.norm(y), 1e-30):
            return False
    return True
