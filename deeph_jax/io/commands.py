"""Sub-commands ``inspect`` and ``convert``."""

from __future__ import annotations

import argparse


def _inspect(args) -> int:
    from deeph_jax.io.inspect import summarize_dataset

    print("\n".join(summarize_dataset(args.dir, progress=not args.quiet).lines()))
    return 0


def _convert_legacy(args) -> int:
    from deeph_jax.io.legacy import convert_legacy

    written = convert_legacy(args.in_dir, args.out_dir)
    print(f"converted {len(written)} structure(s) to the current DeepH format under {args.out_dir}")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "inspect",
        help="summarize a DeepH dataset (structures, elements, basis, blocks, value ranges)",
        description=(
            "Summarize a DeepH dataset: number of structures, elements and each one's basis (the l of each "
            "radial shell), block counts, H range in eV, S range, spin, Fermi energies in eV, and how far the "
            "stored blocks are from Hermitian. DIR is a dataset folder (sub-folders with POSCAR) or one structure."
        ),
    )
    p.add_argument("dir", metavar="DIR", help="dataset folder (e.g. dft/) or one structure folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_inspect)

    p = sub.add_parser(
        "convert",
        help="convert other formats to the current DeepH format",
        description="Convert data to the current DeepH format (POSCAR, info.json, overlap.h5, hamiltonian.h5).",
    )
    conv = p.add_subparsers(dest="format", metavar="FORMAT", required=True)
    q = conv.add_parser(
        "legacy",
        help="legacy DeepH-pack / DeepH-E3 folders (hamiltonians.h5, lat.dat, ...) -> current format",
        description=(
            "Convert legacy DeepH-pack data (hamiltonians.h5/overlaps.h5 keyed '[Rx, Ry, Rz, i, j]' with 1-based "
            "atoms and OpenMX orbital order; lat.dat, site_positions.dat, element.dat, orbital_types.dat, "
            "info.json) to the current format: 0-based atoms, m = -l..l orbital order, H in eV (unchanged), "
            "positions in Angstrom. Atom order is kept. When IN_DIR is one structure, OUT_DIR becomes that "
            "structure's folder; when it holds several, OUT_DIR gets one sub-folder each. Files are written "
            "atomically."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.add_argument("in_dir", metavar="IN_DIR", help="a legacy structure folder, or a folder of them")
    q.add_argument("out_dir", metavar="OUT_DIR", help="where to write the current-format folder(s)")
    q.set_defaults(func=_convert_legacy)
