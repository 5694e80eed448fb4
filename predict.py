"""Predict DFT Hamiltonians (and overlaps) with a trained model; writes DeepH folders.

    python predict.py --checkpoint models/water-pbe-def2svp --structure water.xyz --out pred/
    python predict.py --checkpoint runs/demo --dataset datasets/water-pbe-def2svp-test --out pred/
    python predict.py --list-models

    python predict.py --checkpoint runs/fe-collinear --structure fe.cif --magnetic-moments=2.2,-2.2 --out pred/

--checkpoint is an inference bundle (models/<name>/) or a training run folder (runs/<name>/).
Output per structure: POSCAR, info.json, hamiltonian_pred.h5 (eV) and overlap.h5 (exact from
PySCF integrals when the training data name a basis PySCF knows, else the network's S).
Spinful models (model.spin soc or collinear) write complex (2a, 2b) H blocks and spinful: true;
a collinear one takes the magnetic configuration from --magnetic-moments (with --structure) or from each
structure's info.json magnetic_moments (with --dataset); zero where none is given.
"""

import argparse
import json
import sys
from pathlib import Path

from deeph_jax.errors import DeephError, report_user_errors

MODELS = Path(__file__).resolve().parent / "models"


def read_metadata(path: Path) -> dict:
    """A bundle's metadata.json; a missing or damaged one is one DeephError line."""
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise DeephError("file not found (every bundle has one)", path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DeephError(f"not valid JSON ({exc})", path) from None
    if not isinstance(meta, dict):
        raise DeephError("expected a JSON object", path)
    return meta


def list_models() -> int:
    found = sorted(p.parent for p in MODELS.glob("*/model.yaml"))
    if not found:
        print(f"no models in {MODELS}")
        return 0
    for path in found:
        meta = read_metadata(path / "metadata.json")
        print(f"{path.name}")
        for key in ("description", "training_data", "n_train", "basis", "xc", "test_data", "n_test", "test_mae_meV",
                    "test_mae_uHa", "val_mae_meV", "trained"):
            if key in meta:
                value = meta[key]
                print(f"  {key:<14} {f'{value:.4g}' if isinstance(value, float) else value}")
    return 0


def _predict(args) -> int:
    from deeph_jax.graph import parse_moments
    from deeph_jax.io import load_structure
    from deeph_jax.predict.infer import load_predictor
    from deeph_jax.predict.run import predict_dataset, predict_to_folder

    predictor = load_predictor(args.checkpoint)
    out = Path(args.out)
    if args.structure:
        structure = load_structure(args.structure, molecule=args.molecule or None)
        predictor.check_elements(structure, args.structure)
        moments = parse_moments(args.magnetic_moments, structure.n_atoms) if args.magnetic_moments else None
        stats = predict_to_folder(structure, predictor, out, args.chunk_atoms, not args.network_overlap,
                                  moments=moments)
        print(f"{stats.n_atoms} atoms, {stats.n_edges} blocks in {stats.n_chunks} chunk(s): graph "
              f"{stats.graph_s:.2f} s, compile {stats.compile_s:.2f} s, run {stats.run_s:.2f} s; S {stats.overlap}")
        print(f"wrote {out}/ (POSCAR, info.json, hamiltonian_pred.h5, overlap.h5)")
    else:
        if args.magnetic_moments:
            raise DeephError("--magnetic-moments goes with --structure; a dataset's structures give theirs as "
                             "magnetic_moments in info.json", "predict.py")
        results = predict_dataset(Path(args.dataset), predictor, out, args.chunk_atoms, not args.network_overlap)
        maes = [m for _, m in results if m is not None]
        for sid, mae in results:
            print(f"{sid:<30} " + (f"MAE {1e3 * mae:.3f} meV" if mae is not None else "(no DFT hamiltonian.h5)"))
        if maes:
            print(f"overall MAE over {len(maes)} structures: {1e3 * sum(maes) / len(maes):.3f} meV")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="inference bundle folder or training run folder")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--structure", help="structure file: POSCAR, CIF, xyz, extxyz, anything ase reads (Angstrom)")
    src.add_argument("--dataset", help="DeepH dataset folder: predict every structure (found by its POSCAR)")
    p.add_argument("--out", default="predictions", help="output folder (default: predictions/)")
    p.add_argument("--molecule", action="store_true", help="treat --structure as a molecule (no periodic images)")
    p.add_argument("--chunk-atoms", type=int, default=2000,
                   help="centre atoms per inference chunk; bounds memory (default 2000)")
    p.add_argument("--network-overlap", action="store_true", help="use the network's S even when exact S is possible")
    p.add_argument("--magnetic-moments", metavar="M1,M2,...|FILE",
                   help="collinear-spin models: signed magnetic moment of each atom (structure order), as a comma "
                        "list or a file of numbers; default zero. Write --magnetic-moments=-2,2 when the list "
                        "starts with a minus sign")
    p.add_argument("--list-models", action="store_true", help="list the shipped models with their test errors")
    args = p.parse_args(argv)
    from deeph_jax.runtime import enable_compilation_cache

    enable_compilation_cache()
    if args.list_models:
        return report_user_errors("predict.py", list_models)
    if not args.checkpoint or not (args.structure or args.dataset):
        p.error("--checkpoint and one of --structure / --dataset are required")
    return report_user_errors("predict.py", lambda: _predict(args))


if __name__ == "__main__":
    sys.exit(main())
