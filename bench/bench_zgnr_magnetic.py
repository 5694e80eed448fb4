"""A collinear-magnetic model on zigzag graphene nanoribbons wider than any it trained on (issue 17; by hand).

    python bench/bench_zgnr_magnetic.py [--model models/zgnr-magnetic] \
        [--sets datasets/zgnr-szv/test-w6-afm datasets/zgnr-szv/test-w6-fm datasets/zgnr-szv/test-w8-afm] \
        [--json bench/results/zgnr_magnetic.json]

For every ribbon of the sets: predict H-up and H-down with the DFT solution's Mulliken moments as the magnetic
configuration (info.json), then against the KUKS H of the folder

* H-up and H-down MAE (meV) over every stored entry, each channel apart;
* the bands of each spin channel along the ribbon (Gamma - X, dense, the folder's exact overlap), absolute, no
  offset removed: mean and largest |error| of the states within 1 eV of DFT's E_F;
* the band gap (antiferromagnetic ribbons: the lowest empty minus the highest occupied state, both channels,
  each channel holding half the electrons), predicted vs DFT.

Each ribbon's prediction and bands are in ``--work``; the JSON holds every number, the table prints them.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run this checkout, not another installed copy

from deeph_jax.errors import report_user_errors  # noqa: E402
from deeph_jax.provenance import write_result  # noqa: E402

NEAR_EF_EV = 1.0
N_K = 41  # Gamma to X along the ribbon
DEFAULT_SETS = [f"datasets/zgnr-szv/test-{name}" for name in ("w6-afm", "w6-fm", "w8-afm")]


def channel_bands(folder: Path, hamiltonian: str, kpoints: np.ndarray) -> np.ndarray:
    """(2, n_k, n_orbitals) eigenvalues (eV) of the up and down channels of a collinear folder."""
    import scipy.linalg

    from deeph_jax.io import read_deeph_dir
    from deeph_jax.physics.collinear import spin_channels

    channels = spin_channels(read_deeph_dir(folder, hamiltonian=hamiltonian))
    if channels is None:
        raise RuntimeError(f"{folder / hamiltonian} is not collinear")
    return np.array([[scipy.linalg.eigh(c.hamiltonian_k(k), c.overlap_k(k), eigvals_only=True) for k in kpoints]
                     for c in channels])


def channel_mae(pred_dir: Path, dft_dir: Path) -> dict:
    """H-up and H-down MAE (meV) over the blocks both files hold."""
    from deeph_jax.io import HAMILTONIAN, HAMILTONIAN_PRED, read_deeph_dir
    from deeph_jax.physics.collinear import spin_quarters
    from deeph_jax.predict.run import entry_errors

    pred = spin_quarters(read_deeph_dir(pred_dir, hamiltonian=HAMILTONIAN_PRED, overlap=False).hamiltonian)
    dft = spin_quarters(read_deeph_dir(dft_dir, hamiltonian=HAMILTONIAN, overlap=False).hamiltonian)
    return {f"h_{name}_mae_meV": 1e3 * float(np.concatenate(entry_errors(pred[c], dft[c])).mean())
            for c, name in enumerate(("up", "down"))}


def gap(bands: np.ndarray, electrons: int) -> float:
    """Lowest empty minus highest occupied state (eV), each channel holding half the electrons (an
    antiferromagnet's equal populations)."""
    n = electrons // 2
    return float(bands[:, :, n:].min() - bands[:, :, :n].max())


def one(src: Path, predictor, work: Path) -> dict:
    from deeph_jax.graph import moments_from_info
    from deeph_jax.io import HAMILTONIAN, HAMILTONIAN_PRED, read_deeph_dir
    from deeph_jax.predict.run import predict_to_folder

    dft = read_deeph_dir(src, hamiltonian=None)
    moments = moments_from_info(dft.info, dft.structure.n_atoms, src / "info.json")
    out = work / f"{src.parent.name}-{src.name}"
    t0 = time.perf_counter()
    predict_to_folder(dft.structure, predictor, out, progress=False, moments=moments)
    seconds = time.perf_counter() - t0
    shutil.copy(src / "hamiltonian.h5", out / "hamiltonian.h5")
    periodic = np.flatnonzero(np.asarray(dft.info["scf_kmesh"]) > 1)  # the ribbon's axis: its only sampled one
    if len(periodic) != 1:
        raise RuntimeError(f"{src}: a ribbon has one sampled direction, its scf_kmesh has {len(periodic)}")
    kpoints = np.zeros((N_K, 3))
    kpoints[:, periodic[0]] = np.linspace(0.0, 0.5, N_K)
    e_pred, e_dft = channel_bands(out, HAMILTONIAN_PRED, kpoints), channel_bands(out, HAMILTONIAN, kpoints)
    e_f = float(dft.info["fermi_energy_eV"])
    near = np.abs(e_dft - e_f) <= NEAR_EF_EV
    diff = (e_pred - e_dft)[near]
    electrons = int(round(dft.info["occupation"]))
    row = {"ribbon": f"{src.parent.name}/{src.name}", "atoms": dft.structure.n_atoms,
           "state": dft.info.get("magnetic_state"), "edge_moments_muB": dft.info.get("edge_moments_muB"),
           "predict_s": seconds, **channel_mae(out, src), "fermi_dft_eV": e_f,
           "bands_near_ef_mae_meV": 1e3 * float(np.abs(diff).mean()),
           "bands_near_ef_max_meV": 1e3 * float(np.abs(diff).max()), "bands_near_ef_count": int(near.sum()),
           "bands_near_ef_offset_meV": 1e3 * float(diff.mean())}
    if row["state"] == "afm":
        row.update(gap_pred_eV=gap(e_pred, electrons), gap_dft_eV=gap(e_dft, electrons))
        row["gap_error_meV"] = 1e3 * (row["gap_pred_eV"] - row["gap_dft_eV"])
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=str(REPO / "models" / "zgnr-magnetic"))
    p.add_argument("--sets", nargs="*", default=[str(REPO / s) for s in DEFAULT_SETS])
    p.add_argument("--work", default=str(REPO / "bench" / "work" / "zgnr-magnetic"))
    p.add_argument("--json", default=str(REPO / "bench" / "results" / "zgnr_magnetic.json"))
    args = p.parse_args()

    def run() -> int:
        from deeph_jax.io import find_structure_dirs
        from deeph_jax.predict.infer import load_predictor

        predictor = load_predictor(args.model)
        rows = []
        for dataset in args.sets:
            for src in sorted(find_structure_dirs(Path(dataset))):
                rows.append(one(src, predictor, Path(args.work)))
                r = rows[-1]
                gap_text = ""
                if "gap_error_meV" in r:
                    gap_text = (f"; gap {r['gap_pred_eV']:.4f} vs DFT {r['gap_dft_eV']:.4f} eV "
                                f"({r['gap_error_meV']:+.1f} meV)")
                print(f"{r['ribbon']} ({r['atoms']} atoms, {r['state']}): H-up MAE {r['h_up_mae_meV']:.2f}, H-down "
                      f"{r['h_down_mae_meV']:.2f} meV; bands within {NEAR_EF_EV:g} eV of E_F: MAE "
                      f"{r['bands_near_ef_mae_meV']:.1f}, max {r['bands_near_ef_max_meV']:.1f} meV{gap_text}",
                      flush=True)
        print(f"wrote {write_result(args.json, {'model': args.model, 'ribbons': rows})}")
        return 0

    return report_user_errors("bench_zgnr_magnetic", run)


if __name__ == "__main__":
    sys.exit(main())
