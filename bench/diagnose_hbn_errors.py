"""Where the band error of predicted hBN comes from (issue 15, "measure first"); run by hand.

    python bench/diagnose_hbn_errors.py [--model models/hbn-szv] [--dataset datasets/hbn-szv/large-4x4]
                                        [--out runs/diagnose-hbn] [--json bench/results/diagnose_hbn_errors.json]

For each DFT cell: predict H, then build two hybrids, predicted hoppings with the DFT on-site blocks
(i, i, R=0) and DFT hoppings with the predicted on-site blocks, and compare the bands of all four
Hamiltonians (DFT, predicted, the two hybrids; same exact S) with DFT's at the supercell's Gamma, M, K and
one generic k-point: the mean |E - E_DFT| over eigenvalues within 3 eV of the DFT Fermi level, absolute and
after removing the mean offset. Then the on-site residuals (predicted - DFT, the s diagonal and the mean p
diagonal) and the DFT on-site energies themselves (minus each element's mean), correlated per element with
the Ewald potential of fixed point charges +1 (B) / -1 (N) at the rattled positions in the DFT cell, and the
residuals with its long-range (erf) part alone.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.linalg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run this checkout, not another installed copy
KPOINTS = np.array([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [1 / 3, 1 / 3, 0.0], [0.137, 0.291, 0.0]])
WINDOW_EV = 3.0
LONG_RANGE_ALPHA = 0.3  # 1/A: the erf part of the potential, beyond what a 3.5 A message radius sees


def with_onsite_from(target, source):
    """``target`` with its on-site blocks (i, i, R=0) replaced by those of ``source`` (BlockSparse)."""
    from deeph_jax.io import BlockSparse

    blocks = {}
    for key, block in target.blocks():
        onsite = key[3] == key[4] and key[:3] == (0, 0, 0)
        blocks[key] = np.array(source.get(key[:3], key[3], key[4]) if onsite else block)
    return BlockSparse.from_blocks(blocks)


def eigenvalues(data, hamiltonian) -> np.ndarray:
    offsets = data.atom_offsets
    out = []
    for k in KPOINTS:
        h = hamiltonian.bloch_dense(k, offsets)
        s = data.overlap.bloch_dense(k, offsets)
        out.append(scipy.linalg.eigh(h, s, eigvals_only=True))
    return np.asarray(out)


def band_errors(e: np.ndarray, ref: np.ndarray, fermi: float) -> dict:
    mask = np.abs(ref - fermi) <= WINDOW_EV
    diff = (e - ref)[mask]
    return {"abs_meV": 1e3 * float(np.abs(diff).mean()), "offset_meV": 1e3 * float(diff.mean()),
            "after_offset_meV": 1e3 * float(np.abs(diff - diff.mean()).mean()), "n": int(mask.sum())}


def onsite_diagonals(data, matrix) -> tuple[np.ndarray, np.ndarray]:
    """Per atom: the s on-site energy and the mean of the p diagonal (eV); gth-szv B, N have s + p."""
    s, p = [], []
    for i in range(data.structure.n_atoms):
        d = np.diag(matrix.get((0, 0, 0), i, i))
        s.append(d[0])
        p.append(d[1:4].mean())
    return np.asarray(s), np.asarray(p)


def correlations(values: np.ndarray, phi: np.ndarray, symbols) -> dict:
    out = {}
    for el in sorted(set(symbols)):
        m = np.asarray(symbols) == el
        v, f = values[m] - values[m].mean(), phi[m] - phi[m].mean()
        out[el] = {"pearson": float(np.corrcoef(v, f)[0, 1]), "std_meV": 1e3 * float(v.std()),
                   "slope_e_per_V": float(np.dot(v, f) / np.dot(f, f))}
    return out


def diagnose(src: Path, predictor, out: Path) -> dict:
    from deeph_jax.io import read_deeph_dir
    from deeph_jax.physics.ewald import ewald_potential, long_range_kernel
    from deeph_jax.predict.run import predict_to_folder

    dft = read_deeph_dir(src)
    predict_to_folder(dft.structure, predictor, out, progress=False)
    pred = read_deeph_dir(out, hamiltonian="hamiltonian_pred.h5").hamiltonian
    h_dft = dft.hamiltonian
    variants = {"predicted": pred, "predicted hoppings + DFT on-site": with_onsite_from(pred, h_dft),
                "DFT hoppings + predicted on-site": with_onsite_from(h_dft, pred)}
    ref = eigenvalues(dft, h_dft)
    fermi = float(dft.fermi_energy_eV)
    bands = {name: band_errors(eigenvalues(dft, h), ref, fermi) for name, h in variants.items()}
    symbols = dft.structure.symbols
    q = np.where(np.asarray(symbols) == "B", 1.0, -1.0)
    phi = ewald_potential(dft.structure.positions, dft.structure.cell, q)
    phi_long = long_range_kernel(dft.structure.positions, dft.structure.cell, LONG_RANGE_ALPHA) @ q
    s_dft, p_dft = onsite_diagonals(dft, h_dft)
    s_pred, p_pred = onsite_diagonals(dft, pred)
    return {
        "sid": src.name, "atoms": dft.structure.n_atoms, "bands": bands,
        "dft_onsite_vs_phi": {"s": correlations(s_dft, phi, symbols), "p": correlations(p_dft, phi, symbols)},
        "residual_vs_phi": {"s": correlations(s_pred - s_dft, phi, symbols),
                            "p": correlations(p_pred - p_dft, phi, symbols)},
        "residual_vs_phi_long": {"s": correlations(s_pred - s_dft, phi_long, symbols),
                                 "p": correlations(p_pred - p_dft, phi_long, symbols)},
        "residual_rms_meV": {"s": 1e3 * float(np.sqrt(np.mean((s_pred - s_dft) ** 2))),
                             "p": 1e3 * float(np.sqrt(np.mean((p_pred - p_dft) ** 2)))},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO / "models" / "hbn-szv"))
    parser.add_argument("--dataset", default=str(REPO / "datasets" / "hbn-szv" / "large-4x4"))
    parser.add_argument("--out", default="runs/diagnose-hbn")
    parser.add_argument("--json", default=None, help="also write the results here (e.g. bench/results/...)")
    args = parser.parse_args()

    from deeph_jax.io import find_structure_dirs
    from deeph_jax.predict.infer import load_predictor

    predictor = load_predictor(args.model)
    rows = [diagnose(src, predictor, Path(args.out) / src.name) for src in find_structure_dirs(Path(args.dataset))]
    for r in rows:
        print(f"{r['sid']} ({r['atoms']} atoms): band error within {WINDOW_EV:g} eV of E_F, meV "
              f"(absolute / mean offset / after removing it)")
        for name, b in r["bands"].items():
            print(f"  {name:34s} {b['abs_meV']:8.1f} {b['offset_meV']:+8.1f} {b['after_offset_meV']:8.1f}")
        for what in ("dft_onsite_vs_phi", "residual_vs_phi", "residual_vs_phi_long"):
            text = ", ".join(f"{orb} {el}: r = {c['pearson']:+.2f} (std {c['std_meV']:.0f} meV)"
                             for orb, per in r[what].items() for el, c in per.items())
            print(f"  {what}: {text}")
        print(f"  on-site residual rms: s {r['residual_rms_meV']['s']:.0f} meV, p {r['residual_rms_meV']['p']:.0f} meV")
    record = {"command": "python bench/diagnose_hbn_errors.py " + " ".join(
        f"--{k} {v}" for k, v in vars(args).items() if v is not None), "date": time.strftime("%Y-%m-%d"),
        "model": args.model, "dataset": args.dataset, "kpoints": KPOINTS.tolist(), "rows": rows}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    text = json.dumps(record, indent=1, default=float)
    (Path(args.out) / "results.json").write_text(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text)


if __name__ == "__main__":
    main()
