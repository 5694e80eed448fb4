"""How much of a crystal model's H error is one energy shift per structure (run by hand; issue 15).

    python bench/diagnose_potential_shift.py models/hbn-szv datasets/hbn-szv/large-4x4/0000{0,1,2} \\
        datasets/hbn-szv/train-2x2/0000{0,1,2,3} datasets/hbn-szv/train-3x3/0000{0,1,2}

A periodic DFT fixes its energy zero by the cell's mean potential, so H may differ between structures by c S. For
each folder: predict H, fit the c that minimizes |H_pred - H_dft - c S| over all entries, and print the MAE (meV) of
all, on-site and nearest-neighbour (< 2.5 A) entries before and after removing c S.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deeph_jax.io import HAMILTONIAN_PRED, read_deeph_dir  # noqa: E402
from deeph_jax.predict.infer import load_predictor  # noqa: E402
from deeph_jax.predict.run import predict_to_folder  # noqa: E402

NEAR_A = 2.5


def shift_split(src: Path, pred_dir: Path) -> str:
    dft = read_deeph_dir(src)
    pred = read_deeph_dir(pred_dir, hamiltonian=HAMILTONIAN_PRED, overlap=False).hamiltonian
    pos, cell = dft.structure.positions, dft.structure.cell
    dh, s, onsite, length = [], [], [], []
    for key, block in dft.hamiltonian.blocks():
        other = pred.get(key[:3], key[3], key[4])
        if other is None:
            continue
        dh.append((other - block).ravel())
        s.append(dft.overlap.get(key[:3], key[3], key[4]).ravel())
        onsite.append(np.full(block.size, key[3] == key[4] and key[:3] == (0, 0, 0)))
        length.append(np.full(block.size, np.linalg.norm(pos[key[4]] + np.array(key[:3]) @ cell - pos[key[3]])))
    dh, s, onsite, length = map(np.concatenate, (dh, s, onsite, length))
    c = float(dh @ s / (s @ s))
    near = ~onsite & (length < NEAR_A)

    def maes(x):
        return "/".join(f"{1e3 * np.abs(x[m]).mean():.2f}" for m in (slice(None), onsite, near))

    return (f"{src.parent.name}/{src.name} ({len(pos)} atoms): c = {1e3 * c:+.2f} meV; MAE all/on-site/near, meV: "
            f"{maes(dh)} before, {maes(dh - c * s)} after")


def main() -> None:
    predictor = load_predictor(Path(sys.argv[1]))
    with tempfile.TemporaryDirectory() as tmp:
        for k, folder in enumerate(map(Path, sys.argv[2:])):
            structure = read_deeph_dir(folder, hamiltonian=None, overlap=False).structure
            predict_to_folder(structure, predictor, Path(tmp) / str(k), progress=False)
            print(shift_split(folder, Path(tmp) / str(k)), flush=True)


if __name__ == "__main__":
    main()
