"""Sub-command ``demo``: the README's main job."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATASET = REPO / "datasets" / "water-pbe-def2svp"


def _demo(args) -> int:
    from deeph_jax.pipeline.demo import run_demo

    return run_demo(Path(args.dataset), Path(args.out), steps=args.steps, n_test=args.n_test,
                    crystal=not args.no_crystal)


def register(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="the main job on the shipped data: train -> predict -> physics (the README's first command)",
        description=(
            "The DeepH workflow on the shipped PySCF data: train (fine-tune) on water PBE/def2-SVP, predict H "
            "of held-out molecules (MAE in meV and micro-Hartree), their dipoles (Debye) from predicted and DFT "
            "H, and, when the shipped hBN model and larger cell exist, bands and DOS of the crystal. Ends with a "
            "table of results and wall times."
        ),
    )
    p.add_argument("--dataset", default=str(DEFAULT_DATASET), help="DeepH water dataset (default: the shipped one)")
    p.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: configs/demo.yaml)")
    p.add_argument("--n-test", type=int, default=10, help="held-out structures to predict")
    p.add_argument("--no-crystal", action="store_true", help="skip the crystal stage")
    p.set_defaults(func=_demo)
