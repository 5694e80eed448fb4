"""Sub-command ``demo``: the README's main job."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATASET = REPO / "datasets" / "water-pbe-def2svp"


def _demo(args) -> int:
    from deeph_jax.pipeline.demo import run_demo

    return run_demo(Path(args.dataset), Path(args.out), cutoff=args.cutoff)


def register(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="the main job on the shipped data (what the README's first command runs)",
        description=(
            "Run the DeepH workflow on the shipped PySCF water dataset: dataset summary, pair graphs "
            "(cutoff in Angstrom) and padded batches. Later stages (train, predict, physics) join as they land."
        ),
    )
    p.add_argument("--dataset", default=str(DEFAULT_DATASET), help="DeepH dataset folder (default: shipped water set)")
    p.add_argument("--out", default="runs/demo", help="output folder")
    p.add_argument("--cutoff", type=float, default=6.0, help="pair-graph cutoff radius in Angstrom")
    p.set_defaults(func=_demo)
