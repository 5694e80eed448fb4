"""The README's main job as a new user meets it (run by hand): `deeph-jax demo` in a fresh process
with an empty compilation cache, timed from outside.

    python bench/bench_demo.py [--out runs/bench-demo] [--warm]

Prints the demo's own table, then the total wall time and the numbers of its summary.json.
--warm keeps the user's compilation cache (the second and later runs of a user).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/bench-demo")
    parser.add_argument("--warm", action="store_true", help="keep the compilation cache")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ)
        if not args.warm:
            env["JAX_COMPILATION_CACHE_DIR"] = cache
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "deeph_jax.cli", "demo", "--out", args.out], env=env)
        total = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"demo failed with exit code {proc.returncode}")
    summary = json.loads((Path(args.out) / "summary.json").read_text())
    print(f"\ntotal wall time {total:.0f} s ({total / 60:.1f} min), "
          f"{'warm' if args.warm else 'cold'} compilation cache")
    for stage, row in summary.items():
        print(f"{stage:<8} " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                         for k, v in row.items() if k != "result"))


if __name__ == "__main__":
    main()
