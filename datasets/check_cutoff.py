"""Band error against the block cutoff radius, and |H| decay with distance (primitive crystal; run by hand).

    python datasets/check_cutoff.py [--name hbn] [--kmesh 3 3 1] [--dense 12 12 1] [--json bench/results/cutoff_hbn.json]

Computes the primitive cell with the crystal generator's recipe and a 12 A cutoff (the dense mesh must make
a Born-von Karman cell >= 24 A), then for each smaller cutoff drops the blocks beyond it and prints
max |E(k) - E_get_bands(k)| over 5 k-points on neither mesh: all bands (occupied + 4 empty) and the
occupied bands only; then the largest |H| entry in each distance shell. This is the table of
datasets/README.md ("Cutoff: 10 A (not 8 A)").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run this checkout, not another installed copy

K_POINTS = np.array([[0.13, 0.29, 0.0], [0.41, 0.07, 0.0], [0.071, 0.213, 0.0], [1 / 3, 2 / 3, 0.0], [0.45, 0.45, 0.0]])
CUTOFFS = (5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 12.0)
SHELLS = (0.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0)


def block_distances(data) -> np.ndarray:
    st = data.structure
    ap = data.hamiltonian.atom_pairs
    d = st.positions[ap[:, 4]] + ap[:, :3] @ st.cell - st.positions[ap[:, 3]]
    return np.linalg.norm(d, axis=1)


def truncated(data, cutoff: float):
    from dataclasses import replace

    from deeph_jax.io import BlockSparse

    keep = block_distances(data) <= cutoff + 1e-9

    def cut(m):
        blocks = {k: b for (k, b), ok in zip(m.blocks(), keep) if ok}
        return BlockSparse.from_blocks(blocks)

    return replace(data, hamiltonian=cut(data.hamiltonian), overlap=cut(data.overlap))


def band_errors(data, reference: np.ndarray, nocc: int, n_empty: int = 4) -> tuple[float, float]:
    import scipy.linalg

    all_bands, occupied = 0.0, 0.0
    for k, ref in zip(K_POINTS, reference):
        e = scipy.linalg.eigh(data.hamiltonian_k(k), data.overlap_k(k), eigvals_only=True)
        nb = min(nocc + n_empty, len(e))
        all_bands = max(all_bands, float(np.abs(e[:nb] - ref[:nb]).max()))
        occupied = max(occupied, float(np.abs(e[:nocc] - ref[:nocc]).max()))
    return all_bands, occupied


def main() -> None:
    from deeph_jax.dft.crystals import CrystalSettings, compute_crystal, named_cell
    from deeph_jax.units import HARTREE_TO_EV

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", default="hbn")
    ap.add_argument("--kmesh", type=int, nargs=3, default=[3, 3, 1])
    ap.add_argument("--dense", type=int, nargs=3, default=[12, 12, 1])
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    t0 = time.perf_counter()
    settings = CrystalSettings(kmesh=tuple(args.kmesh), dense_kmesh=tuple(args.dense), cutoff=max(CUTOFFS),
                               smearing_eV=0.1 if args.name == "graphene" else None)
    data, mf, _ = compute_crystal(named_cell(args.name), settings)
    mf.__dict__.pop("get_hcore", None)  # the reference is PySCF's own get_bands with its own h_core
    ref, _ = mf.get_bands(mf.cell.get_abs_kpts(K_POINTS))
    reference = np.asarray(ref) * HARTREE_TO_EV
    nocc = int(round(mf.cell.nelectron)) // 2
    rows = []
    for rc in CUTOFFS:
        all_bands, occupied = band_errors(truncated(data, rc), reference, nocc)
        rows.append({"cutoff_A": rc, "max_error_all_meV": 1e3 * all_bands, "max_error_occupied_meV": 1e3 * occupied})
        print(f"cutoff {rc:5.1f} A: all bands {1e3 * all_bands:10.3f} meV, occupied {1e3 * occupied:9.3f} meV",
              flush=True)
    d = block_distances(data)
    size = np.array([np.abs(b).max() for _, b in data.hamiltonian.blocks()])
    decay = []
    for lo, hi in zip(SHELLS[:-1], SHELLS[1:]):
        m = (d > lo) & (d <= hi)
        if m.any():
            decay.append({"from_A": lo, "to_A": hi, "max_abs_H_eV": float(size[m].max())})
            print(f"|H| max at {lo:4.1f}-{hi:4.1f} A: {size[m].max():.3g} eV")
    print(f"({time.perf_counter() - t0:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps({"command": "python datasets/check_cutoff.py " + " ".join(sys.argv[1:]),
                                               "date": time.strftime("%Y-%m-%d"), "rows": rows, "decay": decay},
                                              indent=1))


if __name__ == "__main__":
    main()
