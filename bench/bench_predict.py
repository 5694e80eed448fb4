"""Inference at scale: rattled hBN sheets of about 10^3, 10^4, 10^5 atoms (run by hand).

    python bench/bench_predict.py [--model models/hbn-szv] [--sizes 1000 10000 100000] [--chunk-atoms 4000]

Each size runs in its own process (so peak RSS is that size's): prints atoms, edges, chunks,
graph / compile / run seconds, peak RSS (GiB) and the output size on disk, and writes the raw
numbers of each size to bench/results/predict-<atoms>-<date>.json (with the command, the date
and the machine's load). "compile" is the ahead-of-time compilation alone; "run" is every
chunk's run (network, exact S, h5 writes), the first chunk included. Without --model, the hBN
config's network with random parameters is timed (the cost does not depend on the values).
"""

import argparse
import datetime
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
# Time the checkout this script lives in, not whichever deeph_jax is installed (an editable
# install may point at another worktree): a script's sys.path[0] is bench/, not the repository.
sys.path.insert(0, str(REPO))


def one(n_atoms: int, model: str | None, chunk_atoms: int) -> dict:
    sys.path.insert(0, str(REPO / "bench"))
    from bench_graph import hbn_sheet

    from deeph_jax.predict.infer import load_predictor
    from deeph_jax.predict.run import predict_to_folder

    if model:
        predictor = load_predictor(model)
    else:
        predictor = random_hbn_predictor()
    structure = hbn_sheet(n_atoms, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        stats = predict_to_folder(structure, predictor, Path(tmp) / "out", chunk_atoms, progress=False)
        total = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in (Path(tmp) / "out").iterdir())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"atoms": structure.n_atoms, "edges": stats.n_edges, "chunks": stats.n_chunks, "graph_s": stats.graph_s,
            "compile_s": stats.compile_s, "run_s": stats.run_s, "chunk_run_s": stats.chunk_run_s, "total_s": total,
            "us_per_edge": 1e6 * stats.run_s / stats.n_edges, "ms_per_atom": 1e3 * stats.run_s / structure.n_atoms,
            "rss_GiB": rss, "output_MiB": size / 2**20, "overlap": stats.overlap}


def write_result(result: dict, command: list[str], started: datetime.datetime, load_before: tuple) -> Path:
    """bench/results/predict-<atoms>-<date>.json: the raw numbers, the command, the date and the load."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"predict-{result['atoms']}-{started:%Y-%m-%d}.json"
    record = {"command": shlex.join(command), "date": started.isoformat(timespec="seconds"),
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "load_average_before": load_before, "load_average_after": os.getloadavg()},
              "result": result}
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def random_hbn_predictor():
    import jax
    import numpy as np

    from deeph_jax.graph import batch_graphs, build_graph
    from deeph_jax.io import OrbitalBasis
    from deeph_jax.model.config import ModelConfig
    from deeph_jax.model.network import HamiltonianNet
    from deeph_jax.predict.infer import Predictor
    from deeph_jax.train.config import load_config
    from bench_graph import hbn_sheet

    config = ModelConfig.from_dict(load_config(REPO / "configs" / "hbn.yaml")["model"])
    basis = OrbitalBasis({"B": (0, 1), "N": (0, 1)})
    g = build_graph(hbn_sheet(8), config.cutoff)
    params = HamiltonianNet(config, basis).init(jax.random.PRNGKey(0), batch_graphs([g], ["B", "N"], dtype=np.float32))
    return Predictor(config, basis, params, {"basis": "gth-szv", "valence_electrons": {"B": 3, "N": 5}})


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model")
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    p.add_argument("--chunk-atoms", type=int, default=4000)
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.model, args.chunk_atoms)))
        return
    print(f"model {args.model or 'configs/hbn.yaml (random parameters)'}, basis gth-szv (B, N: 1s1p = 4 orbitals), "
          f"chunks of {args.chunk_atoms} centre atoms")
    print(f"{'atoms':>7} {'edges':>9} {'chunks':>6} {'graph s':>8} {'compile s':>9} {'run s':>8} "
          f"{'us/edge':>8} {'ms/atom':>8} {'RSS GiB':>8} {'out MiB':>8}")
    for n in args.sizes:
        cmd = [sys.executable, __file__, "--one", str(n), "--chunk-atoms", str(args.chunk_atoms)]
        if args.model:
            cmd += ["--model", args.model]
        started, load_before = datetime.datetime.now(), os.getloadavg()
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            print(out.stderr[-2000:])
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        user_command = ["python", "bench/bench_predict.py", "--sizes", str(n), "--chunk-atoms", str(args.chunk_atoms)]
        write_result(r, user_command + (["--model", args.model] if args.model else []), started, load_before)
        print(f"{r['atoms']:>7} {r['edges']:>9} {r['chunks']:>6} {r['graph_s']:>8.2f} {r['compile_s']:>9.2f} "
              f"{r['run_s']:>8.1f} {1e6 * r['run_s'] / r['edges']:>8.1f} {1e3 * r['run_s'] / r['atoms']:>8.2f} "
              f"{r['rss_GiB']:>8.2f} {r['output_MiB']:>8.1f}",
              flush=True)
    print(f"S: {r['overlap']}")


if __name__ == "__main__":
    main()
