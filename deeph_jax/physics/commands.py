"""Sub-commands ``bands``, ``dos`` and ``polarization``."""

from __future__ import annotations

import numpy as np

from deeph_jax.errors import DeephError
from deeph_jax.units import E_ANGSTROM_TO_DEBYE


def _vec(v, fmt="{:+.6f}") -> str:
    return "(" + ", ".join(fmt.format(x) for x in np.asarray(v, dtype=float)) + ")"


def _bands(args) -> int:
    from deeph_jax.physics.workflows import run_bands

    distributed = False
    if args.distributed:
        from deeph_jax.runtime import init_distributed

        if not init_distributed():
            raise DeephError("--distributed needs DEEPH_COORDINATOR=host:port, DEEPH_NUM_PROCESSES and "
                             "DEEPH_PROCESS_ID set for each process (see README, multi-host)")
        distributed = True
    r = run_bands(args.dir, args.hamiltonian, args.kpath, args.npoints, args.nbands, args.sigma, args.out,
                  smearing=args.smearing, distributed=distributed, method=args.method, track=args.track,
                  near_range=args.near_range)
    if "out" not in r:  # not the first process: it computed, the first one writes and reports
        return 0
    e = r["energies_eV"]
    print(f"bands ({r['hamiltonian']}, {r['mode']}"
          + (f", the {e.shape[1]} nearest {r['sigma_eV']:.4f} eV" if "sigma_eV" in r else ", every band")
          + (f", near-range pencil within {r['near_range_A']:.2f} A" if "near_range_A" in r else "")
          + f"): {e.shape[0]} k-points x {e.shape[1]} bands, "
          f"E_F = {r['fermi_energy_eV']:.6f} eV" + (f", gap {r['gap_eV']:.4f} eV" if "gap_eV" in r else ""))
    if "max_abs_diff_eV" in r:
        print(f"max |pred - DFT| along the path: {r['max_abs_diff_eV']:.6f} eV; within {r['fermi_window_eV']:g} eV "
              f"of E_F: mean {1e3 * r['band_mae_near_fermi_eV']:.2f} meV, max {1e3 * r['band_max_near_fermi_eV']:.2f} meV")
    print(f"wrote {r['out']}" + (f" and {r['png']}" if "png" in r else ""))
    return 0


def _dos(args) -> int:
    from deeph_jax.physics.workflows import run_dos

    r = run_dos(args.dir, args.kmesh, args.hamiltonian, args.sigma, args.out, method=args.method,
                n_moments=args.moments, n_vectors=args.vectors, seed=args.seed)
    how = (f"KPM, {r['n_moments']} moments x {r['n_vectors']} random vectors, resolution {r['resolution_eV']:.3f} eV, "
           f"{r['seconds']:.1f} s" if r["method"] == "kpm" else f"dense diagonalization, sigma {r['sigma_eV']} eV")
    gap = ""
    if "gap_eV" in r:  # KPM's smoothed bands reach into the gap: what it sees is a lower bound
        gap = f", gap {r['gap_eV']:.4f} eV" + (" (KPM-smoothed: a lower bound)" if r["method"] == "kpm" else "")
    print(f"DOS ({r['hamiltonian']}, {how}): mesh {tuple(int(x) for x in r['kmesh'])}, "
          f"E_F = {r['fermi_energy_eV']:.6f} eV{gap}")
    print(f"wrote {r['out']} and {r['png']}")
    return 0


def _parse_valence(text: str | None) -> dict | None:
    if not text:
        return None
    try:
        return {k.strip(): float(v) for k, v in (item.split("=") for item in text.split(","))}
    except ValueError:
        raise DeephError(f"--valence must look like 'B=3,N=5', got {text!r}") from None


