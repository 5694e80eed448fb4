"""A shipped model's error on a test set, with the breakdown users read (run by hand).

    python bench/bench_test_set.py [--model models/water-pbe-def2svp] [--dataset datasets/water-pbe-def2svp-test]
                                   [--json bench/results/test_set-water.json]

Evaluates the bundle's parameters on every structure of the dataset with the training code's own
graphs and targets (the same entries the validation MAE counts) and prints the H MAE (meV and
micro-Hartree), on-site / off-site apart, and the error by element pair, shell pair and distance.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from deeph_jax.errors import report_user_errors
from deeph_jax.provenance import write_result

REPO = Path(__file__).resolve().parents[1]


def evaluate(model_dir: Path, dataset: Path, keep_predictions: bool = False):
    """H MAE of a bundle on a dataset, on-site and off-site apart (the result dict). With ``keep_predictions``
    also the samples and their predicted padded (h, s) edge blocks: (result, samples, predictions)."""
    import jax

    from deeph_jax.model import HamiltonianNet, model_elements
    from deeph_jax.predict.bundle import load_bundle
    from deeph_jax.train.data import SampleCache, list_structures
    from deeph_jax.train.evaluate import breakdown, predict_samples
    from deeph_jax.train.step import make_predict
    from deeph_jax.units import EV_TO_MICROHARTREE

    config, basis, params, metadata = load_bundle(model_dir)
    dirs = list_structures(dataset)
    cache = SampleCache(dirs, basis, config.cutoff, config.long_range_alpha, config.spin, config.long_range_charges)
    samples = [cache[i] for i in range(len(cache))]
    model = HamiltonianNet(config, basis)
    t0 = time.perf_counter()
    preds = predict_samples(make_predict(model), params, samples, model_elements(basis), np.float32)
    seconds = time.perf_counter() - t0
    bd = breakdown(samples, preds, basis, config.spin)
    print(bd.table_text())
    result = {"model": str(model_dir), "dataset": str(dataset), "structures": len(samples),
              "h_entries": int(bd.abs_err_h.size), "mae_h_meV": 1e3 * bd.mae_h_eV,
              "mae_h_uHa": EV_TO_MICROHARTREE * bd.mae_h_eV, "mae_h_onsite_meV": 1e3 * bd.mae_h_onsite_eV,
              "mae_h_offsite_meV": 1e3 * bd.mae_h_offsite_eV, "mae_s": bd.mae_s, "seconds": seconds,
              "jax_backend": jax.default_backend(),
              "breakdown": [{"group": g, "label": l, "entries": n, "mae_meV": m, "mae_uHa": u}
                            for g, l, n, m, u in bd.table()]}
    print(f"{len(samples)} structures, {result['h_entries']} H entries: MAE {result['mae_h_meV']:.3f} meV = "
          f"{result['mae_h_uHa']:.1f} uHa (on-site {result['mae_h_onsite_meV']:.3f}, off-site "
          f"{result['mae_h_offsite_meV']:.3f} meV); {seconds:.1f} s (compilation included)")
    return (result, samples, preds) if keep_predictions else result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(REPO / "models" / "water-pbe-def2svp"))
    ap.add_argument("--dataset", default=str(REPO / "datasets" / "water-pbe-def2svp-test"))
    ap.add_argument("--json", default="", help="raw results (e.g. bench/results/test_set-water.json)")
    args = ap.parse_args()
    def run():
        result = evaluate(Path(args.model), Path(args.dataset))
        if args.json:
            print(f"raw results: {write_result(args.json, result)}")

    return report_user_errors("bench_test_set", run)


if __name__ == "__main__":
    raise SystemExit(main())
