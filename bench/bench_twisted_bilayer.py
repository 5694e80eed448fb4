"""Twisted bilayer graphene, issue 19's moire series (run by hand; resumable per angle).

    python bench/bench_twisted_bilayer.py --model models/bilayer-graphene-szv \
        [--m 16 17 ... 39] [--dft-check datasets/bilayer-graphene-szv/test-twist-m1 ...] \
        [--work bench/work/twisted-bilayer] [--json bench/results/twisted_bilayer.json]

Two parts:

* ``--dft-check`` folders (the 21.79 and 13.17 degree cells, never used for a design decision): predict H, then
  the bands within 1 eV of DFT's E_F along the cell's path, absolute and after removing the mean offset, and the
  Dirac-point energy at the moire K point (the mean of bands n_occ - 1 and n_occ there), predicted vs DFT.
* the commensurate (m, m + 1) cells of ``--m`` (m = 16: 2.00 degrees, 3,268 atoms; m = 39: 0.85 degrees,
  18,724 atoms), the prediction and the bands of each in their own processes (so that each peak memory is its
  own and JAX's is gone before the factorizations), their results kept in ``--work``/m<m>-{predict,bands}.json so
  that a killed run resumes at the next stage. Per angle: predict H (chunked, exact S), find the Dirac point at
  K (a shift-invert window indexed by Sylvester inertia, :mod:`deeph_jax.physics.band_index`), solve the 12
  bands nearest it along K - Gamma - M - K (sparse shift-invert, states tracked from k to k), and keep the
  four flat bands: the two highest below the Dirac energy and the two lowest above it at each k. That
  assumes charge neutrality sits at the Dirac energy at every k (no electron or hole pocket); the inertia at
  Gamma and M (real arithmetic there) checks it, and the result says where it fails.

Prints a table (angle, atoms, times, peak memory, Dirac energy, flat-band width, gap to the remote bands) and the
angle of the smallest width; draws the bands at the flattest angle and at the angle nearest 2 degrees, and the
width against the angle, beside the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run this checkout, not another installed copy
sys.path.insert(0, str(REPO / "bench"))

from deeph_jax.errors import report_user_errors  # noqa: E402
from deeph_jax.io.atomic import write_text_atomic  # noqa: E402
from deeph_jax.provenance import write_result  # noqa: E402

N_WINDOW = 12  # eigenvalues solved per k around the Dirac energy: the 4 flat bands and 4 remote ones a side
DFT_WINDOW_EV = 1.0  # issue 19: bands within 1 eV of E_F
DEFAULT_M = list(range(16, 40))


def dirac_energy(h, s, n_occ: int, guess: float) -> tuple[float, np.ndarray]:
    """The Dirac-point energy (eV), the mean of bands n_occ - 1 and n_occ of the pencil (a moire K point), and
    the four flat bands n_occ - 2 ... n_occ + 1 there."""
    from deeph_jax.physics.band_index import bands_with_indices

    flat = bands_with_indices(h, s, n_occ - 2, 4, guess, N_WINDOW)
    return 0.5 * float(flat[1] + flat[2]), flat


def predict_angle(m: int, model: Path, work: Path, chunk_atoms: int) -> dict:
    """Predict the (m, m + 1) cell into ``work``/m<m> (its own process: JAX's memory goes with it)."""
    from deeph_jax.builders.twisted_bilayer import twist_angle, twisted_bilayer
    from deeph_jax.predict.infer import load_predictor
    from deeph_jax.predict.run import predict_to_folder

    structure = twisted_bilayer(m)
    t0 = time.perf_counter()
    stats = predict_to_folder(structure, load_predictor(model), work / f"m{m}", chunk_atoms=chunk_atoms,
                              progress=False)
    return {"m": m, "angle_deg": twist_angle(m), "atoms": structure.n_atoms, "predict_s": time.perf_counter() - t0,
            "predict_graph_s": stats.graph_s, "chunk_atoms": chunk_atoms,
            "predict_peak_rss_GiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def angle_bands(m: int, work: Path, guess: float, n_points: int) -> dict:
    """The four flat bands of the predicted (m, m + 1) cell along the moire path (its own process)."""
    from deeph_jax.builders.twisted_bilayer import moire_kpath
    from deeph_jax.io import HAMILTONIAN_PRED, read_deeph_dir
    from deeph_jax.physics.band_index import bands_straddling, states_below
    from deeph_jax.physics.bands import bands_at, bloch_pencil

    data = read_deeph_dir(work / f"m{m}", hamiltonian=HAMILTONIAN_PRED)
    n_occ = int(round(data.occupation)) // 2
    kpoints, ticks = moire_kpath(data.structure, n_points)
    t1 = time.perf_counter()
    e_dirac, flat_k = dirac_energy(*bloch_pencil(data, kpoints[0]), n_occ, guess)
    t2 = time.perf_counter()
    energies = bands_at(data, kpoints, n_bands=N_WINDOW, sigma=e_dirac, track=True)
    t3 = time.perf_counter()
    # no pockets: at the real (time-reversal-invariant) k-points the count at the Dirac energy must be n_occ
    counts = {label: states_below(*bloch_pencil(data, kpoints[i]), e_dirac) for i, label in ticks
              if label in ("Gamma", "M")}
    flat = bands_straddling(energies, e_dirac, 2, 2)
    above = np.where(energies > flat[:, 3:], energies, np.inf).min(axis=1)
    below = np.where(energies < flat[:, :1], energies, -np.inf).max(axis=1)
    return {
        "orbitals": int(data.atom_offsets[-1]), "n_occ": n_occ, "dirac_search_s": t2 - t1, "path_bands_s": t3 - t2,
        "n_kpoints": len(kpoints), "bands_peak_rss_GiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "dirac_energy_eV": e_dirac, "flat_at_K_eV": flat_k.tolist(),
        "dirac_splitting_at_K_meV": 1e3 * float(flat_k[2] - flat_k[1]),
        "flat_width_meV": 1e3 * float(flat.max() - flat.min()),
        "inner_width_meV": 1e3 * float(flat[:, 1:3].max() - flat[:, 1:3].min()),
        "remote_gap_meV": 1e3 * float(min(above.min() - flat[:, 3].max(), flat[:, 0].min() - below.max())),
        "states_below_dirac": counts, "no_pockets": all(c == n_occ for c in counts.values()),
        "ticks": [[int(i), label] for i, label in ticks], "energies_eV": energies.tolist(), "flat_eV": flat.tolist(),
    }


def dft_check(src: Path, predictor, work: Path) -> dict:
    """A DFT twisted cell: predicted vs DFT bands within DFT_WINDOW_EV of E_F, and the Dirac-point energy."""
    from bench_hbn_generalization import band_window_errors, block_errors

    from deeph_jax.io import HAMILTONIAN, HAMILTONIAN_PRED, read_deeph_dir
    from deeph_jax.pipeline.demo import predict_crystal_against_dft

    out = work / f"dft-check-{src.parent.name}-{src.name}"
    t0 = time.perf_counter()
    structure, _, bands = predict_crystal_against_dft(src, predictor, out)
    seconds = time.perf_counter() - t0
    dirac = {name: dense_dirac_energy(read_deeph_dir(out, hamiltonian=file))
             for name, file in (("pred", HAMILTONIAN_PRED), ("dft", HAMILTONIAN))}
    return {"cell": str(src.relative_to(REPO) if src.is_relative_to(REPO) else src), "atoms": structure.n_atoms,
            "predict_and_bands_s": seconds, **block_errors(out, src), **band_window_errors(bands, DFT_WINDOW_EV),
            "dirac_pred_eV": dirac["pred"], "dirac_dft_eV": dirac["dft"],
            "dirac_error_meV": 1e3 * (dirac["pred"] - dirac["dft"]), "fermi_dft_eV": bands["fermi_energy_dft_eV"]}


def plot(rows: list[dict], path: Path) -> list[Path]:
    """Bands at the flattest angle and at the angle nearest 2 degrees; flat-band width against the angle."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    flattest = min(rows, key=lambda r: r["flat_width_meV"])
    near_two = min(rows, key=lambda r: abs(r["angle_deg"] - 2.0))
    fig, axes = plt.subplots(1, 2 if near_two is not flattest else 1, figsize=(9, 4.5), squeeze=False)
    for ax, row in zip(axes[0], [flattest, near_two]):
        e = 1e3 * (np.asarray(row["energies_eV"]) - row["dirac_energy_eV"])
        flat = 1e3 * (np.asarray(row["flat_eV"]) - row["dirac_energy_eV"])
        ax.plot(e, color="0.6", lw=0.8)
        ax.plot(flat, color="C3", lw=1.4)
        ticks = row["ticks"]
        ax.set_xticks([i for i, _ in ticks], [("$\\Gamma$" if label == "Gamma" else label) for _, label in ticks])
        for i, _ in ticks:
            ax.axvline(i, color="0.85", lw=0.6)
        pad = 0.05 * (e.max() - e.min())
        ax.set_ylim(e.min() - pad, e.max() + pad)
        ax.set_xlim(0, len(e) - 1)
        ax.set_title(f"{row['angle_deg']:.2f} deg, {row['atoms']} atoms: flat width {row['flat_width_meV']:.1f} meV")
        ax.set_ylabel("E - E_Dirac (meV)")
    fig.tight_layout()
    files.append(path.with_name(path.stem + "_bands.png"))
    fig.savefig(files[-1], dpi=150)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3.6))
    rows = sorted(rows, key=lambda r: r["angle_deg"])
    ax.plot([r["angle_deg"] for r in rows], [r["flat_width_meV"] for r in rows], "o-", label="four flat bands")
    ax.plot([r["angle_deg"] for r in rows], [r["inner_width_meV"] for r in rows], "s--", ms=3,
            label="two middle bands")
    ax.set_xlabel("twist angle (degrees)")
    ax.set_ylabel("band width (meV)")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    files.append(path.with_name(path.stem + "_width.png"))
    fig.savefig(files[-1], dpi=150)
    plt.close(fig)
    return files


def dense_dirac_energy(data) -> float:
    """The mean of bands n_occ - 1 and n_occ at the moire K point of a small cell's folder (dense, eV)."""
    import scipy.linalg

    from deeph_jax.builders.twisted_bilayer import moire_kpath

    n_occ = int(round(data.occupation)) // 2
    k = moire_kpath(data.structure, 4)[0][0]
    e = scipy.linalg.eigh(data.hamiltonian_k(k), data.overlap_k(k), eigvals_only=True)
    return 0.5 * float(e[n_occ - 1] + e[n_occ])


def guess_from_small_cell(predictor, work: Path) -> float:
    """The Dirac energy of the predicted m = 1 cell (28 atoms, dense): where to start looking at larger m."""
    from deeph_jax.builders.twisted_bilayer import twisted_bilayer
    from deeph_jax.io import HAMILTONIAN_PRED, read_deeph_dir
    from deeph_jax.predict.run import predict_to_folder

    predict_to_folder(twisted_bilayer(1), predictor, work / "m1", progress=False)
    return dense_dirac_energy(read_deeph_dir(work / "m1", hamiltonian=HAMILTONIAN_PRED))


def table(rows: list[dict]) -> str:
    lines = [f"{'m':>3} {'angle':>6} {'atoms':>6} {'predict s':>9} {'bands s':>8} {'RSS GiB':>7} {'E_D eV':>9} "
             f"{'width meV':>9} {'middle':>7} {'remote gap':>10} pockets"]
    for r in sorted(rows, key=lambda r: -r["angle_deg"]):
        lines.append(f"{r['m']:>3} {r['angle_deg']:6.3f} {r['atoms']:>6} {r['predict_s']:9.1f} "
                     f"{r['dirac_search_s'] + r['path_bands_s']:8.1f} "
                     f"{max(r['predict_peak_rss_GiB'], r['bands_peak_rss_GiB']):7.2f} "
                     f"{r['dirac_energy_eV']:9.4f} {r['flat_width_meV']:9.2f} {r['inner_width_meV']:7.2f} "
                     f"{r['remote_gap_meV']:10.2f} {'none' if r['no_pockets'] else r['states_below_dirac']}")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=str(REPO / "models" / "bilayer-graphene-szv"))
    p.add_argument("--m", type=int, nargs="*", default=DEFAULT_M, help="(m, m + 1) cells (default 16 ... 39)")
    p.add_argument("--dft-check", nargs="*", default=[], help="DFT folders of twisted cells to compare with")
    p.add_argument("--work", default=str(REPO / "bench" / "work" / "twisted-bilayer"))
    p.add_argument("--json", default=str(REPO / "bench" / "results" / "twisted_bilayer.json"))
    p.add_argument("--kpoints", type=int, default=60, help="k-points along K - Gamma - M - K")
    p.add_argument("--one-angle", type=int, help=argparse.SUPPRESS)  # the per-angle child process
    p.add_argument("--stage", choices=("predict", "bands"), help=argparse.SUPPRESS)
    p.add_argument("--guess", type=float, help=argparse.SUPPRESS)
    p.add_argument("--chunk-atoms", type=int, default=1000,
                   help="atoms per prediction chunk (the prediction's peak memory grows with it)")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    def run() -> int:
        if args.one_angle is not None:  # a child: one stage of one angle
            m, stage = args.one_angle, args.stage
            row = (predict_angle(m, Path(args.model), work, args.chunk_atoms) if stage == "predict"
                   else angle_bands(m, work, args.guess, args.kpoints))
            write_text_atomic(work / f"m{m}-{stage}.json", json.dumps(row) + "\n")
            return 0
        from deeph_jax.predict.infer import load_predictor

        predictor = load_predictor(args.model)
        results = {"model": args.model, "dft_check": [], "angles": []}
        for folder in args.dft_check:
            row = dft_check(Path(folder).resolve(), predictor, work)
            results["dft_check"].append(row)
            print(f"{row['cell']} ({row['atoms']} atoms): H MAE {row['h_mae_meV']:.2f} meV; bands within "
                  f"{DFT_WINDOW_EV:g} eV of E_F: MAE {row['band_mae_meV']:.1f} meV absolute, "
                  f"{row['band_mae_after_offset_meV']:.1f} after removing the offset {row['band_offset_meV']:.1f}; "
                  f"Dirac point {row['dirac_pred_eV']:.4f} vs DFT {row['dirac_dft_eV']:.4f} eV "
                  f"({row['dirac_error_meV']:+.1f} meV)", flush=True)
        guess = guess_from_small_cell(predictor, work) if args.m else None
        for m in args.m:
            for stage in ("predict", "bands"):
                if (work / f"m{m}-{stage}.json").is_file():
                    continue
                t0 = time.perf_counter()
                cmd = [sys.executable, __file__, "--model", args.model, "--work", str(work), "--one-angle", str(m),
                       "--stage", stage, "--guess", repr(guess), "--kpoints", str(args.kpoints),
                       "--chunk-atoms", str(args.chunk_atoms)]
                rc = subprocess.run(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"}).returncode
                if rc != 0:
                    print(f"m = {m}, {stage}: the process failed (exit {rc}); stopping here", file=sys.stderr)
                    break
                print(f"m = {m}: {stage} done in {time.perf_counter() - t0:.0f} s", flush=True)
            else:
                results["angles"].append({**json.loads((work / f"m{m}-predict.json").read_text()),
                                          **json.loads((work / f"m{m}-bands.json").read_text())})
                continue
            break
        rows = results["angles"]
        if rows:
            print(table(rows))
            best = min(rows, key=lambda r: r["flat_width_meV"])
            results["flattest"] = {"m": best["m"], "angle_deg": best["angle_deg"], "width_meV": best["flat_width_meV"]}
            print(f"smallest flat-band width: {best['flat_width_meV']:.2f} meV at {best['angle_deg']:.3f} degrees "
                  f"(m = {best['m']})")
            results["plots"] = [str(f) for f in plot(rows, Path(args.json))]
        print(f"wrote {write_result(args.json, results)}")
        return 0

    return report_user_errors("bench_twisted_bilayer", run)


if __name__ == "__main__":
    sys.exit(main())
