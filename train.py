"""Train a Hamiltonian network on DeepH datasets.

    python train.py --config configs/demo.yaml [--set train.lr=1e-3 --set model.num_layers=2]
    python train.py --resume runs/demo            # continue exactly where it stopped
    python train.py --config configs/demo.yaml --overwrite   # replace the run in runs/demo

A run folder holds one run: a new run into a folder that holds one is refused unless
--overwrite (which clears it first) or --resume (which continues it).

Writes runs/<name>/ (resolved config, metrics.csv, checkpoints, plots, error breakdown,
inference bundle in model/). Energies in eV, lengths in Angstrom.
"""

import argparse
import sys
from pathlib import Path

from deeph_jax.errors import DeephError, report_user_errors


def _train(args, parser) -> int:
    from deeph_jax.train.config import load_config
    from deeph_jax.train.loop import train

    if args.resume:
        if args.overwrite:
            parser.error("--resume continues a run; --overwrite starts a new one: choose one")
        run_dir = Path(args.resume)
        if not (run_dir / "config.yaml").is_file():
            raise DeephError("not a run folder (no config.yaml)", run_dir)
        config = load_config(run_dir / "config.yaml", args.set)
        train(config, run_dir, resume=True)
    else:
        if not args.config:
            parser.error("--config or --resume is required")
        config = load_config(args.config, args.set)
        train(config, args.run_dir, overwrite=args.overwrite)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML config (see configs/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. train.lr=1e-3 (YAML syntax); repeatable")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    p.add_argument("--run-dir", help="run folder (default runs/<name>)")
    p.add_argument("--overwrite", action="store_true",
                   help="clear the run folder first when it holds an earlier run (else such a folder is refused)")
    args = p.parse_args(argv)
    from deeph_jax.runtime import enable_compilation_cache

    enable_compilation_cache()
    return report_user_errors("train.py", lambda: _train(args, p))


if __name__ == "__main__":
    sys.exit(main())
