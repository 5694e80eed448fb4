"""Training accuracy benchmark (run by hand): trains per a config, reports test MAE and throughput.

    python bench/bench_train.py [--config configs/water.yaml] [--set key=value ...] [--ship] [--overwrite]

configs/water.yaml (about 60 minutes on 2 CPU cores): 500 training structures, 50 validation,
test set of 100 from another seed. configs/hbn.yaml: the 8-atom hBN cells, tested on the
32-atom cells. Prints test MAE in meV and micro-Hartree, wall time and throughput
(structures/s); with --ship copies the inference bundle to models/<config name>/.
"""

import argparse
import csv
import shutil
import sys
import time
from pathlib import Path

from deeph_jax.errors import report_user_errors
from deeph_jax.train.config import load_config
from deeph_jax.train.loop import train

REPO = Path(__file__).resolve().parents[1]


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", default=str(REPO / "configs" / "water.yaml"))
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--ship", action="store_true", help="copy the bundle to models/<name>/")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in runs/<name>/")
    args = p.parse_args()
    sys.exit(report_user_errors("bench_train.py", lambda: run(args)))


def run(args) -> None:
    config = load_config(args.config, args.set)
    run_dir = REPO / "runs" / config["name"]
    t0 = time.perf_counter()
    result = train(config, run_dir, overwrite=args.overwrite)
    wall = time.perf_counter() - t0
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    steps = int(rows[-1]["step"])
    train_s = float(rows[-1]["wall_time_s"])
    B = config["train"]["batch_size"]
    print(f"steps {steps}, batch {B}, training wall time {train_s / 60:.1f} min (total {wall / 60:.1f} min), "
          f"throughput {steps * B / train_s:.1f} structures/s (evaluation included)")
    if "test_mae_eV" in result:
        print(f"test MAE {1e3 * result['test_mae_eV']:.3f} meV = {1e6 * result['test_mae_eV'] / 27.211386245988:.1f} "
              f"micro-Hartree over {result['n_test']} structures")
    if args.ship:
        dst = REPO / "models" / config["name"]
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(run_dir / "model", dst)
        print(f"shipped {dst}")


if __name__ == "__main__":
    main()
