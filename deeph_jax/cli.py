"""The ``deeph-jax`` command line: one entry point, one sub-command per job.

Every sub-command module exposes ``register(subparsers)``; a user error (:class:`DeephError`)
becomes one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from deeph_jax.errors import report_user_errors

# Modules that add sub-commands, in the order --help lists them. A module that is not
# there yet (a later issue) is skipped.
COMMAND_MODULES = (
    "deeph_jax.io.commands",
    "deeph_jax.dft.commands",
    "deeph_jax.physics.commands",
    "deeph_jax.pipeline.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deeph-jax",
        description=(
            "E(3)-equivariant DFT Hamiltonians in the DeepH format. Units everywhere: eV and Angstrom; "
            "atom indices 0-based. Training and prediction: python train.py / python predict.py."
        ),
    )
    from deeph_jax import __version__

    parser.add_argument("--version", action="version", version=f"deeph-jax {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name):
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from deeph_jax.runtime import enable_compilation_cache

    enable_compilation_cache()
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return report_user_errors(f"deeph-jax {args.command}", lambda: args.func(args))
    except KeyboardInterrupt:
        print(f"deeph-jax {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
