"""Where the band error of predicted hBN comes from (issue 15, "measure first"); run by hand.

    python bench/diagnose_hbn_errors.py [--model models/hbn-szv] [--dataset datasets/hbn-szv/large-4x4]
                                        [--out runs/diagnose-hbn] [--json bench/results/diagnose_hbn_errors.json]

For each DFT cell: predict H, then build two hybrids, predicted hoppings with the DFT on-site blocks
(i, i, R=0) and DFT hoppings with the predicted on-site blocks, and compare the bands of all four
Hamiltonians (DFT, predicted, the two hybrids; same exact S) with DFT's at the supercell's Gamma, M, K and
one generic k-point: the mean |E - E_DFT| over eigenvalues within 3 eV of the DFT Fermi level, absolute and
after removing the mean offset. The band edges (on a 6 x 6 mesh of the supercell's zone): how far each moves,
split to first order into on-site blocks and hoppings (these by distance), and the atoms its state sits on;
the mean error of the pz-pz (pi) hoppings per element pair and neighbour shell.
Then the on-site residuals (predicted - DFT, the s diagonal and the mean p diagonal) and the DFT on-site
energies themselves (minus each element's mean), correlated per element with the Ewald potential of fixed
point charges +1 (B) / -1 (N) at the rattled positions in the DFT cell, and the residuals with its long-range
(erf) part alone.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.linalg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run this checkout, not another installed copy
KPOINTS = np.array([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [1 / 3, 1 / 3, 0.0], [0.137, 0.291, 0.0]])
WINDOW_EV = 3.0
LONG_RANGE_ALPHA = 0.3  # 1/A: the erf part of the potential, beyond what a 3.5 A message radius sees
EDGE_MESH = 6  # k-points per periodic direction on which the band edges are looked for
EDGE_SHELLS_A = (0.0, 2.0, 3.2, 5.0, 8.0, 20.0)  # hopping distances: first, second + third neighbours, ...
BIAS_SHELLS_A = (0.0, 2.0, 2.7, 3.2, 4.1, 4.7, 5.3, 6.5, 8.0, 20.0)  # hBN's neighbour shells, then wider bins


def with_onsite_from(target, source):
    """``target`` with its on-site blocks (i, i, R=0) replaced by those of ``source`` (BlockSparse)."""
    from deeph_jax.io import BlockSparse

    blocks = {}
    for key, block in target.blocks():
        onsite = key[3] == key[4] and key[:3] == (0, 0, 0)
        blocks[key] = np.array(source.get(key[:3], key[3], key[4]) if onsite else block)
    return BlockSparse.from_blocks(blocks)


def eigenvalues(data, hamiltonian) -> np.ndarray:
    offsets = data.atom_offsets
    out = []
    for k in KPOINTS:
        h = hamiltonian.bloch_dense(k, offsets)
        s = data.overlap.bloch_dense(k, offsets)
        out.append(scipy.linalg.eigh(h, s, eigvals_only=True))
    return np.asarray(out)


def band_errors(e: np.ndarray, ref: np.ndarray, fermi: float) -> dict:
    mask = np.abs(ref - fermi) <= WINDOW_EV
    diff = (e - ref)[mask]
    return {"abs_meV": 1e3 * float(np.abs(diff).mean()), "offset_meV": 1e3 * float(diff.mean()),
            "after_offset_meV": 1e3 * float(np.abs(diff - diff.mean()).mean()), "n": int(mask.sum())}


def onsite_diagonals(data, matrix) -> tuple[np.ndarray, np.ndarray]:
    """Per atom: the s on-site energy and the mean of the p diagonal (eV); gth-szv B, N have s + p."""
    s, p = [], []
    for i in range(data.structure.n_atoms):
        d = np.diag(matrix.get((0, 0, 0), i, i))
        s.append(d[0])
        p.append(d[1:4].mean())
    return np.asarray(s), np.asarray(p)


def correlations(values: np.ndarray, phi: np.ndarray, symbols) -> dict:
    out = {}
    for el in sorted(set(symbols)):
        m = np.asarray(symbols) == el
        v, f = values[m] - values[m].mean(), phi[m] - phi[m].mean()
        out[el] = {"pearson": float(np.corrcoef(v, f)[0, 1]), "std_meV": 1e3 * float(v.std()),
                   "slope_e_per_V": float(np.dot(v, f) / np.dot(f, f))}
    return out


def hopping_shells(data, pred) -> list:
    """(label, dH) per shell of :data:`EDGE_SHELLS_A`: predicted - DFT, the hoppings (all but on-site blocks)
    whose atoms lie that far apart (BlockSparse)."""
    from deeph_jax.io import BlockSparse

    pos, cell = data.structure.positions, data.structure.cell
    blocks = {}
    for key, block in data.hamiltonian.blocks():
        R, i, j = np.asarray(key[:3]), key[3], key[4]
        blocks[key] = (np.linalg.norm(pos[j] + R @ cell - pos[i]), pred.get(key[:3], i, j) - block)
    shells = []
    for lo, hi in zip(EDGE_SHELLS_A[:-1], EDGE_SHELLS_A[1:]):
        picked = {key: b for key, (d, b) in blocks.items() if lo < d <= hi and d > 1e-6}
        shells.append((f"{lo:g}-{hi:g} A", BlockSparse.from_blocks(picked)))
    return shells


def pi_hopping_bias(data, pred) -> dict:
    """Per element pair and distance shell of :data:`BIAS_SHELLS_A`: the mean and the mean |.| of predicted -
    DFT pz-pz hoppings (meV; entry (2, 2) of a gth-szv s, p(m = -1, 0, 1) block), with DFT's mean value. The pi
    bands near E_F are made of these; a bias common to a shell shifts them coherently, where noise averages."""
    pos, cell, symbols = data.structure.positions, data.structure.cell, data.structure.symbols
    rows: dict = {}
    for key, block in data.hamiltonian.blocks():
        R, i, j = np.asarray(key[:3]), key[3], key[4]
        d = np.linalg.norm(pos[j] + R @ cell - pos[i])
        if d < 1e-6 or symbols[i] > symbols[j]:  # on-site blocks; each unordered element pair once
            continue
        shell = int(np.searchsorted(BIAS_SHELLS_A, d)) - 1
        rows.setdefault((symbols[i] + symbols[j], shell), []).append((pred.get(key[:3], i, j)[2, 2] - block[2, 2],
                                                                      block[2, 2]))
    out = {}
    for (pair, shell), v in sorted(rows.items()):
        v = 1e3 * np.asarray(v)
        label = f"{pair} {BIAS_SHELLS_A[shell]:g}-{BIAS_SHELLS_A[shell + 1]:g} A"
        out[label] = {"n": len(v), "dft_mean_meV": float(v[:, 1].mean()), "bias_meV": float(v[:, 0].mean()),
                      "mae_meV": float(np.abs(v[:, 0]).mean())}
    return out


def band_edges(data, pred, mesh: int = EDGE_MESH) -> dict:
    """The DFT valence and conduction band edges on a mesh x mesh grid of the supercell's Brillouin zone, and
    what moves them in the predicted H: the exact shift, and to first order <psi|dH|psi> split into on-site
    blocks and hoppings (same exact S); with the atoms that hold most of each edge state (Mulliken weight) and
    the on-site part on each. In rattled cells the edge states sit on the most distorted sites."""
    offsets = data.atom_offsets
    n_occ = int(round(data.info["occupation"])) // 2
    onsite_only = with_onsite_from(data.hamiltonian, pred)
    shells = hopping_shells(data, pred)
    edges = {}
    for k in [np.array([i / mesh, j / mesh, 0.0]) for i in range(mesh) for j in range(mesh)]:
        h = data.hamiltonian.bloch_dense(k, offsets)
        s = data.overlap.bloch_dense(k, offsets)
        e, v = scipy.linalg.eigh(h, s)
        for name, n, sign in (("valence", n_occ - 1, 1.0), ("conduction", n_occ, -1.0)):
            if name in edges and sign * e[n] <= sign * edges[name]["dft_eV"]:
                continue
            h_pred = pred.bloch_dense(k, offsets)
            d_on = onsite_only.bloch_dense(k, offsets) - h
            psi = v[:, n]
            weight = np.add.reduceat(np.real(psi.conj() * (s @ psi)), offsets[:-1])
            per_atom = [float(np.real(psi[a:b].conj() @ d_on[a:b, a:b] @ psi[a:b]))
                        for a, b in zip(offsets[:-1], offsets[1:])]
            first = float(np.real(psi.conj() @ (h_pred - h) @ psi))
            onsite = float(np.real(psi.conj() @ d_on @ psi))
            top = np.argsort(-weight)[:3]
            edges[name] = {
                "k": k.tolist(), "dft_eV": float(e[n]),
                "shift_meV": 1e3 * float(scipy.linalg.eigh(h_pred, s, eigvals_only=True)[n] - e[n]),
                "first_order_meV": 1e3 * first, "onsite_meV": 1e3 * onsite, "hoppings_meV": 1e3 * (first - onsite),
                "hoppings_by_distance_meV": {label: 1e3 * float(np.real(psi.conj() @ dh.bloch_dense(k, offsets) @ psi))
                                             for label, dh in shells},
                "top_atoms": [{"atom": int(i), "element": data.structure.symbols[i], "weight": float(weight[i]),
                               "onsite_meV": 1e3 * per_atom[i]} for i in top]}
    return edges


def diagnose(src: Path, predictor, out: Path) -> dict:
    from deeph_jax.io import read_deeph_dir
    from deeph_jax.physics.ewald import ewald_potential, long_range_kernel
    from deeph_jax.predict.run import predict_to_folder

    dft = read_deeph_dir(src)
    predict_to_folder(dft.structure, predictor, out, progress=False)
    pred = read_deeph_dir(out, hamiltonian="hamiltonian_pred.h5").hamiltonian
    h_dft = dft.hamiltonian
    variants = {"predicted": pred, "predicted hoppings + DFT on-site": with_onsite_from(pred, h_dft),
                "DFT hoppings + predicted on-site": with_onsite_from(h_dft, pred)}
    ref = eigenvalues(dft, h_dft)
    fermi = float(dft.fermi_energy_eV)
    bands = {name: band_errors(eigenvalues(dft, h), ref, fermi) for name, h in variants.items()}
    symbols = dft.structure.symbols
    q = np.where(np.asarray(symbols) == "B", 1.0, -1.0)
    phi = ewald_potential(dft.structure.positions, dft.structure.cell, q)
    phi_long = long_range_kernel(dft.structure.positions, dft.structure.cell, LONG_RANGE_ALPHA) @ q
    s_dft, p_dft = onsite_diagonals(dft, h_dft)
    s_pred, p_pred = onsite_diagonals(dft, pred)
    return {
        "sid": src.name, "atoms": dft.structure.n_atoms, "bands": bands,
        "dft_onsite_vs_phi": {"s": correlations(s_dft, phi, symbols), "p": correlations(p_dft, phi, symbols)},
        "residual_vs_phi": {"s": correlations(s_pred - s_dft, phi, symbols),
                            "p": correlations(p_pred - p_dft, phi, symbols)},
        "residual_vs_phi_long": {"s": correlations(s_pred - s_dft, phi_long, symbols),
                                 "p": correlations(p_pred - p_dft, phi_long, symbols)},
        "residual_rms_meV": {"s": 1e3 * float(np.sqrt(np.mean((s_pred - s_dft) ** 2))),
                             "p": 1e3 * float(np.sqrt(np.mean((p_pred - p_dft) ** 2)))},
        "band_edges": band_edges(dft, pred),
        "pi_hopping_bias": pi_hopping_bias(dft, pred),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO / "models" / "hbn-szv"))
    parser.add_argument("--dataset", default=str(REPO / "datasets" / "hbn-szv" / "large-4x4"))
    parser.add_argument("--out", default="runs/diagnose-hbn")
    parser.add_argument("--json", default=None, help="also write the results here (e.g. bench/results/...)")
    args = parser.parse_args()

    from deeph_jax.io import find_structure_dirs
    from deeph_jax.predict.infer import load_predictor

    predictor = load_predictor(args.model)
    rows = [diagnose(src, predictor, Path(args.out) / src.name) for src in find_structure_dirs(Path(args.dataset))]
    for r in rows:
        print(f"{r['sid']} ({r['atoms']} atoms): band error within {WINDOW_EV:g} eV of E_F, meV "
              f"(absolute / mean offset / after removing it)")
        for name, b in r["bands"].items():
            print(f"  {name:34s} {b['abs_meV']:8.1f} {b['offset_meV']:+8.1f} {b['after_offset_meV']:8.1f}")
        for what in ("dft_onsite_vs_phi", "residual_vs_phi", "residual_vs_phi_long"):
            text = ", ".join(f"{orb} {el}: r = {c['pearson']:+.2f} (std {c['std_meV']:.0f} meV)"
                             for orb, per in r[what].items() for el, c in per.items())
            print(f"  {what}: {text}")
        print(f"  on-site residual rms: s {r['residual_rms_meV']['s']:.0f} meV, p {r['residual_rms_meV']['p']:.0f} meV")
        for name, e in r["band_edges"].items():
            atoms = ", ".join(f"{a['element']}{a['atom']} w {a['weight']:.2f} ({a['onsite_meV']:+.0f})"
                              for a in e["top_atoms"])
            print(f"  {name} edge {e['dft_eV']:.3f} eV: moved {e['shift_meV']:+.1f} meV; first order "
                  f"{e['first_order_meV']:+.1f} = on-site {e['onsite_meV']:+.1f} + hoppings {e['hoppings_meV']:+.1f}; "
                  f"on {atoms}")
            print("    hoppings by distance: " + ", ".join(f"{label} {v:+.1f}" for label, v in
                                                         e["hoppings_by_distance_meV"].items()))
        print("  pz-pz hoppings, predicted - DFT (meV): " + "; ".join(
            f"{label} {b['bias_meV']:+.1f} (|.| {b['mae_meV']:.1f}, DFT {b['dft_mean_meV']:+.0f})"
            for label, b in r["pi_hopping_bias"].items() if b["n"] >= 4))
    record = {"command": "python bench/diagnose_hbn_errors.py " + " ".join(
        f"--{k} {v}" for k, v in vars(args).items() if v is not None), "date": time.strftime("%Y-%m-%d"),
        "model": args.model, "dataset": args.dataset, "kpoints": KPOINTS.tolist(), "rows": rows}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    text = json.dumps(record, indent=1, default=float)
    (Path(args.out) / "results.json").write_text(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text)


if __name__ == "__main__":
    main()
