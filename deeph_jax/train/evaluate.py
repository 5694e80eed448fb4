"""Validation: predicted blocks of whole structures, MAE, and the error breakdown users read.

The breakdown groups the absolute errors of real H entries by block (on-site: the self edge
i == j, R = 0; off-site: all others), by element pair, by shell pair (s-s, s-p, p-d, ...) and by
pair distance: where a model is weak.

Spinful H: an entry's error is the modulus of the complex difference |dH|, over the spin quarters the
model predicts (all four with spin-orbit coupling, uu and dd for collinear spin); entries are labelled
with their orbitals' shells as for spinless H. ``predicted`` and ``reference`` are then complex.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from deeph_jax.graph import batch_graphs, padded_sizes
from deeph_jax.io import OrbitalBasis
from deeph_jax.io.inspect import SHELL_LETTERS
from deeph_jax.units import EV_TO_MICROHARTREE

ONSITE_DISTANCE = 1e-6  # Angstrom: only a self edge (i, i, R = 0) is shorter
DISTANCE_BINS = (0.0, ONSITE_DISTANCE, 1.5, 2.5, 3.5, 4.5, 6.0, 8.0, np.inf)  # Angstrom; first bin = on-site


def predict_samples(predict, params, samples, elements, dtype, batch_size: int = 8):
    """Predicted (h, s) blocks on each sample's edges: list of ((n_edges, W, W), (n_edges, W, W)).

    The batches carry the samples' DFT overlap, as training batches do (and prediction the exact one): a
    long-range channel shifts off-site blocks by phi-weighted S, and with the network's S in its place the
    validated H would be another model's (on hBN: gaps off by ~0.3 eV that prediction does not have)."""
    out = []
    for b in range(0, len(samples), batch_size):
        chunk = samples[b : b + batch_size]
        n = sum(s.graph.n_nodes for s in chunk)
        e = sum(s.graph.n_edges for s in chunk)
        sizes = padded_sizes(n, e, batch_size)
        batch = batch_graphs([s.graph for s in chunk], elements, [s.targets for s in chunk], sizes=sizes,
                             dtype=dtype)
        batch = batch._replace(h_blocks=None, block_mask=None)
        h, s_ = predict(params, batch)
        h, s_ = np.asarray(h), np.asarray(s_)
        e0 = 0
        for smp in chunk:
            ne = smp.graph.n_edges
            out.append((h[e0 : e0 + ne], s_[e0 : e0 + ne]))
            e0 += ne
    return out


def orbital_shell_l(basis: OrbitalBasis, element: str) -> np.ndarray:
    """The l of each orbital of one atom: (n_orbitals,)."""
    return np.concatenate([np.full(2 * l + 1, l) for l in basis.shells[element]])


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if x.size else float("nan")