def _polarization(args) -> int:
    from deeph_jax.physics.workflows import run_polarization

    r = run_polarization(args.dir, args.hamiltonian, args.basis, args.kmesh, _parse_valence(args.valence))
    if r["kind"] == "molecule":
        d = r["dipole_eA"]
        print(f"|dipole| = {np.linalg.norm(d) * E_ANGSTROM_TO_DEBYE:.6f} Debye  "
              f"vector {_vec(d * E_ANGSTROM_TO_DEBYE)} Debye ({r['hamiltonian']} H, origin at 0)")
        print(f"Mulliken point-charge dipole {_vec(r['mulliken_dipole'] * E_ANGSTROM_TO_DEBYE)} Debye")
        return 0
    p = r["polarization"]
    print(f"Berry-phase polarization ({r['hamiltonian']} H, k-mesh {p.kmesh}, min direct gap {p.min_gap_eV:.4f} eV)")
    print(f"reduced p_i (units of the quantum e a_i / Omega, in [-1/2, 1/2)): {_vec(p.reduced)}")
    print(f"  ionic {_vec(p.reduced_ionic)}  electronic {_vec(p.reduced_electronic)}  valence "
          + ", ".join(f"{s}={z:g}" for s, z in dict(zip(_symbols(args), r["valence"])).items()))
    if "P_C_per_m" in r:
        print(f"P = {_vec(r['P_C_per_m'], '{:+.6e}')} C/m (2D sheet, per area); quantum |e a_i| / A = "
              + ", ".join(f"{np.linalg.norm(q):.6e}" for q in r["quantum_C_per_m"]) + " C/m")
    print(f"P = {_vec(r['P_C_per_m2'], '{:+.6e}')} C/m^2; quantum |e a_i| / Omega = "
          + ", ".join(f"{np.linalg.norm(q):.6e}" for q in r["quantum_C_per_m2"]) + " C/m^2")
    return 0


def _symbols(args):
    from deeph_jax.io import read_poscar

    return read_poscar(f"{args.dir}/POSCAR").symbols


