"""A spin-orbit model on held-out molecules, as issue 17 checks it (run by hand).

    python bench/bench_soc.py [--model models/halides-soc] [--dataset datasets/halides-soc-pbe-def2svp-test]
                              [--ood datasets/halides-soc-ood] [--json bench/results/soc.json]

For every molecule of the test set and of the out-of-distribution set (CH2BrCl, not among the halides the
model trained on; datasets/molecules/ch2brcl.xyz, PySCF X2C GKS, PBE / def2-SVP): predict H once, in memory
(bench_test_set's evaluation), then compare with the DFT H and S of the folder:

* H MAE over every entry (|complex difference|, eV), on-site and off-site apart (bench_test_set's breakdown);
* the largest splitting inside a predicted Kramers pair (time reversal: 0 up to rounding);
* the 8 highest occupied spin-orbitals (4 Kramers levels), absolute, no offset removed;
* the spacings of neighbouring occupied valence levels that spin-orbit coupling moves by >= 20 meV in the DFT H
  (:func:`deeph_jax.physics.spin_levels.soc_splittings`: HBr's pi pair, 0.27 eV): predicted against DFT.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run this checkout, not another installed copy
sys.path.insert(0, str(REPO / "bench"))

from deeph_jax.errors import report_user_errors  # noqa: E402
from deeph_jax.provenance import write_result  # noqa: E402

TOP_SPIN_ORBITALS = 8


def compare(dft_dir: Path, h_predicted) -> dict:
    """Levels of a molecule folder's DFT H and of the predicted H (a BlockSparse in eV), both with the folder's
    overlap (the exact one: prediction would use PySCF's integrals of the same basis)."""
    from dataclasses import replace

    from deeph_jax.io import read_deeph_dir
    from deeph_jax.physics.spin_levels import kramers_levels, soc_splittings, valence_levels

    data = read_deeph_dir(dft_dir)
    h, s = data.hamiltonian_k([0, 0, 0]), data.overlap_k([0, 0, 0])
    h_pred = replace(data, hamiltonian=h_predicted).hamiltonian_k([0, 0, 0])
    electrons, symbols = int(round(data.info["occupation"])), data.structure.symbols
    n_occ = electrons // 2  # Kramers levels
    dft, _ = kramers_levels(h, s)
    pred, pair_splitting = kramers_levels(h_pred, s)
    top = slice(n_occ - TOP_SPIN_ORBITALS // 2, n_occ)
    pairs = soc_splittings(h, s, n_occ, valence_levels(symbols))
    spacing_errors = [float(pred[p.lower + 1] - pred[p.lower] - p.spacing_eV) for p in pairs]
    return {
        "structure": dft_dir.name, "formula": "".join(symbols), "kramers_pair_splitting_max_eV": pair_splitting,
        "top_occupied_dft_eV": dft[top].tolist(), "top_occupied_pred_eV": pred[top].tolist(),
        "top_occupied_max_error_meV": 1e3 * float(np.abs(pred[top] - dft[top]).max()),
        "soc_pairs": [{"lower": p.lower, "dft_eV": p.spacing_eV, "scalar_eV": p.scalar_spacing_eV,
                       "error_meV": 1e3 * e} for p, e in zip(pairs, spacing_errors)],
        "soc_spacing_max_error_meV": 1e3 * max((abs(e) for e in spacing_errors), default=0.0),
    }


def bench_set(model: Path, dataset: Path, label: str) -> dict:
    from bench_test_set import evaluate

    from deeph_jax.predict.bundle import load_bundle
    from deeph_jax.predict.infer import blocks_to_sparse

    _, basis, _, _ = load_bundle(model)
    errors, samples, predictions = evaluate(model, dataset, keep_predictions=True)
    rows = [compare(Path(smp.name), blocks_to_sparse(smp.graph, h, basis)) for smp, (h, _) in zip(samples, predictions)]
    soc = [p["error_meV"] for r in rows for p in r["soc_pairs"]]
    top = np.array([r["top_occupied_max_error_meV"] for r in rows])
    summary = {
        "set": label, "dataset": str(dataset), "structures": len(rows), "predict_s": errors["seconds"],
        "mae_h_meV": errors["mae_h_meV"], "mae_h_onsite_meV": errors["mae_h_onsite_meV"],
        "mae_h_offsite_meV": errors["mae_h_offsite_meV"],
        "kramers_pair_splitting_max_eV": max(r["kramers_pair_splitting_max_eV"] for r in rows),
        "top8_max_error_meV": float(top.max()), "top8_mean_of_max_error_meV": float(top.mean()),
        "soc_pairs": len(soc), "soc_spacing_mae_meV": float(np.mean(np.abs(soc))) if soc else None,
        "soc_spacing_max_error_meV": float(np.max(np.abs(soc))) if soc else None,
        "soc_spacings_within_10_meV": float(np.mean(np.abs(soc) <= 10.0)) if soc else None,
        "rows": rows,
    }
    print(f"{label}: {len(rows)} molecules, H MAE {summary['mae_h_meV']:.3f} meV (on-site "
          f"{summary['mae_h_onsite_meV']:.3f}, off-site {summary['mae_h_offsite_meV']:.3f}); 8 highest occupied "
          f"spin-orbitals: worst {summary['top8_max_error_meV']:.1f} meV; {len(soc)} SOC-moved spacings: "
          + (f"MAE {summary['soc_spacing_mae_meV']:.2f} meV, worst {summary['soc_spacing_max_error_meV']:.2f} meV, "
             f"{100 * summary['soc_spacings_within_10_meV']:.1f} % within 10 meV; " if soc else "")
          + f"Kramers pairs split by <= {summary['kramers_pair_splitting_max_eV']:.1e} eV", flush=True)
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(REPO / "models" / "halides-soc"))
    ap.add_argument("--dataset", default=str(REPO / "datasets" / "halides-soc-pbe-def2svp-test"))
    ap.add_argument("--ood", default=str(REPO / "datasets" / "halides-soc-ood"),
                    help="molecules of the same elements outside the training distribution")
    ap.add_argument("--json", default="", help="raw results (e.g. bench/results/soc.json)")
    args = ap.parse_args()

    def run():
        import jax

        model = Path(args.model)
        model = model / "model" if (model / "model" / "model.yaml").is_file() else model  # a run folder
        result = {"model": args.model, "jax_backend": jax.default_backend(), "date": time.strftime("%Y-%m-%d"),
                  "sets": [bench_set(model, Path(args.dataset), "test"),
                           bench_set(model, Path(args.ood), "out of distribution")]}
        if args.json:
            print(f"raw results: {write_result(args.json, result)}")

    return report_user_errors("bench_soc", run)


if __name__ == "__main__":
    raise SystemExit(main())