@dataclass
class Breakdown:
    """Absolute errors of real H entries (eV) with their labels."""

    abs_err_h: np.ndarray
    abs_err_s: np.ndarray
    element_pair: np.ndarray  # str labels "B-N"
    shell_pair: np.ndarray  # str labels "s-p"
    distance: np.ndarray  # Angstrom
    predicted: np.ndarray  # H entries, eV
    reference: np.ndarray

    @property
    def mae_h_eV(self) -> float:
        return float(self.abs_err_h.mean()) if self.abs_err_h.size else float("nan")

    @property
    def onsite(self) -> np.ndarray:
        """(entries,) bool: entries of on-site blocks (self edge i == j, R = 0)."""
        return self.distance < ONSITE_DISTANCE

    @property
    def mae_h_onsite_eV(self) -> float:
        return _mean(self.abs_err_h[self.onsite])

    @property
    def mae_h_offsite_eV(self) -> float:
        return _mean(self.abs_err_h[~self.onsite])

    def loss(self, onsite_weight: float = 1.0, offsite_weight: float = 1.0, overlap_weight: float = 1.0) -> float:
        """The training loss (see :func:`deeph_jax.train.step.weighted_loss`) over these entries, eV^2."""
        sq_h = self.abs_err_h**2
        terms = [(onsite_weight, sq_h[self.onsite]), (offsite_weight, sq_h[~self.onsite]),
                 (overlap_weight, self.abs_err_s**2)]
        return float(sum(w * x.mean() for w, x in terms if w and x.size))

    @property
    def mae_s(self) -> float:
        return float(self.abs_err_s.mean()) if self.abs_err_s.size else float("nan")

    def table(self) -> list[tuple[str, str, int, float, float]]:
        """Rows (group, label, entries, MAE meV, MAE micro-Hartree)."""
        rows = []
        for lab, sel in (("on-site", self.onsite), ("off-site", ~self.onsite)):
            if sel.any():
                rows.append(("block", lab, int(sel.sum()), 1e3 * self.abs_err_h[sel].mean(),
                             EV_TO_MICROHARTREE * self.abs_err_h[sel].mean()))
        for group, labels in (("element pair", self.element_pair), ("shell pair", self.shell_pair)):
            for lab in sorted(set(labels.tolist())):
                sel = labels == lab
                rows.append((group, lab, int(sel.sum()), 1e3 * self.abs_err_h[sel].mean(),
                             EV_TO_MICROHARTREE * self.abs_err_h[sel].mean()))
        for lo, hi in zip(DISTANCE_BINS[:-1], DISTANCE_BINS[1:]):
            sel = (self.distance >= lo) & (self.distance < hi)
            if sel.any():
                lab = "on-site" if hi <= 1e-6 else f"{lo:.1f}-{hi:.1f} A" if np.isfinite(hi) else f">{lo:.1f} A"
                rows.append(("distance", lab, int(sel.sum()), 1e3 * self.abs_err_h[sel].mean(),
                             EV_TO_MICROHARTREE * self.abs_err_h[sel].mean()))
        return rows

    def table_text(self) -> str:
        lines = [f"{'group':<13} {'label':<12} {'entries':>9} {'MAE meV':>10} {'MAE uHa':>10}"]
        lines += [f"{g:<13} {l:<12} {n:>9} {m:>10.3f} {u:>10.2f}" for g, l, n, m, u in self.table()]
        return "\n".join(lines)


def breakdown(samples: Sequence, predictions, basis: OrbitalBasis, spin: str = "none") -> Breakdown:
    """Collect per-entry errors of every stored block of every sample (``spin``: the model's mode)."""
    from deeph_jax.model.spin_blocks import spin_quarters_used, unpad_block

    cols = {k: [] for k in ("eh", "es", "ep", "sp", "d", "p", "r")}
    shell_l = {e: orbital_shell_l(basis, e) for e in basis.elements}
    spinful = spin != "none"
    for smp, (h, s) in zip(samples, predictions):
        g, t = smp.graph, smp.targets
        sym = np.asarray(g.symbols)
        lengths = g.lengths
        for e in np.nonzero(t.present)[0]:
            ei, ej = sym[g.senders[e]], sym[g.receivers[e]]
            li, lj = shell_l[ei], shell_l[ej]
            a, b = len(li), len(lj)
            ref_s = t.s_blocks[e, :a, :b]
            pred_h, ref_h = unpad_block(h[e], a, b, spinful), unpad_block(t.h_blocks[e], a, b, spinful)
            keep = np.ones((a, b), bool)
            if spinful:  # the predicted spin quarters; labels repeat per quarter
                keep = np.kron(spin_quarters_used(spin), keep)
                li, lj = np.tile(li, 2), np.tile(lj, 2)
            n = int(keep.sum())
            cols["eh"].append(np.abs(pred_h - ref_h)[keep])
            cols["es"].append(np.abs(s[e, :a, :b] - ref_s).ravel())
            lo, hi = np.minimum.outer(li, lj)[keep], np.maximum.outer(li, lj)[keep]
            cols["sp"].append(np.char.add(np.char.add(np.asarray(list(SHELL_LETTERS))[lo], "-"),
                                          np.asarray(list(SHELL_LETTERS))[hi]))
            cols["ep"].append(np.full(n, "-".join(sorted((ei, ej))), dtype=object))
            cols["d"].append(np.full(n, lengths[e]))
            cols["p"].append(pred_h[keep])
            cols["r"].append(ref_h[keep])
    cat = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in cols.items()}
    return Breakdown(cat["eh"], cat["es"], cat["ep"].astype(str), cat["sp"].astype(str), cat["d"], cat["p"], cat["r"])
