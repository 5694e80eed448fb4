"""Can a network fit a few training cells? The fit error by distance after a short run on them (by hand).

    python bench/diagnose_capacity.py VARIANT [--config configs/hbn-varied.yaml]
        [--dataset datasets/hbn-szv/train-3x3] [--cells 1-4] [--steps 600] [--set key=value ...]

Copies cells ``--cells`` (indices into the dataset's sorted folders) to bench/work/capacity/cells, trains the
config's network on them with the same cells as validation, and prints the run's breakdown (runs/…/breakdown.txt):
the error left on data the network has seen ~300 times. Variants (``--set`` adds to any):

  scratch   the config's network from random parameters
  lmax3     the same with lmax 3 (l = 3 hidden features, channels [32, 16, 8, 4])
  shipped   fine-tuned from models/hbn-szv (lr 2e-3, on-site weight 2), the shipped parameters as start

A model whose error on a few cells it trains on stays high near the bonds lacks expressiveness there, however
much data or time it gets. The run folders are bench/work/capacity/<variant>; the result JSON goes to
bench/results/capacity-<variant>.json.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from deeph_jax.errors import report_user_errors
from deeph_jax.provenance import write_result

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {
    "scratch": [],
    "lmax3": ["model.lmax=3", "model.node_channels=[32,16,8,4]", "model.edge_channels=[32,16,8,4]",
              "model.tp_channels=[16,8,4,2]"],
    "shipped": [f"train.init_from={REPO / 'models' / 'hbn-szv'}", "train.lr=2e-3", "train.onsite_weight=2"],
}


def cell_range(text: str) -> range:
    lo, _, hi = text.partition("-")
    return range(int(lo), int(hi or lo) + 1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("variant", choices=sorted(VARIANTS))
    p.add_argument("--config", default=str(REPO / "configs" / "hbn-varied.yaml"))
    p.add_argument("--dataset", default=str(REPO / "datasets" / "hbn-szv" / "train-3x3"))
    p.add_argument("--cells", default="1-4", help="folder indices, e.g. 1-4 (00000 of the hBN sets is pristine)")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--set", action="append", default=[])
    args = p.parse_args()

    from deeph_jax.train.config import load_config
    from deeph_jax.train.data import list_structures
    from deeph_jax.train.loop import train

    work = REPO / "bench" / "work" / "capacity"
    cells = work / "cells"
    dirs = list_structures(args.dataset)
    chosen = [dirs[i] for i in cell_range(args.cells)]
    shutil.rmtree(cells, ignore_errors=True)
    for d in chosen:  # copies: dataset listing does not follow links
        shutil.copytree(d, cells / d.name)
    meta = Path(args.dataset) / "metadata.json"
    if meta.exists():
        shutil.copy(meta, cells / "metadata.json")
    overrides = [f"data.train={cells}", f"data.val={cells}", f"train.steps={args.steps}",
                 f"train.eval_every={args.steps}", f"train.checkpoint_every={args.steps}", "train.warmup_steps=50",
                 "train.ema_decay=0.99", "train.progress=false", f"name=capacity-{args.variant}",
                 *VARIANTS[args.variant], *args.set]
    config = load_config(args.config, overrides)
    run_dir = work / args.variant
    train(config, run_dir, overwrite=True)
    table = (run_dir / "breakdown.txt").read_text()
    print(table)
    write_result(REPO / "bench" / "results" / f"capacity-{args.variant}.json",
                 {"variant": args.variant, "overrides": overrides, "cells": [str(d) for d in chosen],
                  "steps": args.steps, "breakdown": table.splitlines()})


if __name__ == "__main__":
    raise SystemExit(report_user_errors("diagnose_capacity", main))
