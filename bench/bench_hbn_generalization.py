"""Generalization to larger cells on real DFT (run by hand): the hBN model trained on 8-atom
cells predicts the shipped 32-atom DFT cells; H MAE, bands and polarization vs DFT.

    python bench/bench_hbn_generalization.py [--model models/hbn-szv] [--dataset datasets/hbn-szv/large-4x4]
                                             [--out runs/bench-hbn-generalization] [--record]

For each structure: H MAE over all stored blocks (meV), band error along the seekpath path within
3 eV of the DFT Fermi level (mean and max, meV), and the in-plane Berry-phase polarization from
predicted and from DFT H (same exact S, same ionic part), its difference in units of the
polarization quantum and in C/m (sheet). Writes results.json beside the predicted folders; with
--record, also the test MAE into the model's metadata.json (what `predict.py --list-models` shows).
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def wrapped(x: np.ndarray) -> np.ndarray:
    """Differences of reduced polarizations, modulo the quantum, in [-1/2, 1/2)."""
    return (x + 0.5) % 1.0 - 0.5


def one(src: Path, predictor, out: Path) -> dict:
    from deeph_jax.physics.workflows import run_polarization
    from deeph_jax.pipeline.demo import predict_crystal_against_dft

    t0 = time.perf_counter()
    structure, mae, bands = predict_crystal_against_dft(src, predictor, out)
    predict_bands_s = time.perf_counter() - t0
    p_pred = run_polarization(out, hamiltonian="pred")
    p_dft = run_polarization(out, hamiltonian="dft")
    d_reduced = wrapped(p_pred["polarization"].reduced - p_dft["polarization"].reduced)
    in_plane = p_dft["periodic"]
    return {
        "sid": src.name, "atoms": structure.n_atoms,
        "predict_and_bands_s": predict_bands_s, "mae_meV": 1e3 * mae,
        "band_mae_near_fermi_meV": 1e3 * bands["band_mae_near_fermi_eV"],
        "band_max_near_fermi_meV": 1e3 * bands["band_max_near_fermi_eV"],
        "band_max_all_meV": 1e3 * bands["max_abs_diff_eV"],
        "gap_pred_eV": bands.get("gap_eV"),
        "P_dft_reduced": p_dft["polarization"].reduced[in_plane].tolist(),
        "P_pred_reduced": p_pred["polarization"].reduced[in_plane].tolist(),
        "dP_reduced": d_reduced[in_plane].tolist(),
        "P_dft_C_per_m": p_dft["P_C_per_m"][in_plane].tolist(),
        "P_pred_C_per_m": p_pred["P_C_per_m"][in_plane].tolist(),
        "quantum_C_per_m": float(np.linalg.norm(p_dft["quantum_C_per_m"][0])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO / "models" / "hbn-szv"))
    parser.add_argument("--dataset", default=str(REPO / "datasets" / "hbn-szv" / "large-4x4"))
    parser.add_argument("--out", default="runs/bench-hbn-generalization")
    parser.add_argument("--record", action="store_true", help="write the test MAE into the model's metadata.json")
    args = parser.parse_args()

    from deeph_jax.io import find_structure_dirs
    from deeph_jax.predict.infer import load_predictor

    predictor = load_predictor(args.model)
    out = Path(args.out)
    rows = [one(src, predictor, out / src.name) for src in find_structure_dirs(Path(args.dataset))]
    for r in rows:
        print(f"{r['sid']}: {r['atoms']} atoms, H MAE {r['mae_meV']:.2f} meV, bands within 3 eV of E_F: mean "
              f"{r['band_mae_near_fermi_meV']:.2f} / max {r['band_max_near_fermi_meV']:.2f} meV (all bands max "
              f"{r['band_max_all_meV']:.1f}), P_pred - P_DFT = {np.round(r['dP_reduced'], 6).tolist()} quanta "
              f"(P_DFT = {np.round(r['P_dft_C_per_m'], 13).tolist()} C/m, quantum {r['quantum_C_per_m']:.3e} C/m)")
    summary = {k: float(np.mean([r[k] for r in rows])) for k in ("mae_meV", "band_mae_near_fermi_meV")}
    summary["band_max_near_fermi_meV"] = float(max(r["band_max_near_fermi_meV"] for r in rows))
    summary["max_abs_dP_reduced"] = float(max(np.abs(r["dP_reduced"]).max() for r in rows))
    print("mean over structures: " + json.dumps(summary))
    (out / "results.json").write_text(json.dumps({"model": args.model, "dataset": args.dataset, "rows": rows,
                                                  "summary": summary}, indent=2, default=float))
    if args.record:
        from deeph_jax.io.atomic import write_text_atomic
        from deeph_jax.units import EV_TO_MICROHARTREE

        meta_path = Path(args.model) / "metadata.json"
        meta = json.loads(meta_path.read_text())
        meta.update(test_data=str(Path(args.dataset).resolve().relative_to(REPO)) if Path(args.dataset).resolve()
                    .is_relative_to(REPO) else args.dataset, n_test=len(rows), test_mae_meV=summary["mae_meV"],
                    test_mae_uHa=EV_TO_MICROHARTREE * summary["mae_meV"] / 1e3)
        write_text_atomic(meta_path, json.dumps(meta, indent=2) + "\n")
        print(f"recorded the test MAE in {meta_path}")


if __name__ == "__main__":
    main()
