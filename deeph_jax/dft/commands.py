"""``deeph-jax generate molecules|crystal``: the command-line front of the DFT data generators.

The main CLI calls :func:`register` with its sub-parsers object. Run alone as
``python -m deeph_jax.dft.commands generate ...`` for the same commands.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from deeph_jax.errors import DeephError


def _triple(text: str) -> tuple[int, int, int]:
    try:
        parts = [int(x) for x in text.replace("x", ",").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three integers like 2,2,1, got {text!r}") from None
    if len(parts) != 3 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected three positive integers like 2,2,1, got {text!r}")
    return tuple(parts)


def _interlayer(text: str) -> tuple[float, float]:
    from deeph_jax.dft.bilayers import interlayer_range

    try:
        return interlayer_range(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a distance like 3.35 or a range like 3.2,3.7 (Angstrom), "
                                         f"got {text!r}") from None


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="dataset folder; one sub-folder per structure (00000, 00001, ...) "
                   "plus metadata.json. An existing folder is completed (resume), never overwritten.")
    p.add_argument("--n", type=int, default=None, help="number of structures (indices 0..n-1)")
    p.add_argument("--seed", type=int, default=0, help="random seed; structure i's geometry comes from a RNG seeded "
                   "by (seed, i), so a resumed run makes the same geometry for the same index (default 0)")
    p.add_argument("--workers", type=int, default=1, help="processes running DFT at once (default 1)")
    p.add_argument("--threads", type=int, default=None, help="OpenMP threads per worker (default: PySCF's choice "
                   "with 1 worker, 1 thread each with several)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``generate`` (with ``molecules`` and ``crystal``) to an argparse sub-parsers object."""
    gen = subparsers.add_parser(
        "generate", help="generate DFT training data (PySCF) in DeepH format",
        description="Generate DFT Hamiltonians and overlaps with PySCF in the DeepH format "
                    "(H in eV, lengths in Angstrom, real spherical orbitals m=-l..l).",
    )
    gsub = gen.add_subparsers(dest="generate_kind", metavar="{molecules,crystal}")
    gsub.required = True

    m = gsub.add_parser(
        "molecules", help="molecular Kohn-Sham H and S (PySCF) for sampled or given geometries",
        description="Molecular DFT (PySCF). H is the converged Fock matrix in eV, S the AO "
                    "overlap; every atom pair with R=0. Geometries: --name water (O-H bonds uniform in "
                    "[0.85, 1.15] A, H-O-H angle uniform in [95, 120] degrees, random rotation, O at the centre "
                    "of a cubic box; restricted Kohn-Sham), --name halides (HCl, HBr, Cl2, Br2, BrCl, CH3Cl, "
                    "CH3Br, CH2Cl2, CH2Br2 cycled by index, randomly rotated and rattled; spin-orbit coupling from "
                    "two-component X2C GKS, spinful complex H), --name radicals (O2, NH, CH2, HCO, NH2, CH3, NO2, "
                    "HO2; collinear UKS, H-up and H-down stored as spinful blocks [[up, 0], [0, down]], Mulliken "
                    "moments in info.json) or --file (any ase-readable file; every frame, optionally rattled).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    src = m.add_mutually_exclusive_group()
    src.add_argument("--name", default=None, choices=["water", "halides", "radicals"],
                     help="named geometry distribution (default: water)")
    src.add_argument("--file", default=None, help="molecule file (xyz, sdf, extxyz trajectory, ...: anything ase reads)")
    m.add_argument("--rattle", type=float, default=None, help="Gaussian displacement sigma in Angstrom per Cartesian "
                   "coordinate, for --file geometries (default 0: every frame as is, then --n defaults to the frame "
                   "count) and --name halides|radicals (default 0.06); water ignores it")
    spin = m.add_mutually_exclusive_group()
    spin.add_argument("--soc", action="store_true", help="spin-orbit coupling: GKS with one-electron X2C "
                      "(closed shells); spinful complex H, spinless S (default for --name halides)")
    spin.add_argument("--spin-polarized", action="store_true", help="collinear spin: UKS; H-up and H-down as "
                      "spinful blocks [[up, 0], [0, down]] (default for --name radicals)")
    spin.add_argument("--restricted", action="store_true", help="restricted Kohn-Sham, spinless H (default for "
                      "--name water and --file)")
    m.add_argument("--unpaired", type=int, default=None, help="with --spin-polarized: n_alpha - n_beta (default: "
                   "the radicals table, or 0/1 by electron-count parity); negative puts the excess in beta")
    m.add_argument("--box", type=float, default=30.0, help="side of the cubic box written to POSCAR, Angstrom")
    m.add_argument("--basis", default="def2-SVP", help="Gaussian basis set (PySCF name)")
    m.add_argument("--xc", default="PBE", help="exchange-correlation functional (PySCF name; HF for Hartree-Fock)")
    m.add_argument("--conv-tol", type=float, default=1e-10, help="SCF energy convergence threshold, Hartree")
    m.add_argument("--grid-level", type=int, default=None, help="DFT integration grid level 0-9 (default: PySCF's, 3)")
    m.add_argument("--density-fit", action="store_true", help="use density fitting (default: exact integrals)")
    m.add_argument("--auxbasis", default=None, help="auxiliary basis for --density-fit (default: PySCF's choice)")
    m.add_argument("--charge", type=int, default=0, help="molecular charge")
    m.add_argument("--max-cycle", type=int, default=100, help="SCF iterations before the damped retry")
    _common(m)
    m.set_defaults(func=run_molecules)

    c = gsub.add_parser(
        "crystal", help="periodic Kohn-Sham H(R) and S(R) (pyscf.pbc) on rattled supercells",
        description="Periodic DFT (pyscf.pbc, KRKS, multigrid) on rattled supercells of a named crystal or a "
                    "structure file. SCF on a modest k-mesh; then the Fock matrix from the converged density on a "
                    "dense Gamma-centred mesh whose Born-von Karman supercell is >= --bvk-min Angstrom, and an "
                    "inverse Bloch transform with Wigner-Seitz assignment to H(R) (eV) and S(R); every block "
                    "(i, j, R) with |pos_j + R.cell - pos_i| <= --cutoff Angstrom is stored.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    src = c.add_mutually_exclusive_group()
    src.add_argument("--name", default=None,
                     choices=["hbn", "graphene", "diamond", "zgnr", "bilayer-graphene", "twisted-bilayer"],
                     help="named crystal (default: hbn); hbn and graphene are 2D sheets in a cell of height --vacuum; "
                          "zgnr: H-terminated zigzag graphene nanoribbon of --width chains (2 W C + 2 H per cell), "
                          "collinear KUKS with magnetic edges (--magnetic), H-up and H-down as spinful blocks; "
                          "bilayer-graphene: --supercell of the 4-atom bilayer, top layer shifted in-plane uniformly "
                          "over the primitive cell (AA, AB, SP and between), interlayer distance uniform in "
                          "--interlayer; twisted-bilayer: the (m, m+1) commensurate twisted cell of --twist-m "
                          "(1: 21.79 degrees, 28 atoms; 2: 13.17 degrees, 76 atoms); both in a 15 A high cell")
    src.add_argument("--file", default=None, help="unit cell file (POSCAR, CIF, ...: anything ase reads)")
    c.add_argument("--width", type=int, default=None, help="zgnr: number of zigzag carbon chains across the ribbon")
    c.add_argument("--magnetic", default="afm", choices=["afm", "fm", "alternate"], help="zgnr: edge moments of the "
                   "initial guess, antiparallel (afm, the ground state) or parallel (fm); alternate: even index afm, "
                   "odd fm. The converged state is recorded in info.json (magnetic_state)")
    c.add_argument("--supercell", type=_triple, default=None, help="supercell repetitions, e.g. 2,2,1 (8 atoms "
                   "of hBN, 16 of bilayer-graphene) or 4,4,1 (32 atoms of hBN) (default 2,2,1; twisted-bilayer and "
                   "zgnr: 1,1,1)")
    c.add_argument("--twist-m", type=int, default=None, help="twisted-bilayer: the m of the (m, m+1) commensurate "
                   "cell (4 (3 m^2 + 3 m + 1) atoms)")
    c.add_argument("--interlayer", type=_interlayer, default=None, help="bilayers: interlayer distance in Angstrom, "
                   "one value or a range LOW,HIGH drawn uniformly per structure (default 3.2,3.7 for "
                   "bilayer-graphene, 3.35 for twisted-bilayer)")
    c.add_argument("--rattle", type=float, default=None, help="Gaussian displacement sigma in Angstrom per Cartesian "
                   "coordinate (0: the ideal supercell; default 0.1, zgnr 0.05, twisted-bilayer 0)")
    c.add_argument("--rattle-max", type=float, default=None, help="draw each structure's sigma uniformly in "
                   "[--rattle, --rattle-max] Angstrom (varied rattle)")
    c.add_argument("--strain", type=float, default=0.0, help="random symmetric strain in the periodic plane(s), "
                   "components uniform in [-STRAIN, STRAIN] (e.g. 0.02 for +-2 %%)")
    c.add_argument("--pristine", type=int, default=0, help="the first N structures are not rattled (strain still "
                   "drawn); needs --rattle-max or --strain, except for zgnr")
    c.add_argument("--vacuum", type=float, default=None, help="cell height c in Angstrom for named 2D sheets (one value "
                   "per dataset: the energy zero depends on it; default 12, bilayers 15); zgnr: the cell height along z "
                   "and the vacuum gap between ribbon images along y (default 10)")
    c.add_argument("--basis", default="gth-szv", help="Gaussian basis (PySCF name)")
    c.add_argument("--pseudo", default="gth-pbe", help="pseudopotential (PySCF name)")
    c.add_argument("--xc", default="PBE", help="exchange-correlation functional (LDA/GGA with multigrid)")
    c.add_argument("--kmesh", type=_triple, default=None, help="SCF k-mesh (default: ceil(--kspacing-length / |a_i|) "
                   "per periodic direction)")
    c.add_argument("--kspacing-length", type=float, default=10.0, help="default SCF mesh: k-points per direction "
                   "= ceil(this length in Angstrom / |a_i|)")
    c.add_argument("--bvk-min", type=float, default=20.0, help="the dense (Fock) mesh makes a Born-von Karman "
                   "supercell at least this long in Angstrom along each periodic direction")
    c.add_argument("--dense-kmesh", type=_triple, default=None, help="override the dense mesh")
    c.add_argument("--cutoff", type=float, default=10.0, help="block cutoff radius in Angstrom (10 A: hBN gth-szv bands to ~1 meV; 8 A: up to 18 meV in the highest empty bands)")
    c.add_argument("--smearing", type=float, default=None, help="Fermi-Dirac smearing width in eV (default: 0.1 for "
                   "graphene, its bilayers and zgnr, none otherwise)")
    c.add_argument("--conv-tol", type=float, default=1e-9, help="SCF energy convergence threshold, Hartree per cell")
    c.add_argument("--no-multigrid", action="store_true", help="use PySCF's FFTDF instead of multigrid")
    c.add_argument("--max-cycle", type=int, default=100, help="SCF iterations before the damped retry")
    _common(c)
    c.set_defaults(func=run_crystal)
    return gen


def _threads(args) -> int | None:
    if args.threads:
        return args.threads
    return 1 if args.workers > 1 else None


def run_molecules(args) -> int:
    from deeph_jax.dft.molecules import MoleculeSettings, MoleculeSource, generate_molecules

    from deeph_jax.dft.spin import DEFAULT_RATTLE, NAMED_SPIN

    name = None if args.file else (args.name or "water")
    chosen = "soc" if args.soc else "collinear" if args.spin_polarized else "restricted" if args.restricted else None
    spin = chosen or NAMED_SPIN.get(name, "restricted")
    if name in NAMED_SPIN and spin != NAMED_SPIN[name]:
        raise DeephError(f"--name {name} is generated with {NAMED_SPIN[name]} spin; drop the conflicting spin option")
    if args.unpaired is not None and spin != "collinear":
        raise DeephError("--unpaired needs --spin-polarized (collinear UKS)")
    if args.rattle is not None and args.rattle < 0:
        raise DeephError(f"--rattle {args.rattle}: need a sigma >= 0 (Angstrom)")
    rattle = args.rattle if args.rattle is not None else (DEFAULT_RATTLE if name in NAMED_SPIN else 0.0)
    settings = MoleculeSettings(
        basis=args.basis, xc=args.xc, conv_tol=args.conv_tol, grid_level=args.grid_level,
        density_fit=args.density_fit, auxbasis=args.auxbasis, charge=args.charge, max_cycle=args.max_cycle,
        spin=spin, unpaired=args.unpaired,
    )
    source = MoleculeSource(name=name, path=args.file, rattle=rattle, box=args.box)
    summary = generate_molecules(args.out, n=args.n, seed=args.seed, source=source, settings=settings,
                                 workers=args.workers, threads_per_worker=_threads(args),
                                 progress=not args.no_progress, command=_command_line())
    return _report(summary)


def run_crystal(args) -> int:
    from deeph_jax.builders.twisted_bilayer import CELL_HEIGHT
    from deeph_jax.dft.bilayers import BILAYERS, DEFAULT_INTERLAYER, TWISTED, BilayerSource
    from deeph_jax.dft.crystals import CrystalSettings, CrystalSource, generate_crystals

    if args.n is None:
        raise DeephError("--n is required for crystal datasets")
    name = None if args.file else (args.name or "hbn")
    if name == "zgnr":
        return run_ribbon(args)
    if args.width is not None:
        raise DeephError("--width is for --name zgnr")
    bilayer = name in BILAYERS
    if not bilayer and (args.twist_m is not None or args.interlayer is not None):
        raise DeephError("--twist-m and --interlayer are for --name bilayer-graphene / twisted-bilayer")
    args.rattle = (0.0 if name == TWISTED else 0.1) if args.rattle is None else args.rattle
    args.vacuum = (CELL_HEIGHT if bilayer else 12.0) if args.vacuum is None else args.vacuum
    args.supercell = ((1, 1, 1) if name == TWISTED else (2, 2, 1)) if args.supercell is None else args.supercell
    # Bilayers are graphene: a semimetal, smeared as the graphene data.
    smearing = args.smearing if args.smearing is not None else (0.1 if name == "graphene" or bilayer else None)
    settings = CrystalSettings(
        basis=args.basis, pseudo=args.pseudo, xc=args.xc, kmesh=args.kmesh, kspacing_length=args.kspacing_length,
        bvk_min=args.bvk_min, dense_kmesh=args.dense_kmesh, cutoff=args.cutoff, smearing_eV=smearing,
        conv_tol=args.conv_tol, multigrid=not args.no_multigrid, max_cycle=args.max_cycle,
    )
    if args.rattle < 0 or (args.rattle_max is not None and args.rattle_max < args.rattle):
        raise DeephError(f"--rattle {args.rattle} / --rattle-max {args.rattle_max}: need 0 <= rattle <= rattle-max (A)")
    if not 0 <= args.strain < 0.2:
        raise DeephError(f"--strain {args.strain}: need 0 <= strain < 0.2 (a fraction, 0.02 = 2 %)")
    if args.pristine < 0:
        raise DeephError(f"--pristine {args.pristine}: need a count >= 0")
    common = dict(name=name, supercell=args.supercell, rattle=args.rattle, vacuum=args.vacuum,
                  rattle_max=args.rattle_max, strain=args.strain, pristine=args.pristine)
    if bilayer:
        source = BilayerSource(**common, interlayer=args.interlayer or DEFAULT_INTERLAYER[name], twist_m=args.twist_m)
    else:
        source = CrystalSource(**common, path=args.file)
    summary = generate_crystals(args.out, n=args.n, seed=args.seed, source=source, settings=settings,
                                workers=args.workers, threads_per_worker=_threads(args),
                                progress=not args.no_progress, command=_command_line())
    return _report(summary)


def run_ribbon(args) -> int:
    from deeph_jax.dft.ribbons import RibbonSettings, RibbonSource, generate_ribbons

    if args.width is None or args.width < 1:
        raise DeephError("--name zgnr needs --width N (zigzag chains, >= 1)")
    if args.supercell not in (None, (1, 1, 1)):
        raise DeephError("--supercell is not used by zgnr (the cell is one ribbon period)")
    if args.twist_m is not None or args.interlayer is not None:
        raise DeephError("--twist-m and --interlayer are for --name bilayer-graphene / twisted-bilayer")
    if args.rattle_max is not None or args.strain:
        raise DeephError("--rattle-max and --strain are not implemented for zgnr (use --rattle)")
    rattle = 0.05 if args.rattle is None else args.rattle
    if rattle < 0:
        raise DeephError(f"--rattle {rattle}: need a sigma >= 0 (Angstrom)")
    vacuum = 10.0 if args.vacuum is None else args.vacuum
    if vacuum < 6.0:
        raise DeephError(f"--vacuum {vacuum}: zgnr needs >= 6 A of vacuum along y and z")
    settings = RibbonSettings(
        basis=args.basis, pseudo=args.pseudo, xc=args.xc, kmesh=args.kmesh or RibbonSettings.kmesh,
        kspacing_length=args.kspacing_length, bvk_min=args.bvk_min, dense_kmesh=args.dense_kmesh, cutoff=args.cutoff,
        smearing_eV=0.1 if args.smearing is None else (args.smearing or None), conv_tol=args.conv_tol,
        multigrid=not args.no_multigrid, max_cycle=args.max_cycle,
    )
    source = RibbonSource(width=args.width, magnetic=args.magnetic, rattle=rattle, gap=vacuum, height=vacuum,
                          pristine=args.pristine)
    summary = generate_ribbons(args.out, n=args.n, seed=args.seed, source=source, settings=settings,
                               workers=args.workers, threads_per_worker=_threads(args),
                               progress=not args.no_progress, command=_command_line())
    return _report(summary)


def _command_line() -> str:
    return "deeph-jax " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _report(summary: dict) -> int:
    secs = summary["seconds"]
    mean = f", {sum(secs) / len(secs):.1f} s per structure" if secs else ""
    print(f"{summary['written']} written, {summary['skipped_existing']} already present, "
          f"{len(summary['not_converged'])} not converged (left out){mean}", file=sys.stderr)
    return 0 if not summary["not_converged"] else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="deeph-jax")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DeephError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
