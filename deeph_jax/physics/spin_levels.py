"""Levels of a spinful molecular Hamiltonian with spin-orbit coupling: Kramers pairs, and the splittings
that spin-orbit coupling makes between them. Energies in eV.

A spinful H (2n x 2n, global spin-major layout [[H_uu, H_ud], [H_du, H_dd]], as
:func:`deeph_jax.physics.bands.bloch_pencil` assembles it, with S doubled) of a system without a magnetic
field is time-reversal symmetric, so its eigenvalues come in degenerate Kramers pairs: n levels. Its scalar
part (H_uu + H_dd) / 2 is the Hamiltonian without spin-orbit coupling, whose n levels are each doubly
(spin) degenerate. Levels i and i + 1 are "split by spin-orbit coupling" where their spacing with and without
it differs: HBr's pi HOMO pair is degenerate in the scalar part and 0.27 eV apart with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from deeph_jax.errors import DeephError

# valence electrons of the neutral atoms that the SOC molecule sets use (main-group counting)
VALENCE_ELECTRONS = {"H": 1, "He": 2, "Li": 1, "Be": 2, "B": 3, "C": 4, "N": 5, "O": 6, "F": 7, "Ne": 8, "Na": 1,
                     "Mg": 2, "Al": 3, "Si": 4, "P": 5, "S": 6, "Cl": 7, "Ar": 8, "Ga": 3, "Ge": 4, "As": 5, "Se": 6,
                     "Br": 7, "Kr": 8, "In": 3, "Sn": 4, "Sb": 5, "Te": 6, "I": 7, "Xe": 8}
SOC_SPLIT_MIN_EV = 0.02  # spacing change that counts a pair of levels as split by spin-orbit coupling


def scalar_part(h: np.ndarray) -> np.ndarray:
    """(n, n) spin-independent part (H_uu + H_dd) / 2 of a (2n, 2n) spin-major H."""
    n = h.shape[0] // 2
    if h.shape != (2 * n, 2 * n):
        raise DeephError(f"a spinful H is (2n, 2n); got {h.shape}")
    return 0.5 * (h[:n, :n] + h[n:, n:])


def kramers_levels(h: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, float]:
    """Levels of a time-reversal-symmetric spinful pencil (h, s), both (2n, 2n): the n pair means, ascending,
    and the largest splitting within a pair (0 for an exactly time-reversal-symmetric H)."""
    e = scipy.linalg.eigh(h, s, eigvals_only=True)
    pairs = e.reshape(-1, 2)
    return pairs.mean(axis=1), float(np.abs(pairs[:, 1] - pairs[:, 0]).max())


def valence_levels(symbols, charge: int = 0) -> int:
    """Occupied valence Kramers levels (valence electrons / 2) of a closed-shell molecule."""
    missing = sorted(set(symbols) - set(VALENCE_ELECTRONS))
    if missing:
        raise DeephError(f"no valence electron count for {', '.join(missing)}")
    electrons = sum(VALENCE_ELECTRONS[x] for x in symbols) - charge
    if electrons % 2:
        raise DeephError(f"{electrons} valence electrons: not a closed shell (Kramers levels hold two)")
    return electrons // 2


@dataclass(frozen=True)
class SocSplitting:
    """Spacing of occupied Kramers levels ``lower`` and ``lower + 1`` (0-based, ascending), eV: with spin-orbit
    coupling (``spacing_eV``) and in the scalar part alone (``scalar_spacing_eV``)."""

    lower: int
    spacing_eV: float
    scalar_spacing_eV: float


def soc_splittings(h: np.ndarray, s: np.ndarray, n_occupied: int, n_valence: int,
                   min_change: float = SOC_SPLIT_MIN_EV) -> list[SocSplitting]:
    """Pairs of neighbouring occupied valence levels whose spacing spin-orbit coupling changes by at least
    ``min_change`` eV: levels ``n_occupied - n_valence`` .. ``n_occupied - 1`` (Kramers levels, counted from
    the lowest) of the spinful pencil (h, s) against its scalar part (s's spin-up block as its metric)."""
    n = h.shape[0] // 2
    full, _ = kramers_levels(h, s)
    scalar = scipy.linalg.eigh(scalar_part(h), s[:n, :n], eigvals_only=True)
    if not 0 < n_valence <= n_occupied <= n:
        raise DeephError(f"{n_valence} valence of {n_occupied} occupied levels do not fit {n} levels")
    out = []
    for i in range(n_occupied - n_valence, n_occupied - 1):
        spacing, scalar_spacing = full[i + 1] - full[i], scalar[i + 1] - scalar[i]
        if abs(spacing - scalar_spacing) >= min_change:
            out.append(SocSplitting(i, float(spacing), float(scalar_spacing)))
    return out


__all__ = ["SOC_SPLIT_MIN_EV", "SocSplitting", "VALENCE_ELECTRONS", "kramers_levels", "scalar_part",
           "soc_splittings", "valence_levels"]
