"""Cost of HamiltonianNet on CPU: parameters, forward + backward per batch, forward per edge.

    python bench/bench_model.py [--preset default|larger] [--repeat 5] [--json bench/results/model.json]

Graphs: a training batch of 8 shipped PySCF water molecules (cutoff 6 A), a C/H/O molecule
(ethanol, 9 atoms, cutoff 5 A) and the MoTe2 cell (cutoff 7 A, periodic images) from
../shared/data/deeph-dock. Times exclude compilation (reported apart).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import flax.linen as nn

from deeph_jax.graph import batch_graphs, build_graph
from deeph_jax.io.deeph import read_deeph_dir
from deeph_jax.io.structures import from_ase
from deeph_jax.model import PRESETS, HamiltonianNet, count_parameters, model_elements, summary
from deeph_jax.model.testing import shared_dir
from deeph_jax.provenance import write_result

DATA = shared_dir() / "data" / "deeph-dock"
REPO = Path(__file__).resolve().parents[1]
CASES = {
    "H2O x 8 (a training batch)": (REPO / "datasets/water-pbe-def2svp/00000", 6.0),
    "C2H6O (ethanol)": (DATA / "analyze/dataset/inputs.clean/dft/25000", 5.0),
    "MoTe2": (DATA / "compute/eigen/eigen.clean/MoTe2", 7.0),
    "MoTe2 4x4x1 supercell": (DATA / "compute/eigen/eigen.clean/MoTe2", 7.0),
}


def timed(f, *args, repeat: int) -> tuple[float, float]:
    """(first call incl. compile, best of ``repeat`` later calls), seconds."""
    t = time.perf_counter()
    jax.block_until_ready(f(*args))
    first = time.perf_counter() - t
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        jax.block_until_ready(f(*args))
        best = min(best, time.perf_counter() - t)
    return first, best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="default", choices=sorted(PRESETS))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", default="bench/results/model.json", help="raw results ('' for none)")
    args = ap.parse_args()
    rows = []
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {jax.device_count()} device(s)")
    for name in ("default", "larger"):
        data = read_deeph_dir(CASES["MoTe2"][0], hamiltonian=None, overlap=False)
        g = build_graph(data.structure, 7.0)
        b = jax.tree_util.tree_map(jnp.asarray, batch_graphs([g], model_elements(data.basis)))
        m = HamiltonianNet(PRESETS[name](), data.basis)
        shapes = jax.eval_shape(lambda x: nn.Module.init(m, jax.random.PRNGKey(0), x), b)
        print(f"[{name}] {count_parameters(shapes):,} parameters (basis Mo/Te)")
        rows.append({"preset": name, "parameters_MoTe_basis": count_parameters(shapes)})
    config = PRESETS[args.preset]()
    for case, (path, cutoff) in CASES.items():
        data = read_deeph_dir(path, hamiltonian=None, overlap=False)
        structure = data.structure
        if "supercell" in case:  # enough edges that the cost per edge is not per-call overhead
            structure = from_ase(structure.to_ase().repeat((4, 4, 1)))
        graph = build_graph(structure, cutoff)
        copies = 8 if "x 8" in case else 1
        batch = jax.tree_util.tree_map(jnp.asarray, batch_graphs([graph] * copies, model_elements(data.basis)))
        model = HamiltonianNet(config.replace(cutoff=cutoff + 1.0), data.basis)
        params = model.init(jax.random.PRNGKey(0), batch)
        print(summary(model.config, data.basis, params))
        forward = jax.jit(model.apply)

        @jax.jit
        def train_like(p, b):
            def loss(p):
                h, s = model.apply(p, b)
                return jnp.sum(h ** 2) + jnp.sum(s ** 2)
            return jax.value_and_grad(loss)(p)

        c_f, t_f = timed(forward, params, batch, repeat=args.repeat)
        c_b, t_b = timed(train_like, params, batch, repeat=args.repeat)
        E, Ep = graph.n_edges * copies, batch.n_edges
        print(f"{case}: {graph.n_nodes * copies} atoms, {E} edges ({Ep} padded); forward {t_f * 1e3:.1f} ms "
              f"= {t_f / E * 1e6:.0f} us/edge ({t_f / Ep * 1e6:.0f} us/padded edge); forward+backward "
              f"{t_b * 1e3:.1f} ms/batch; first calls (compile) {c_f:.1f} s, {c_b:.1f} s")
        rows.append({"case": case, "preset": args.preset, "atoms": graph.n_nodes * copies, "edges": E,
                     "padded_edges": Ep, "forward_ms": t_f * 1e3, "forward_us_per_edge": t_f / E * 1e6,
                     "forward_backward_ms": t_b * 1e3, "compile_forward_s": c_f, "compile_backward_s": c_b})
    if args.json:
        print(f"raw results: {write_result(args.json, rows)}")


if __name__ == "__main__":
    main()
