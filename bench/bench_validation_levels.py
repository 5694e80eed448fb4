"""A bundle's numbers on the measure training validates with (run by hand): H MAE and the level errors of
:mod:`deeph_jax.train.band_metrics`, per structure, so that a shipped model can be set beside a run's
metrics.csv (``val_mae_meV``, ``val_band_meV``, ``val_gap_meV``).

    python bench/bench_validation_levels.py [--model models/hbn-szv] [--dataset datasets/hbn-szv/large-4x4]
        [--window 3.0] [--json bench/results/validation_levels_<name>.json]

The blocks come from the training code path (the samples' graphs, DFT overlap in the long-range shift), the
levels from predicted and DFT H with the DFT S at four k-points (Gamma alone for molecules). For the numbers
users judge a crystal model by (bands along the lattice's path, gaps on a mesh, polarization), see
bench_hbn_generalization.py.
"""

import argparse
from pathlib import Path

import numpy as np

from deeph_jax.errors import report_user_errors

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(REPO / "models" / "hbn-szv"))
    p.add_argument("--dataset", default=str(REPO / "datasets" / "hbn-szv" / "large-4x4"))
    p.add_argument("--window", type=float, default=3.0, help="eV beyond the gap's edges (as train.val_band_window_eV)")
    p.add_argument("--json", default="")
    args = p.parse_args()

    from deeph_jax.model import HamiltonianNet, model_elements
    from deeph_jax.predict.bundle import load_bundle
    from deeph_jax.train.band_metrics import electron_count, level_errors, level_summary
    from deeph_jax.train.data import SampleCache, list_structures
    from deeph_jax.train.evaluate import breakdown, predict_samples
    from deeph_jax.train.step import make_predict

    config, basis, params, _ = load_bundle(args.model)
    dirs = list_structures(args.dataset)
    cache = SampleCache(dirs, basis, config.cutoff, config.long_range_alpha, config.spin, config.long_range_charges)
    samples = [cache[i] for i in range(len(dirs))]
    preds = predict_samples(make_predict(HamiltonianNet(config, basis)), params, samples, model_elements(basis),
                            np.float32)
    rows, levels = [], []
    for smp, pred, d in zip(samples, preds, dirs):
        bd = breakdown([smp], [pred], basis, config.spin)
        row = {"structure": d.name, "h_mae_meV": 1e3 * bd.mae_h_eV, "h_mae_onsite_meV": 1e3 * bd.mae_h_onsite_eV}
        n = electron_count(d)
        if n is not None:
            lv = level_errors(smp, pred[0], basis, n, config.spin)
            levels.append(lv)
            row.update(band_mae_meV=1e3 * lv.band_mae_eV(args.window), gap_error_meV=1e3 * lv.gap_error_eV())
        rows.append(row)
        print(f"{d.name}: H MAE {row['h_mae_meV']:.2f} meV (on-site {row['h_mae_onsite_meV']:.2f})"
              + (f"; levels {row['band_mae_meV']:.1f} meV, gap error {row['gap_error_meV']:+.1f} meV" if n else ""))
    overall = breakdown(samples, preds, basis, config.spin)
    levels = level_summary(levels, args.window)
    summary = {"h_mae_meV": 1e3 * overall.mae_h_eV, **(levels or {})}
    text = f"; val_band_meV {levels['band_mae_meV']:.1f}, val_gap_meV {levels['gap_error_meV']:.1f}" if levels else ""
    print(f"all: H MAE {summary['h_mae_meV']:.2f} meV{text}")
    if args.json:
        from deeph_jax.provenance import write_result

        result = {"model": args.model, "dataset": args.dataset, "rows": rows, "summary": summary}
        print(f"raw results: {write_result(args.json, result)}")


if __name__ == "__main__":
    raise SystemExit(report_user_errors("bench_validation_levels", main))
