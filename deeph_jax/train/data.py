"""Training data: DeepH folders -> graphs with target blocks -> fixed-shape sharded batches.

The order of structures is a permutation drawn from (seed, epoch), so step s always sees the
same global batch, whatever the number of devices or hosts and whether the run was resumed.
A global batch of B structures is split into D contiguous shards (D = devices over all hosts),
each padded to the same bucket sizes and stacked on a leading device axis; each host builds
only the shards of its own devices, reading only those structures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from deeph_jax.errors import DeephError
from deeph_jax.graph import (
    DroppedBlocks,
    GraphBatch,
    GraphTargets,
    PairGraph,
    attach_moments,
    batch_graphs,
    build_model_graph,
    dropped_blocks,
    moments_from_info,
    padded_edge_blocks,
    padded_sizes,
)
from deeph_jax.io import OrbitalBasis, find_structure_dirs, read_deeph_dir, read_info


@dataclass(frozen=True, eq=False)
class Sample:
    """One training structure: its graph and DFT blocks on the graph's edges."""

    name: str
    graph: PairGraph
    targets: GraphTargets
    dropped: DroppedBlocks | None = None  # stored blocks beyond the cutoff


def list_structures(roots: str | Path | Sequence[str | Path], max_structures: int | None = None) -> list[Path]:
    roots = [roots] if isinstance(roots, (str, Path)) else list(roots)
    dirs: list[Path] = []
    for root in roots:
        found = find_structure_dirs(root)
        if not found:
            raise DeephError("dataset has no structures (no folder with a POSCAR)", root)
        dirs += found
    return dirs[:max_structures] if max_structures else dirs


def dataset_basis(dirs: Sequence[Path]) -> OrbitalBasis:
    """The union of the structures' orbital maps (an element must have one basis throughout)."""
    basis = OrbitalBasis({})
    for d in dirs:
        basis = basis.merged(OrbitalBasis.from_orbital_map(read_info(d / "info.json")["elements_orbital_map"]), d)
    return basis


