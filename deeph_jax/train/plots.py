"""PNG plots of a training run: loss curves, parity, error breakdown. Written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deeph_jax.io.atomic import atomic_path


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _figure().close(fig)


def loss_curves(rows: list[dict], path: Path) -> None:
    """Loss and H MAE against step; a third panel with the validation levels' errors when the rows have them."""
    plt = _figure()
    levels = [(r["step"], r["val_band_meV"], r.get("val_gap_meV")) for r in rows
              if r.get("val_band_meV") not in (None, "")]
    fig, ax = plt.subplots(1, 3 if levels else 2, figsize=(15 if levels else 10, 3.8))
    step = [r["step"] for r in rows]
    ax[0].semilogy(step, [r["train_loss"] for r in rows], label="train loss (MSE, eV^2)")
    val = [(r["step"], r["val_loss"]) for r in rows if r.get("val_loss") not in (None, "")]
    if val:
        ax[0].semilogy(*zip(*val), "o-", label="validation loss")
    ax[0].set_xlabel("step")
    ax[0].legend()
    mae = [(r["step"], r["val_mae_meV"]) for r in rows if r.get("val_mae_meV") not in (None, "")]
    ax[1].semilogy(step, [1e3 * r["train_mae_eV"] for r in rows], label="train MAE H")
    if mae:
        ax[1].semilogy(*zip(*mae), "o-", label="validation MAE H")
    ax[1].set_xlabel("step")
    ax[1].set_ylabel("MAE (meV)")
    ax[1].legend()
    if levels:
        steps, band, gap = zip(*levels)
        ax[2].plot(steps, band, "o-", label="levels near the gap: mean |error|")
        ax[2].plot(steps, [np.nan if g in (None, "") else g for g in gap], "s-", label="|gap error|")
        ax[2].set_xlabel("step")
        ax[2].set_ylabel("validation (meV)")
        ax[2].set_ylim(bottom=0)
        ax[2].legend()
    fig.suptitle("training curves")
    _save(fig, path)


def parity(predicted: np.ndarray, reference: np.ndarray, path: Path, title: str, max_points: int = 20000) -> None:
    plt = _figure()
    rng = np.random.default_rng(0)
    idx = rng.choice(len(reference), size=min(max_points, len(reference)), replace=False)
    fig, ax = plt.subplots(1, 2, figsize=(10, 4.2))
    lo, hi = float(reference.min()), float(reference.max())
    ax[0].plot([lo, hi], [lo, hi], "k-", lw=0.8)
    ax[0].scatter(reference[idx], predicted[idx], s=2, alpha=0.4)
    ax[0].set_xlabel("DFT H entry (eV)")
    ax[0].set_ylabel("predicted (eV)")
    err = 1e3 * (predicted[idx] - reference[idx])
    ax[1].hist(err, bins=100)
    ax[1].set_xlabel("predicted - DFT (meV)")
    ax[1].set_yscale("log")
    fig.suptitle(title)
    _save(fig, path)


def breakdown_plot(rows: list[tuple], path: Path) -> None:
    """Bar charts of MAE (meV) per element pair, shell pair and distance bin."""
    plt = _figure()
    groups = ["element pair", "shell pair", "distance"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for ax, group in zip(axes, groups):
        sel = [r for r in rows if r[0] == group]
        ax.bar([r[1] for r in sel], [r[3] for r in sel])
        ax.set_title(f"MAE by {group}")
        ax.set_ylabel("MAE (meV)")
        ax.tick_params(axis="x", rotation=45)
    _save(fig, path)
