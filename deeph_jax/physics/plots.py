"""PNG plots of bands and DOS (matplotlib, Agg backend). Energies relative to E_F, eV."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _label(s: str) -> str:
    return "|".join("Γ" if x.upper() in ("GAMMA", "G", "Γ") else x for x in s.split("|"))


def plot_bands(path: str | Path, kpath, curves: list[tuple[str, np.ndarray, str]], fermi_eV: float,
               window: tuple[float, float] = (-6.0, 6.0), title: str | None = None) -> None:
    """Bands along ``kpath`` with E_F at zero.

    Args:
        curves: (legend, energies (n_k, n_bands) eV, matplotlib style) for each Hamiltonian,
            e.g. DFT as black lines and the prediction as red dashes.
        fermi_eV: the energy put at zero.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    x = kpath.distances
    for legend, e, style in curves:
        lines = ax.plot(x, e - fermi_eV, style, lw=1.0)
        lines[0].set_label(legend)
    for t in kpath.tick_distances:
        ax.axvline(t, color="0.5", lw=0.6)
    ax.axhline(0.0, color="0.3", ls=":", lw=0.8)
    ax.set_xticks(kpath.tick_distances, [_label(s) for s in kpath.tick_labels])
    ax.set_xlim(x[0], x[-1])
    ax.set_ylim(*window)
    ax.set_ylabel("E - E_F (eV)")
    if len(curves) > 1:
        ax.legend(loc="upper right", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def plot_dos(path: str | Path, grid: np.ndarray, dos: np.ndarray, fermi_eV: float, title: str | None = None,
             stderr: np.ndarray | None = None, dos_down: np.ndarray | None = None) -> None:
    """DOS (states/eV/cell) against E - E_F (eV); ``stderr`` (KPM) shaded as +-2 standard errors. With
    ``dos_down`` (collinear spin), ``dos`` is the spin-up DOS, drawn up, and the spin-down DOS is drawn down."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    if stderr is not None:
        ax.fill_between(grid - fermi_eV, dos - 2 * stderr, dos + 2 * stderr, color="0.75", lw=0,
                        label="+-2 standard errors")
    ax.plot(grid - fermi_eV, dos, "k-", lw=1.0, label="spin up" if dos_down is not None else None)
    if dos_down is not None:
        ax.plot(grid - fermi_eV, -dos_down, "C3-", lw=1.0, label="spin down")
        ax.axhline(0.0, color="0.3", lw=0.6)
        ax.legend(loc="upper right", fontsize=8)
    ax.axvline(0.0, color="0.3", ls=":", lw=0.8)
    ax.set_xlabel("E - E_F (eV)")
    ax.set_ylabel("DOS (states / eV / cell)" + (", spin down below 0" if dos_down is not None else ""))
    ax.set_ylim(0.0 if dos_down is None else None, None)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path) -> None:
    """Write the PNG atomically (temporary name, then rename) and free the figure."""
    from deeph_jax.io.atomic import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=150)
    _pyplot().close(fig)