def split_structures(dirs: Sequence[Path], val_fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    """A seeded random split; at least one validation structure when there are two or more."""
    order = np.random.default_rng(seed).permutation(len(dirs))
    n_val = int(round(val_fraction * len(dirs)))
    n_val = min(max(n_val, 1 if len(dirs) > 1 and val_fraction > 0 else 0), len(dirs) - 1)
    val = sorted(order[:n_val].tolist())
    train = sorted(order[n_val:].tolist())
    return [dirs[i] for i in train], [dirs[i] for i in val]


def read_split_file(path: str | Path, root: str | Path) -> list[Path]:
    path = Path(path)
    if not path.is_file():
        raise DeephError("split file not found", path)
    names = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    dirs = [Path(root) / n for n in names]
    missing = [str(d) for d in dirs if not (d / "POSCAR").is_file()]
    if missing:
        raise DeephError(f"{len(missing)} listed structure(s) not found, first {missing[0]}", path)
    return dirs


def check_spin(spinful: bool, spin: str, path) -> None:
    """A structure's ``spinful`` (info.json) agrees with ``model.spin``; one DeephError line otherwise."""
    if spinful and spin == "none":
        raise DeephError("spinful Hamiltonian (info.json spinful: true) but model.spin = none: set model.spin "
                         "to soc (spin-orbit) or collinear (magnetic, with magnetic_moments)", path)
    if not spinful and spin != "none":
        raise DeephError(f"spinless Hamiltonian (info.json spinful: false) but model.spin = {spin}: the "
                         f"model predicts spinful H; set model.spin = none", path)


def check_spin_data(dirs: Sequence[Path], spin: str) -> None:
    """Every structure's info.json ``spinful`` agrees with ``model.spin``."""
    for d in dirs:
        check_spin(bool(read_info(d / "info.json").get("spinful", False)), spin, d / "info.json")


COLLINEAR_TOLERANCE_EV = 1e-6  # spin off-diagonal entries of collinear data, and H-up - H-down without moments


def check_collinear_targets(h: np.ndarray, moments: np.ndarray, path) -> None:
    """Collinear training data: no spin off-diagonal blocks, and moments wherever H-up differs from H-down."""
    from deeph_jax.model.spin_blocks import quarters

    uu, ud, du, dd = quarters(h)
    off = float(max(np.abs(ud).max(initial=0.0), np.abs(du).max(initial=0.0)))
    if off > COLLINEAR_TOLERANCE_EV:
        raise DeephError(f"spin off-diagonal blocks (ud, du) up to {off:.3g} eV: not collinear data; use "
                         f"model.spin = soc", path)
    split = float(np.abs(uu - dd).max(initial=0.0))
    if not np.any(moments) and split > COLLINEAR_TOLERANCE_EV:
        raise DeephError(f"H-up and H-down differ by up to {split:.3g} eV but info.json gives no magnetic_moments "
                         f"(nor magnetic_moments_muB; all zero): the model could not tell the two channels apart", path)


def load_sample(path: Path, basis: OrbitalBasis, cutoff: float, width: int,
                long_range_alpha: float | None = None, spin: str = "none", charge_kernel: bool = False) -> Sample:
    """One structure's graph (with the long-range potentials when ``long_range_alpha`` is set, and the dense kernel
    of environment-dependent charges with ``charge_kernel``; the ``magnetic_moments`` of info.json for
    ``spin == "collinear"``) and targets (spinful: (E, 2W, 2W) complex)."""
    from deeph_jax.model.irreps_blocks import model_elements

    data = read_deeph_dir(path)
    check_spin(data.spinful, spin, Path(path) / "info.json")
    try:
        graph = build_model_graph(data.structure, cutoff, model_elements(basis), long_range_alpha, charge_kernel)
    except ValueError as err:
        raise DeephError(str(err), path) from None
    if spin == "collinear":
        graph = attach_moments(graph, moments_from_info(data.info, graph.n_nodes, Path(path) / "info.json"))
    h, present = padded_edge_blocks(graph, data.hamiltonian, basis, width, spinful=data.spinful)
    s, _ = padded_edge_blocks(graph, data.overlap, basis, width)
    if spin == "collinear":
        check_collinear_targets(h, graph.node_moments, Path(path) / "hamiltonian.h5")
    return Sample(str(path), graph, GraphTargets(h, s, present), dropped_blocks(graph, data.hamiltonian, data.overlap))


def dropped_summary(samples, cutoff: float) -> str:
    """One line on the stored blocks the cutoff leaves out of training."""
    reports = [s.dropped for s in samples if s.dropped is not None]
    count = sum(r.count for r in reports)
    total = sum(r.n_blocks for r in reports)
    if count == 0:
        return f"cutoff {cutoff} A covers all {total} stored blocks of {len(reports)} structures"
    max_h = max(r.max_abs_h_eV for r in reports)
    max_s = max(r.max_abs_s for r in reports)
    return (f"cutoff {cutoff} A leaves out {count} of {total} stored blocks in {len(reports)} structures "
            f"(largest |H| {max_h:.3g} eV, |S| {max_s:.3g}): small entries can still move bands")


class SampleCache:
    """Loads structures on first use and keeps them (a host reads only the ones it trains on)."""

    def __init__(self, dirs: Sequence[Path], basis: OrbitalBasis, cutoff: float,
                 long_range_alpha: float | None = None, spin: str = "none", charge_kernel: bool = False):
        self.dirs = list(dirs)
        self.charge_kernel = charge_kernel
        self.basis = basis
        self.cutoff = cutoff
        self.long_range_alpha = long_range_alpha
        self.spin = spin
        self.width = max(basis.n_orbitals(e) for e in basis.elements)
        self._cache: dict[int, Sample] = {}

    def __len__(self) -> int:
        return len(self.dirs)

    def __getitem__(self, i: int) -> Sample:
        if i not in self._cache:
            self._cache[i] = load_sample(self.dirs[i], self.basis, self.cutoff, self.width, self.long_range_alpha,
                                         self.spin, self.charge_kernel)
        return self._cache[i]


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def global_batch_indices(n: int, batch_size: int, seed: int, step: int) -> tuple[np.ndarray, int]:
    """Structure indices of the global batch of ``step`` (0-based), and its epoch.

    Each epoch is ``n // batch_size`` full batches; the remainder of a permutation is dropped so
    every step has the same shape.
    """
    per_epoch = n // batch_size
    if per_epoch == 0:
        raise DeephError(f"batch_size {batch_size} is larger than the {n} training structures")
    epoch, b = divmod(step, per_epoch)
    return epoch_permutation(n, seed, epoch)[b * batch_size : (b + 1) * batch_size], epoch


def shard_batches(samples: Sequence[Sample], n_shards: int, elements, dtype, sizes=None) -> list[GraphBatch]:
    """Split samples into ``n_shards`` contiguous shards padded to one common bucket."""
    if len(samples) % n_shards:
        raise DeephError(f"batch of {len(samples)} structures does not split over {n_shards} devices")
    per = len(samples) // n_shards
    shards = [samples[k * per : (k + 1) * per] for k in range(n_shards)]
    if sizes is None:
        sizes = tuple(np.max([padded_sizes(sum(s.graph.n_nodes for s in sh), sum(s.graph.n_edges for s in sh), per)
                              for sh in shards], axis=0))
    return [batch_graphs([s.graph for s in sh], elements, [s.targets for s in sh], sizes=sizes, dtype=dtype)
            for sh in shards]


def stack_batches(batches: Sequence[GraphBatch]) -> GraphBatch:
    """Stack per-device batches on a new leading axis: (D, ...)."""
    return GraphBatch(*(np.stack(fields) if fields[0] is not None else None for fields in zip(*batches)))
