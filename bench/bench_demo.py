"""The README's main job as a new user meets it (run by hand): `deeph-jax demo` in a fresh process
with an empty compilation cache, timed from outside.

    python bench/bench_demo.py [--out runs/bench-demo] [--warm] [--install] [--json bench/results/demo.json]

Prints the demo's own table, then the total wall time and the numbers of its summary.json.
--warm keeps the user's compilation cache (the second and later runs of a user). --install first
times the README's install (`pip install -e ".[test]"` without pip's cache) into a fresh virtual
environment and runs the demo from there, as on a new machine.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from deeph_jax.provenance import write_result

REPO = Path(__file__).resolve().parents[1]


def fresh_install(venv: Path) -> tuple[str, float]:
    """A new venv with the project installed as the README says; (its python, seconds for pip)."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    t0 = time.perf_counter()
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-cache-dir", "-e", ".[test]"], cwd=REPO, check=True)
    return python, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/bench-demo")
    parser.add_argument("--warm", action="store_true", help="keep the compilation cache")
    parser.add_argument("--install", action="store_true", help="time a fresh install first (new venv, no pip cache)")
    parser.add_argument("--json", default="bench/results/demo.json", help="raw results ('' for none)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        python, install_s = sys.executable, None
        if args.install:
            python, install_s = fresh_install(Path(tmp) / "venv")
            print(f"install: {install_s:.0f} s", flush=True)
            if args.json:  # kept even if the demo fails or is stopped
                write_result(args.json, {"install_s": install_s, "demo": "not finished"})
        env = dict(os.environ)
        if not args.warm:
            env["JAX_COMPILATION_CACHE_DIR"] = str(Path(tmp) / "xla-cache")
        t0 = time.perf_counter()
        proc = subprocess.run([python, "-m", "deeph_jax.cli", "demo", "--out", args.out], env=env)
        total = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"demo failed with exit code {proc.returncode}")
    summary = json.loads((Path(args.out) / "summary.json").read_text())
    print(f"\ntotal wall time {total:.0f} s ({total / 60:.1f} min), "
          f"{'warm' if args.warm else 'cold'} compilation cache")
    for stage, row in summary.items():
        print(f"{stage:<8} " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                         for k, v in row.items() if k != "result"))
    if args.json:
        result = {"install_s": install_s, "demo_total_s": total, "compilation_cache": "warm" if args.warm else "cold",
                  "summary": summary}
        print(f"raw results: {write_result(args.json, result)}")


if __name__ == "__main__":
    main()
