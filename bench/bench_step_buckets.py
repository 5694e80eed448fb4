"""Cost of one training step against its padded size (run by hand): power-of-two vs quarter-octave buckets.

    python bench/bench_step_buckets.py [--config configs/hbn-varied.yaml] [--dataset datasets/hbn-szv/train-3x3]
                                       [--steps 10] [--json bench/results/step_buckets.json]

Builds the batch of the config's training step from the first ``batch_size`` structures of the dataset, pads it
once to the power-of-two bucket (``padded_sizes(..., 1)``) and once to the quarter-octave bucket that training
steps use (``STEP_BUCKETS_PER_OCTAVE``), and times the jitted step (loss, gradients, optimizer update) after
compilation. Both paddings give the same loss: the padding is masked.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from deeph_jax.errors import report_user_errors
from deeph_jax.provenance import write_result

REPO = Path(__file__).resolve().parents[1]


def time_steps(step, state, batch, n: int) -> tuple[float, float, object]:
    """(compile-and-first-step seconds, median seconds per later step, loss of the first step)."""
    import jax

    t0 = time.perf_counter()
    state, metrics = step(state, batch)
    loss = float(jax.block_until_ready(metrics["loss"]))
    first = time.perf_counter() - t0
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        state, metrics = step(state, batch)
        jax.block_until_ready(metrics["loss"])
        times.append(time.perf_counter() - t0)
    return first, float(np.median(times)), loss


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(REPO / "configs" / "hbn-varied.yaml"))
    p.add_argument("--dataset", default=str(REPO / "datasets" / "hbn-szv" / "train-3x3"))
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--json", default=None)
    args = p.parse_args()

    import jax

    from deeph_jax.graph import padded_sizes
    from deeph_jax.model import HamiltonianNet, build_layout, model_elements
    from deeph_jax.model.config import ModelConfig
    from deeph_jax.train.config import TrainConfig, load_config
    from deeph_jax.train.data import SampleCache, dataset_basis, list_structures, shard_batches, stack_batches
    from deeph_jax.train.loop import STEP_BUCKETS_PER_OCTAVE
    from deeph_jax.train.step import init_state, make_optimizer, make_train_step, to_device_batch

    config = load_config(args.config)
    mc, tc = ModelConfig.from_dict(config["model"]), TrainConfig.from_dict(config["train"])
    dirs = list_structures(args.dataset)[: tc.batch_size]
    basis = dataset_basis(dirs)
    cache = SampleCache(dirs, basis, mc.cutoff, mc.long_range_alpha, mc.spin, mc.long_range_charges)
    samples = [cache[i] for i in range(len(dirs))]
    elements = model_elements(basis)
    n_nodes = sum(s.graph.n_nodes for s in samples)
    n_edges = sum(s.graph.n_edges for s in samples)
    model = HamiltonianNet(mc, basis)
    tx = make_optimizer(tc)
    rows = []
    for name, per_octave in (("power of two", 1), ("quarter octave", STEP_BUCKETS_PER_OCTAVE)):
        sizes = padded_sizes(n_nodes, n_edges, len(samples), per_octave)
        batch = to_device_batch(stack_batches(shard_batches(samples, 1, elements, np.dtype(tc.precision), sizes=sizes)))
        state = init_state(model, tx, jax.random.PRNGKey(0), jax.tree_util.tree_map(lambda x: x[0], batch))
        step = make_train_step(model, build_layout(basis), tx, tc)
        first, per_step, loss = time_steps(step, state, batch, args.steps)
        rows.append({"buckets": name, "padded_nodes": sizes[0], "padded_edges": sizes[1], "edges": n_edges,
                     "compile_and_first_step_s": round(first, 2), "step_s": round(per_step, 4), "loss": loss})
        print(f"{name:>15}: {n_edges} edges padded to {sizes[1]:>6}; compile + first step {first:6.1f} s; "
              f"step {per_step:.3f} s (median of {args.steps}); loss {loss:.6g}")
    print(f"speed-up of a step: {rows[0]['step_s'] / rows[1]['step_s']:.2f}x")
    if args.json:
        write_result(args.json, {"config": args.config, "dataset": args.dataset, "batch_size": tc.batch_size,
                                 "rows": rows})


if __name__ == "__main__":
    raise SystemExit(report_user_errors("bench_step_buckets", main))
