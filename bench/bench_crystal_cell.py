"""Cost of one crystal cell through the generator, and its stored H(R), S(R) checked against PySCF's get_bands.

    python bench/bench_crystal_cell.py --json bench/results/bilayer_cell_2x2.json -- \\
        generate crystal --name bilayer-graphene --supercell 2,2,1 --rattle 0 --rattle-max 0.15 --strain 0.02 \\
        --pristine 1 --n 1 --seed 0 --threads 1 --no-progress --out /tmp/bilayer-2x2

Runs the ``deeph-jax generate crystal`` command given after ``--`` in this process (one structure, a
fresh --out), recording its wall and CPU seconds (getrusage: all threads of this process) and the
machine's 1-minute load average sampled every 30 s (the machine is shared). Then reads the written
structure back from disk and compares the generalized eigenvalues of its H(k), S(k) with PySCF's
``get_bands`` of the generator's own converged SCF (so no second SCF; PySCF's own h_core, as
:func:`deeph_jax.dft.crystals.bands_check`), at the k-points of ``datasets/check_crystal_bands.py``:
max |dE| in meV over the occupied bands + the lowest 4 empty ones (bands_check's measure), and over
the bands within --window eV of the stored Fermi energy.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "datasets"))


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class LoadSampler(threading.Thread):
    """1-minute load averages every ``period`` seconds until stopped."""

    def __init__(self, period: float = 30.0):
        super().__init__(daemon=True)
        self.period, self.samples, self._halt = period, [], threading.Event()  # Thread has its own _stop

    def run(self):
        while not self._halt.is_set():
            self.samples.append(os.getloadavg()[0])
            self._halt.wait(self.period)

    def stop(self) -> list[float]:
        self._halt.set()
        return self.samples


def run_generator(argv: list[str]) -> tuple[dict, object]:
    """Run the generate command in-process; return (timing, the converged SCF object of its one structure)."""
    import deeph_jax.dft.crystals as crystals
    from deeph_jax.dft import commands

    captured = {}
    original = crystals.compute_crystal

    def keep_scf(*args, **kwargs):  # the generator's own call, unchanged; the SCF object is kept for the check
        data, mf, extras = original(*args, **kwargs)
        captured["mf"] = mf
        return data, mf, extras

    crystals.compute_crystal = keep_scf
    sampler = LoadSampler()
    sampler.start()
    saved_argv, sys.argv = sys.argv, ["deeph-jax", *argv]  # metadata.json records the generator's command line
    t0, c0 = time.time(), _cpu_seconds()
    try:
        rc = commands.main(argv)
    finally:
        crystals.compute_crystal, sys.argv = original, saved_argv
    wall, cpu = time.time() - t0, _cpu_seconds() - c0
    load = sampler.stop()
    if rc != 0 or "mf" not in captured:
        raise SystemExit(f"generator exited with {rc} without computing a structure (is --out fresh?)")
    timing = {"wall_s": wall, "cpu_s": cpu, "load_1min_mean": float(np.mean(load)), "load_1min_max": float(max(load))}
    return timing, captured["mf"]


def band_errors(folder: Path, mf, window_eV: float) -> dict:
    """Stored bands vs get_bands at check_crystal_bands.K_POINTS (meV)."""
    import scipy.linalg
    from check_crystal_bands import K_POINTS

    from deeph_jax.io import read_deeph_dir
    from deeph_jax.units import HARTREE_TO_EV

    stored = read_deeph_dir(folder)
    fermi = float(stored.info["fermi_energy_eV"])
    cell = mf.cell
    mf.__dict__.pop("get_hcore", None)  # the reference uses PySCF's own h_core (bands_check does the same)
    e_ref, _ = mf.get_bands(cell.get_abs_kpts(K_POINTS))
    nb = int(round(cell.nelectron)) // 2 + 4
    per_k = []
    for k, ref in zip(K_POINTS, e_ref):
        e = scipy.linalg.eigh(stored.hamiltonian_k(k), stored.overlap_k(k), eigvals_only=True)
        ref = np.asarray(ref) * HARTREE_TO_EV
        near = np.abs(ref - fermi) <= window_eV
        per_k.append({"k": k.tolist(), "occupied_plus_4_meV": float(np.abs(e[:nb] - ref[:nb]).max() * 1e3),
                      "near_fermi_meV": float(np.abs(e[near] - ref[near]).max() * 1e3) if near.any() else None,
                      "bands_near_fermi": int(near.sum())})
    return {"fermi_energy_eV": fermi, "window_eV": window_eV, "per_k": per_k,
            "max_occupied_plus_4_meV": max(r["occupied_plus_4_meV"] for r in per_k),
            "max_near_fermi_meV": max(r["near_fermi_meV"] or 0.0 for r in per_k)}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv:
        raise SystemExit("usage: bench_crystal_cell.py [--json FILE] [--window EV] -- generate crystal ... --out DIR")
    split = argv.index("--")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", default=None, help="raw results (bench/results/...)")
    ap.add_argument("--window", type=float, default=2.0, help="eV around the stored Fermi energy")
    args = ap.parse_args(argv[:split])
    gen = argv[split + 1:]
    out = Path(gen[gen.index("--out") + 1])
    timing, mf = run_generator(gen)
    folder = out / "00000"
    info = json.loads((folder / "info.json").read_text())
    bands = band_errors(folder, mf, args.window)
    result = {"generator": "deeph-jax " + " ".join(gen), **timing,
              **{k: info[k] for k in ("seconds_scf", "seconds_dense_fock", "scf_kmesh", "dense_kmesh")},
              "atoms": info.get("atoms_quantity"), "bands": bands}
    print(f"wall {timing['wall_s']:.0f} s, CPU {timing['cpu_s']:.0f} s (SCF {info['seconds_scf']} s, dense Fock "
          f"{info['seconds_dense_fock']} s), load {timing['load_1min_mean']:.1f} mean / {timing['load_1min_max']:.1f} "
          f"max; bands vs get_bands: occupied + 4 empty max {bands['max_occupied_plus_4_meV']:.3f} meV, within "
          f"{args.window} eV of E_F max {bands['max_near_fermi_meV']:.3f} meV", flush=True)
    if args.json:
        from deeph_jax.provenance import write_result

        print(f"raw results: {write_result(args.json, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
