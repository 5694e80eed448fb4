"""Density of states on a uniform k-mesh with Gaussian smearing. Energies in eV.

    DOS(E) = spin_factor * sum_k w_k sum_n exp(-(E - e_nk)^2 / (2 sigma^2)) / (sqrt(2 pi) sigma),

in states per eV per cell (spin included), sum_k w_k = 1; it integrates to spin_factor * n_bands.
"""

from __future__ import annotations

import numpy as np

from deeph_jax.physics.fermi import spin_factor


def gaussian_dos(energies: np.ndarray, grid: np.ndarray, sigma: float, spinful: bool = False,
                 weights: np.ndarray | None = None, chunk: int = 4096) -> np.ndarray:
    """DOS on ``grid`` (n_e,) eV from eigenvalues (n_k, n_bands) eV; (n_e,) states/eV/cell."""
    energies = np.asarray(energies, dtype=np.float64)
    w = np.full(energies.shape[0], 1.0) if weights is None else np.asarray(weights, dtype=np.float64)
    w = np.repeat(w / w.sum(), energies.shape[1])
    e = energies.reshape(-1)
    out = np.zeros(len(grid))
    for i in range(0, len(grid), chunk):
        g = grid[i : i + chunk, None]
        out[i : i + chunk] = np.exp(-0.5 * ((g - e[None, :]) / sigma) ** 2) @ w
    return spin_factor(spinful) * out / (np.sqrt(2.0 * np.pi) * sigma)


def energy_grid(energies: np.ndarray, sigma: float, step: float | None = None) -> np.ndarray:
    """A grid covering all eigenvalues +- 5 sigma with spacing ``step`` (default sigma / 4), eV."""
    step = step or sigma / 4.0
    lo, hi = float(np.min(energies)) - 5 * sigma, float(np.max(energies)) + 5 * sigma
    return np.arange(lo, hi + step, step)
