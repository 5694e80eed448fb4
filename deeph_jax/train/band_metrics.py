"""Validation on what users look at: the levels near the gap, and the gap, of predicted H against DFT H.

Training reports the H MAE, but two models of equal MAE can give bands 30 meV apart (a shift common to
many blocks moves every level). At each validation, every validation structure's predicted and DFT H
are diagonalized with the DFT overlap at a few k-points (reduced coordinates of the structure's cell;
Gamma alone for a molecule), on the pairs the DFT data stores:
- ``band_mae``: mean |error| of the levels from ``window_eV`` below the DFT's highest occupied level to
  ``window_eV`` above its lowest empty one (over those k-points), absolute (no offset removed): the band
  edges always count, also for a molecule whose gap is wider than twice the window;
- ``gap_error``: predicted minus DFT gap over those k-points (a metal's is ~0 on both sides).
Electron counts come from the structure's info.json ``occupation``; structures without one, and those of more
than ``MAX_ORBITALS`` (spin-)orbitals (dense eigensolves at every validation), are skipped.
Spinful H (spin-orbit or collinear) fills one spin-orbital per electron, spinless H two.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.linalg

from deeph_jax.io import OrbitalBasis
from deeph_jax.model.spin_blocks import unpad_block

# Reduced k-points: Gamma, a zone-boundary midpoint, the hexagonal K and a generic point (lifts accidental
# degeneracies); for a cell of another lattice they are just four points of its Brillouin zone.
VALIDATION_KPOINTS = ((0.0, 0.0, 0.0), (0.5, 0.0, 0.0), (1 / 3, 1 / 3, 0.0), (0.137, 0.291, 0.0))
MAX_ORBITALS = 2000  # ~1 s per dense generalized eigensolve on one core


@dataclass(frozen=True)
class LevelErrors:
    """One structure: levels (n_k, n_levels) eV of predicted and DFT H, the electrons they hold."""

    predicted: np.ndarray
    reference: np.ndarray
    n_occupied: int

    def _gap(self, levels: np.ndarray) -> tuple[float, float]:
        """(highest occupied, lowest empty) level over the k-points."""
        n = self.n_occupied
        bottom = float(levels[:, n].min()) if n < levels.shape[1] else np.inf
        return float(levels[:, n - 1].max()), bottom

    def window(self, window_eV: float) -> np.ndarray:
        """(n_k, n_levels) bool: DFT levels from ``window_eV`` below the highest occupied one to ``window_eV``
        above the lowest empty one."""
        top, bottom = self._gap(self.reference)
        bottom = bottom if np.isfinite(bottom) else top
        lo, hi = min(top, bottom), max(top, bottom)  # a metal's levels cross between k-points: around both
        return (self.reference >= lo - window_eV) & (self.reference <= hi + window_eV)

    def band_mae_eV(self, window_eV: float) -> float:
        sel = self.window(window_eV)
        return float(np.abs(self.predicted - self.reference)[sel].mean()) if sel.any() else float("nan")

    def gap_error_eV(self) -> float:
        (pt, pb), (rt, rb) = self._gap(self.predicted), self._gap(self.reference)
        return (pb - pt) - (rb - rt) if np.isfinite(pb) and np.isfinite(rb) else float("nan")


@dataclass(frozen=True)
class EdgeBlocks:
    """The blocks of some edges grouped by shape, with where each entry goes in the cell's matrix: ``groups`` is a
    list of (edges (n,), blocks (n, a, b), rows (n, a, 1), cols (n, 1, b))."""

    groups: list

    @classmethod
    def gather(cls, blocks: dict, senders: np.ndarray, receivers: np.ndarray, offsets: np.ndarray) -> "EdgeBlocks":
        """``blocks``: {edge: (a, b) block cut to its atoms' orbitals}; ``offsets``: first row of each atom."""
        by_shape: dict[tuple, list] = {}
        for e, b in blocks.items():
            by_shape.setdefault(b.shape, []).append(e)
        groups = []
        for (a, b), edges in by_shape.items():
            edges = np.array(edges)
            groups.append((edges, np.stack([blocks[e] for e in edges]),
                           offsets[senders[edges]][:, None, None] + np.arange(a)[None, :, None],
                           offsets[receivers[edges]][:, None, None] + np.arange(b)[None, None, :]))
        return cls(groups)

    def bloch(self, vectors: np.ndarray, k_cart: np.ndarray, dim: int) -> np.ndarray:
        """sum over the edges of exp(i k . r_e) times their blocks: (dim, dim), with r_e = pos_j + R - pos_i (the
        atoms' gauge: the levels of the lattice gauge)."""
        m = np.zeros((dim, dim), complex)
        for edges, blocks, rows, cols in self.groups:
            np.add.at(m, (rows, cols), np.exp(1j * vectors[edges] @ k_cart)[:, None, None] * blocks)
        return 0.5 * (m + m.conj().T)  # the stored blocks' rounding; Hermitian up to it


def orbital_offsets(n_orbitals: np.ndarray, spinful: bool) -> tuple[np.ndarray, int]:
    """(first row of each atom, matrix dimension) for atoms of ``n_orbitals`` orbitals (spinful: 2 rows each)."""
    per_atom = np.asarray(n_orbitals) * (2 if spinful else 1)
    return np.concatenate([[0], np.cumsum(per_atom)[:-1]]), int(per_atom.sum())


def level_errors(sample, predicted_h: np.ndarray, basis: OrbitalBasis, n_electrons: int, spin: str,
                 kpoints=VALIDATION_KPOINTS) -> LevelErrors:
    """Levels of the predicted and the DFT H of one sample (padded edge blocks), with the DFT S."""
    g, t = sample.graph, sample.targets
    spinful = spin != "none"
    n_orb = np.array([basis.n_orbitals(s) for s in g.symbols])
    offsets, dim = orbital_offsets(n_orb, spinful)
    edges = np.flatnonzero(t.present)

    def gathered(padded, spinful_block: bool) -> EdgeBlocks:
        cut = {e: unpad_block(padded[e], n_orb[g.senders[e]], n_orb[g.receivers[e]], spinful_block) for e in edges}
        if spinful and not spinful_block:  # the overlap does not act on spin: [[S, 0], [0, S]]
            cut = {e: np.kron(np.eye(2), b) for e, b in cut.items()}
        return EdgeBlocks.gather(cut, g.senders, g.receivers, offsets)

    h_pred, h_ref, s_blk = gathered(predicted_h, spinful), gathered(t.h_blocks, spinful), gathered(t.s_blocks, False)
    periodic = g.cell is not None and np.abs(g.cell).sum() > 0 and np.abs(g.shifts).sum() > 0
    ks = np.asarray(kpoints if periodic else [(0.0, 0.0, 0.0)], dtype=np.float64)
    recip = 2 * np.pi * np.linalg.inv(np.asarray(g.cell, dtype=np.float64)).T if periodic else np.eye(3)
    pred, ref = [], []
    for k in ks @ recip:
        s = s_blk.bloch(g.vectors, k, dim)
        ref.append(scipy.linalg.eigh(h_ref.bloch(g.vectors, k, dim), s, eigvals_only=True))
        pred.append(scipy.linalg.eigh(h_pred.bloch(g.vectors, k, dim), s, eigvals_only=True))
    n_occ = n_electrons if spinful else n_electrons // 2
    return LevelErrors(np.array(pred), np.array(ref), n_occ)


def electron_count(structure_dir: str | Path) -> int | None:
    """info.json's ``occupation`` (electrons in the cell), or None."""
    info = Path(structure_dir) / "info.json"
    if not info.is_file():
        return None
    n = json.loads(info.read_text()).get("occupation")
    return None if n is None else int(round(n))


def level_summary(levels: Sequence[LevelErrors], window_eV: float) -> dict | None:
    """{'band_mae_meV', 'gap_error_meV' (mean |gap error|), 'n'} over structures' level errors; None for none."""
    if not levels:
        return None
    band = [lv.band_mae_eV(window_eV) for lv in levels]
    gaps = np.abs(np.array([lv.gap_error_eV() for lv in levels]))
    return {"band_mae_meV": 1e3 * float(np.nanmean(band)),
            "gap_error_meV": 1e3 * float(np.nanmean(gaps)) if np.isfinite(gaps).any() else float("nan"),
            "n": len(levels)}


def validation_levels(samples: Sequence, predictions, dirs: Sequence[Path], basis: OrbitalBasis, spin: str,
                      window_eV: float = 3.0) -> dict | None:
    """:func:`level_summary` over the samples with an electron count and at most ``MAX_ORBITALS`` orbitals, or None
    when there is none."""
    levels = []
    for smp, (h, _), d in zip(samples, predictions, dirs):
        n = electron_count(d)
        _, dim = orbital_offsets([basis.n_orbitals(s) for s in smp.graph.symbols], spin != "none")
        if n is not None and dim <= MAX_ORBITALS:
            levels.append(level_errors(smp, h, basis, n, spin))
    return level_summary(levels, window_eV)
