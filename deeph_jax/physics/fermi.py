"""Fermi level from the electron count, with smearing for metals. Energies in eV.

For an insulator (the ``n_occ``-th band lies below the ``n_occ + 1``-th at every k) the Fermi
level is the middle of the gap: max over k of the highest occupied band and min over k of the
lowest empty one (as DeepH-dock). Otherwise the electron count N_e is matched by bisection with
Gaussian or Fermi-Dirac occupations of width ``sigma``:

    N_e = spin_factor * sum_k w_k sum_n f((mu - e_nk) / sigma),  sum_k w_k = 1,

spin_factor 2 for a spinless Hamiltonian, 1 for a spinful one.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erfc, expit

from deeph_jax.errors import DeephError


def spin_factor(spinful: bool) -> int:
    return 1 if spinful else 2


def occupied_bands(n_electrons: float, spinful: bool, path=None) -> int:
    """Number of occupied bands per k of an insulator: N_e / spin_factor (must be an integer)."""
    f = spin_factor(spinful)
    n = float(n_electrons) / f
    if abs(n - round(n)) > 1e-8:
        raise DeephError(f"occupation {n_electrons} electrons is not a multiple of {f}: no closed-shell filling", path)
    return int(round(n))


def occupations(energies: np.ndarray, mu: float, sigma: float, kind: str = "gaussian") -> np.ndarray:
    """Occupation in [0, 1] of each level (no spin factor). ``kind``: gaussian or fermi-dirac."""
    x = (mu - np.asarray(energies)) / sigma
    if kind == "gaussian":
        return 0.5 * erfc(-x / np.sqrt(2.0))
    if kind == "fermi-dirac":
        return expit(x)
    raise ValueError(f"unknown smearing {kind!r}")


def band_gap(energies: np.ndarray, n_occ: int) -> tuple[float, float] | None:
    """(VBM, CBM) when band ``n_occ - 1`` lies entirely below band ``n_occ``, else None.

    Args:
        energies: (n_k, n_bands) sorted per k, eV.
    """
    if n_occ <= 0 or n_occ >= energies.shape[1]:
        return None
    vbm, cbm = float(energies[:, n_occ - 1].max()), float(energies[:, n_occ].min())
    return (vbm, cbm) if cbm > vbm else None


def band_error_near_fermi(energies: np.ndarray, reference: np.ndarray, fermi_energy: float,
                          window: float = 3.0) -> tuple[float, float, int]:
    """Mean and max |energies - reference| (eV) over the eigenvalues whose reference lies within
    ``fermi_energy +- window`` eV, and how many there were.

    Eigenvalues are compared index by index at each k (both sorted, the same count): a measure of
    the bands that decide transport and optics, where the deep bands would dilute a full mean.
    The 3 eV default reaches both band edges of a wide-gap insulator such as hBN (gap ~4.6 eV).

    Args:
        energies, reference: (n_k, n_bands), eV.
    """
    mask = np.abs(reference - fermi_energy) <= window
    if not mask.any():
        raise ValueError(f"no reference eigenvalue within {window} eV of E_F = {fermi_energy:.4f} eV")
    diff = np.abs(energies - reference)[mask]
    return float(diff.mean()), float(diff.max()), int(mask.sum())


def fermi_level(
    energies: np.ndarray,
    n_electrons: float,
    spinful: bool = False,
    weights: np.ndarray | None = None,
    sigma: float = 0.1,
    kind: str = "gaussian",
) -> tuple[float, tuple[float, float] | None]:
    """Fermi level (eV) and (VBM, CBM) or None for a metal.

    Args:
        energies: (n_k, n_bands) eigenvalues on a uniform k-mesh, sorted per k, eV.
        n_electrons: electrons per cell, spin included.
        weights: (n_k,) k-point weights (default uniform), normalized here.
        sigma: smearing width for metals, eV.
    """
    energies = np.asarray(energies, dtype=np.float64)
    f = spin_factor(spinful)
    if n_electrons > f * energies.shape[1] or n_electrons <= 0:
        raise DeephError(f"{n_electrons} electrons do not fit in {energies.shape[1]} bands (x{f} spin)")
    n_occ = float(n_electrons) / f
    if abs(n_occ - round(n_occ)) < 1e-8:
        gap = band_gap(energies, int(round(n_occ)))
        if gap is not None:
            return 0.5 * (gap[0] + gap[1]), gap
    w = np.full(energies.shape[0], 1.0) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()

    def count(mu):
        return f * float(np.sum(w[:, None] * occupations(energies, mu, sigma, kind)))

    lo, hi = energies.min() - 20 * sigma, energies.max() + 20 * sigma
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if count(mid) < n_electrons else (lo, mid)
        if hi - lo < 1e-12:
            break
    return 0.5 * (lo + hi), None


def default_mesh(cell: np.ndarray, periodic: np.ndarray, length: float = 25.0) -> tuple[int, int, int]:
    """A Gamma-centred mesh with about ``length`` Angstrom of Born-von Karman cell per periodic direction."""
    lengths = np.linalg.norm(np.asarray(cell), axis=1)
    return tuple(int(max(1, np.ceil(length / L))) if p else 1 for L, p in zip(lengths, periodic))


def mesh_points(mesh) -> np.ndarray:
    """(prod(mesh), 3) Gamma-centred uniform mesh in reciprocal lattice units, last index fastest."""
    axes = [np.arange(n) / n for n in mesh]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
