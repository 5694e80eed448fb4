"""The main job: train -> predict -> physics on the shipped DFT data, with a closing table.

Stages (each timed):
1. inspect  the shipped water set (PySCF PBE/def2-SVP);
2. train    configs/demo.yaml: fine-tunes the shipped water model when it exists (else from scratch);
3. predict  held-out water molecules (a set generated with another seed) -> MAE;
4. dipoles  from predicted and DFT H with exact position integrals -> dipole error (Debye);
5. crystal  when a shipped hBN model and larger DFT cell exist: predict the larger cell, bands and
            DOS with DFT and predicted overlaid, band error near E_F.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from deeph_jax.errors import DeephError
from deeph_jax.io.atomic import write_text_atomic
from deeph_jax.units import E_ANGSTROM_TO_DEBYE, EV_TO_MICROHARTREE

REPO = Path(__file__).resolve().parents[2]


class Stages:
    """The closing table (one row per stage) and its numbers for ``summary.json``."""

    def __init__(self):
        self.rows: list[tuple[str, str, float]] = []
        self.metrics: dict[str, dict] = {}

    def add(self, name: str, result: str, seconds: float, **metrics) -> None:
        self.rows.append((name, result, seconds))
        self.metrics[name] = {"result": result, "wall_s": round(seconds, 2), **metrics}
        print(f"[{name}] {result} ({seconds:.1f} s)", flush=True)

    def write(self, path: Path) -> None:
        write_text_atomic(path, json.dumps(self.metrics, indent=2) + "\n")

    def table(self) -> str:
        width = max(len(r[1]) for r in self.rows)
        lines = [f"{'stage':<9} {'result':<{width}} {'wall s':>7}"]
        lines += [f"{n:<9} {r:<{width}} {s:>7.1f}" for n, r, s in self.rows]
        return "\n".join(lines)


def run_demo(dataset: Path, out: Path, steps: int | None = None, n_test: int = 10, crystal: bool = True) -> int:
    from deeph_jax.io import find_structure_dirs, read_deeph_dir
    from deeph_jax.io.inspect import summarize_dataset
    from deeph_jax.physics.dipole import molecular_dipole
    from deeph_jax.predict.infer import load_predictor
    from deeph_jax.predict.run import block_mae, predict_to_folder
    from deeph_jax.train.config import load_config
    from deeph_jax.train.loop import train

    stages = Stages()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    summary = summarize_dataset(dataset)
    stages.add("inspect", f"{summary.n_structures} structures, elements {', '.join(summary.basis.elements)}",
               time.perf_counter() - t0, structures=summary.n_structures)

    # -- train ------------------------------------------------------------------------------------
    overrides = [f"data.train={dataset}"]
    val_root = dataset.parent / f"{dataset.name}-val"
    if val_root.is_dir():
        # Validation on molecules outside the training set (a split of it would score structures the
        # shipped model was trained on).
        overrides.append(f"data.val={val_root}")
    shipped = REPO / "models" / "water-pbe-def2svp"
    if (shipped / "model.yaml").is_file():
        # Fine-tuning: a tenth of the from-scratch learning rate keeps the shipped accuracy.
        overrides += [f"train.init_from={shipped}", "train.lr=5.0e-4", "train.warmup_steps=10"]
    if steps is not None:
        overrides += [f"train.steps={steps}", f"train.eval_every={steps}", f"train.checkpoint_every={steps}"]
    config = load_config(REPO / "configs" / "demo.yaml", overrides)
    run_dir = out / "run"
    t0 = time.perf_counter()
    result = train(config, run_dir, overwrite=True)  # the demo's own folder: a rerun replaces it
    how = "fine-tuned shipped model" if config["train"]["init_from"] else "from scratch"
    stages.add("train", f"{result['steps']} steps ({how}), validation MAE {1e3 * result['best_val_mae_eV']:.2f} meV",
               time.perf_counter() - t0, steps=result["steps"], val_mae_meV=1e3 * result["best_val_mae_eV"])

    # -- predict held-out water -------------------------------------------------------------------
    test_root = dataset.parent / f"{dataset.name}-test"
    test_dirs = find_structure_dirs(test_root)[:n_test] if test_root.is_dir() else []
    if not test_dirs:
        raise DeephError("no held-out test structures (expected a sibling folder '<dataset>-test')", test_root)
    predictor = load_predictor(run_dir)
    t0 = time.perf_counter()
    maes, dip_err, dip_ref = [], [], []
    from tqdm import tqdm

    for d in tqdm(test_dirs, desc="predict water", unit="structure"):
        target = out / "water" / d.name
        predict_to_folder(read_deeph_dir(d, hamiltonian=None).structure.as_molecule(), predictor, target,
                          progress=False)
        maes.append(block_mae(target, d)[0])
        pred = read_deeph_dir(target, hamiltonian="hamiltonian_pred.h5")
        dft = read_deeph_dir(d)
        pred.info["occupation"] = dft.occupation
        mu_pred, _ = molecular_dipole(pred)
        mu_dft, _ = molecular_dipole(dft)
        dip_err.append(np.linalg.norm(mu_pred - mu_dft) * E_ANGSTROM_TO_DEBYE)
        dip_ref.append(np.linalg.norm(mu_dft) * E_ANGSTROM_TO_DEBYE)
    mae = float(np.mean(maes))
    stages.add("predict", f"{len(test_dirs)} held-out water: H MAE {1e3 * mae:.2f} meV = "
               f"{EV_TO_MICROHARTREE * mae:.1f} uHa", time.perf_counter() - t0,
               structures=len(test_dirs), mae_meV=1e3 * mae, mae_uHa=EV_TO_MICROHARTREE * mae)
    stages.add("dipoles", f"|mu_pred - mu_DFT| mean {np.mean(dip_err):.4f} Debye (|mu_DFT| ~ {np.mean(dip_ref):.2f} D)", 0.0,
               dipole_error_debye=float(np.mean(dip_err)))

    if crystal:
        run_crystal(out, stages)
    stages.write(out / "summary.json")
    print()
    print(stages.table())
    print(f"\noutputs in {out}/: run/ (metrics.csv, plots/*.png, breakdown.txt, model/), water/<sid>/ "
          f"(hamiltonian_pred.h5, overlap.h5)" + (", crystal/ (bands, DOS)" if crystal else "") + ", summary.json")
    return 0


def predict_crystal_against_dft(src: Path, predictor, target: Path, bar=None) -> tuple[object, float, dict]:
    """Predict the DFT folder ``src`` into ``target`` (with the DFT hamiltonian.h5 beside it for
    overlays); return its structure, the H MAE (eV) and the bands result (predicted vs DFT)."""
    import shutil

    from deeph_jax.io import read_deeph_dir
    from deeph_jax.physics.workflows import run_bands
    from deeph_jax.predict.run import block_mae, predict_to_folder

    structure = read_deeph_dir(src, hamiltonian=None).structure
    predict_to_folder(structure, predictor, target, progress=False)
    shutil.copy(src / "hamiltonian.h5", target / "hamiltonian.h5")
    mae = block_mae(target, src)[0]
    if bar is not None:
        bar.update()
    return structure, mae, run_bands(target, hamiltonian="pred", out=target / "bands.h5")


def _training_cells(model: Path) -> str:
    """'8- and 18-atom cells' from the model's metadata (``training_atoms``), for the summary line."""
    import json

    sizes = json.loads((model / "metadata.json").read_text()).get("training_atoms") or []
    if not sizes:
        return "smaller cells"
    words = [f"{n}" for n in sorted(sizes)]
    return (", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else words[0]) + "-atom cells"


def run_crystal(out: Path, stages: Stages) -> None:
    """Predict a shipped larger hBN cell with the shipped hBN model; bands and DOS vs DFT."""
    from deeph_jax.io import find_structure_dirs
    from deeph_jax.predict.infer import load_predictor

    model = REPO / "models" / "hbn-szv"
    # a cell of the test set (seed 1000): never seen in training nor used for any design decision
    test_set = REPO / "datasets" / "hbn-szv" / "test-4x4"
    large = sorted(find_structure_dirs(test_set)) if test_set.is_dir() else []
    if not (model / "model.yaml").is_file() or not large:
        stages.add("crystal", "skipped: shipped hBN model or larger DFT cell not available yet", 0.0)
        return
    from tqdm import tqdm

    from deeph_jax.physics.workflows import run_dos

    t0 = time.perf_counter()
    target = out / "crystal"
    with tqdm(total=3, desc="crystal: predict, bands, DOS", unit="step") as bar:
        structure, mae, bands = predict_crystal_against_dft(large[0], load_predictor(model), target, bar)
        bar.update()
        run_dos(target, kmesh=(6, 6, 1), hamiltonian="pred")
        bar.update()
    n_atoms = structure.n_atoms
    near, worst = 1e3 * bands["band_mae_near_fermi_eV"], 1e3 * bands["band_max_near_fermi_eV"]
    gaps = (bands.get("gap_dft_eV"), bands.get("gap_eV"))
    gap_text = f", gap {gaps[1]:.2f} eV (DFT {gaps[0]:.2f})" if None not in gaps else ""
    trained_on = _training_cells(model)
    stages.add("crystal", f"unseen {n_atoms}-atom hBN (trained on {trained_on}): H MAE {1e3 * mae:.2f} meV = "
               f"{EV_TO_MICROHARTREE * mae:.1f} uHa, band error within {bands['fermi_window_eV']:g} eV of E_F "
               f"{near:.1f} meV (max {worst:.1f}){gap_text}", time.perf_counter() - t0,
               atoms=n_atoms, mae_meV=1e3 * mae, band_mae_near_fermi_meV=near, band_max_near_fermi_meV=worst,
               gap_dft_eV=gaps[0], gap_pred_eV=gaps[1])