def register(sub) -> None:
    common = dict(choices=["dft", "pred"], default=None,
                  help="which H: hamiltonian.h5 (dft) or hamiltonian_pred.h5 (pred); default pred when it exists")
    p = sub.add_parser("bands", help="band structure along a k-path (dense or sparse shift-invert), with a plot",
                       description=(
                           "Solve H(k) c = e S(k) c along a k-path. --kpath auto: seekpath's high-symmetry path "
                           "(kept in-plane for 2D sheets); or a DeepH K_PATH file (lines 'N k1x k1y k1z k2x k2y k2z "
                           "label1 label2', each segment including both ends). --method auto: every band (dense) up to "
                           "6000 orbitals, above that (or with --nbands N) the N (default 20) eigenvalues closest to "
                           "--sigma E (absolute eV, default: info.json fermi_energy_eV) by sparse shift-invert "
                           "block Lanczos; the memory it needs is checked first. E_F from the electron count "
                           "(info.json occupation) on a uniform mesh (mid-gap for insulators, Gaussian smearing for "
                           "metals). Writes DIR/bands.npz (kpoints, distances in 1/A with 2 pi, tick labels, "
                           "energies_eV (n_k, n_bands), unshifted, fermi_energy_eV) and bands.png (E_F at zero; "
                           "DFT and predicted overlaid when both exist)."))
    p.add_argument("dir", metavar="DIR", help="a structure folder (POSCAR, info.json, overlap.h5, hamiltonian*.h5)")
    p.add_argument("--hamiltonian", **common)
    p.add_argument("--kpath", default="auto", metavar="auto|FILE", help="auto (seekpath) or a K_PATH file")
    p.add_argument("--npoints", type=int, default=200, help="points along an auto path (default 200)")
    p.add_argument("--method", default="auto", choices=["auto", "dense", "sparse"],
                   help="auto (by size: dense up to 6000 orbitals), dense (every band) or sparse (a few near --sigma)")
    p.add_argument("--nbands", type=int, default=None, help="sparse: number of eigenvalues nearest --sigma (20)")
    p.add_argument("--sigma", type=float, default=None, help="sparse: shift energy in eV (absolute)")
    p.add_argument("--smearing", type=float, default=0.1, help="Gaussian smearing for a metal's E_F, eV (0.1)")
    p.add_argument("--track", action="store_true",
                   help="sparse: follow the bands from k to k by Davidson, reusing factorizations of earlier k-points "
                        "(large cells: a factorization every few k instead of two per k; eigenvalues to ~1e-9 eV)")
    p.add_argument("--near-range", default="auto", metavar="auto|off|A",
                   help="sparse: start and precondition Davidson with H, S kept within this radius (Angstrom), a "
                        "sparser factorization than the full pencil's, for cells whose full one does not fit; "
                        "eigenvalues are the full pencil's (~1e-9 eV). auto (default): only when the full "
                        "factorization would not fit in memory, at 0.55 of the longest block")
    p.add_argument("--out", default=None, help="output .npz or .h5 (default DIR/bands.npz; the PNG beside it)")
    p.add_argument("--distributed", action="store_true",
                   help="with --nbands: split the rows of H(k), S(k) over the JAX processes started with "
                        "DEEPH_COORDINATOR / DEEPH_NUM_PROCESSES / DEEPH_PROCESS_ID (iterative shift-invert; "
                        "sigma in a gap converges fastest)")
    p.set_defaults(func=_bands)

    p = sub.add_parser("dos", help="density of states on a k-mesh (dense, or KPM for large cells), with a plot",
                       description=(
                           "DOS in states/eV/cell on a Gamma-centred mesh; E_F from the electron count. dense: "
                           "spin_factor sum_k w_k sum_n gauss(E - e_nk; sigma). kpm (kernel polynomial method, no "
                           "diagonalization; for cells too large for dense): stochastic Chebyshev moments of "
                           "S^-1 H with the Jackson kernel, resolution ~sigma, error bars (standard error over the "
                           "random vectors) in dos_stderr_per_eV and shaded on the plot; a supercell's DOS from "
                           "--kmesh 1 1 1. auto: dense up to 6000 orbitals, else kpm. A job that would not fit in "
                           "memory is refused before it starts. Writes DIR/dos.npz and dos.png."))
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--kmesh", type=int, nargs=3, required=True, metavar=("A", "B", "C"))
    p.add_argument("--sigma", type=float, default=0.1, help="Gaussian width (dense) or KPM resolution, eV (0.1)")
    p.add_argument("--method", default="auto", choices=["auto", "dense", "kpm"], help="auto: by size (default)")
    p.add_argument("--moments", type=int, default=None, help="kpm: Chebyshev moments (default from --sigma)")
    p.add_argument("--vectors", type=int, default=None,
                   help="kpm: random vectors (default: 16 up to ~4,000 orbitals, fewer above, at least 2)")
    p.add_argument("--seed", type=int, default=0, help="kpm: random-vector seed (default 0)")
    p.add_argument("--hamiltonian", **common)
    p.add_argument("--out", default=None, help="output .npz or .h5 (default DIR/dos.npz)")
    p.set_defaults(func=_dos)

    p = sub.add_parser("polarization", help="Berry-phase polarization (crystal) or dipole moment (molecule)",
                       description=(
                           "A molecule (every stored R zero): the dipole from the density matrix of (H, S) and exact "
                           "position integrals of the basis (info.json 'basis' or --basis), printed as '|dipole| = X "
                           "Debye'. A crystal: King-Smith-Vanderbilt Berry phase of the occupied bands, link matrices "
                           "C(k)^+ S(k) diag(exp(-i b.tau)) C(k+b) (orbitals at their atoms), spin factor 2 for a "
                           "spinless H, plus the ionic part from valence charges (info.json pseudopotential, or "
                           "--valence); reported in units of the quantum, in C/m^2, and in C/m for 2D sheets."))
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--hamiltonian", **common)
    p.add_argument("--basis", default=None, help="basis set name for a molecule's position integrals")
    p.add_argument("--kmesh", type=int, nargs=3, default=None, metavar=("A", "B", "C"),
                   help="k-points per string along each reciprocal vector (default ~30 A / |a_i|, 1 if non-periodic)")
    p.add_argument("--valence", default=None, help="ionic charges, e.g. 'Mo=14,Te=16' (default: pseudopotential)")
    p.set_defaults(func=_polarization)
