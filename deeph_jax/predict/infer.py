"""Prediction: a trained model + a structure -> block-sparse H (and S), chunk by chunk.

    predictor = load_predictor("models/water-pbe-def2svp")   # or a run folder runs/<name>/
    H, S, info = predict(structure, predictor)                # BlockSparse in eV, and how S was made

Chunks (see :mod:`deeph_jax.predict.chunks`) go through one compiled function of fixed padded
size, so peak memory follows the graph and the output, not the network's intermediates of the
whole structure. Chunks are spread round-robin over the local devices.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from deeph_jax.errors import DeephError
from deeph_jax.graph import PairGraph, batch_graphs, build_graph
from deeph_jax.io import BlockSparse, OrbitalBasis, Structure
from deeph_jax.predict.bundle import load_bundle
from deeph_jax.predict.chunks import make_chunks, model_hops


@dataclass(eq=False)
class Predictor:
    """A loaded model: config, orbital basis, parameters and training metadata."""

    config: object
    basis: OrbitalBasis
    params: dict
    metadata: dict
    path: Path | None = None
    _apply: Callable | None = field(default=None, repr=False)

    @property
    def elements(self) -> list[str]:
        from deeph_jax.model.irreps_blocks import model_elements

        return model_elements(self.basis)

    @property
    def apply(self):
        if self._apply is None:
            import jax

            from deeph_jax.model.network import HamiltonianNet

            model = HamiltonianNet(self.config, self.basis)
            self._apply = jax.jit(model.apply)
        return self._apply

    def check_elements(self, structure: Structure, path=None) -> None:
        from deeph_jax.predict.compat import check_elements

        check_elements(self.basis, structure.symbols, path)


def load_predictor(path: str | Path) -> Predictor:
    """An inference bundle folder, or a training run folder (its ``model/`` bundle)."""
    path = Path(path)
    if not path.exists():
        raise DeephError("model not found", path)
    bundle = path / "model" if (path / "model" / "model.yaml").is_file() else path
    config, basis, params, metadata = load_bundle(bundle)
    return Predictor(config, basis, params, metadata, bundle)


@dataclass
class PredictStats:
    n_atoms: int = 0
    n_edges: int = 0
    n_chunks: int = 0
    compile_s: float = 0.0
    run_s: float = 0.0
    graph_s: float = 0.0
    overlap: str = ""


def chunk_sizes(chunks) -> tuple[int, int, int]:
    """One padded shape for every chunk: nodes and edges rounded up to a multiple of 256."""
    n = max(c.graph.n_nodes for c in chunks) + 1
    e = max(c.graph.n_edges for c in chunks) + 1
    return int(np.ceil(n / 256) * 256), int(np.ceil(e / 256) * 256), 2


def predict_blocks(graph: PairGraph, predictor: Predictor, chunk_atoms: int | None = 2000,
                   on_chunk: Callable | None = None, progress: bool = False, stats: PredictStats | None = None):
    """Predicted (h, s) padded blocks (E, W, W) for every edge of ``graph`` (float32 unless x64).

    ``chunk_atoms=None`` runs the whole graph at once (the reference the chunks must equal).
    ``on_chunk(edge_ids, h, s)`` receives each chunk's results instead of collecting them.
    """
    import jax

    stats = stats or PredictStats()
    dtype = np.float64 if jax.config.jax_enable_x64 else np.float32
    hops = model_hops(int(predictor.config.num_layers), predictor.config.message_cutoff)
    chunks = make_chunks(graph, hops, chunk_atoms or graph.n_nodes)
    sizes = chunk_sizes(chunks)
    devices = jax.local_devices()
    params = [jax.device_put(predictor.params, d) for d in devices]
    W = max(predictor.basis.n_orbitals(e) for e in predictor.basis.elements)
    h_all = s_all = None
    if on_chunk is None:
        h_all = np.zeros((graph.n_edges, W, W), dtype)
        s_all = np.zeros((graph.n_edges, W, W), dtype)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=graph.n_edges, desc="predict", unit="edge", unit_scale=True)
    pending = []

    def finish(item):
        chunk, h, s = item
        h = np.asarray(h)[chunk.target_sub_edges]
        s = np.asarray(s)[chunk.target_sub_edges]
        if on_chunk is None:
            h_all[chunk.target_edges] = h
            s_all[chunk.target_edges] = s
        else:
            on_chunk(chunk.target_edges, h, s)
        if bar is not None:
            bar.update(len(chunk.target_edges))

    for k, chunk in enumerate(chunks):
        batch = batch_graphs([chunk.graph], predictor.elements, None, sizes=sizes, dtype=dtype)
        d = k % len(devices)
        batch = jax.device_put(batch, devices[d])
        t0 = time.perf_counter()
        h, s = predictor.apply(params[d], batch)
        if k == 0:
            jax.block_until_ready(h)
            stats.compile_s = time.perf_counter() - t0
            t_run = time.perf_counter()
        pending.append((chunk, h, s))
        if len(pending) > len(devices):  # keep every device busy, then collect in order
            finish(pending.pop(0))
    for item in pending:
        finish(item)
    if bar is not None:
        bar.close()
    stats.run_s = time.perf_counter() - t_run if chunks else 0.0
    stats.n_chunks, stats.n_edges, stats.n_atoms = len(chunks), graph.n_edges, graph.n_nodes
    return h_all, s_all


def blocks_to_sparse(graph: PairGraph, padded: np.ndarray, basis: OrbitalBasis, edges=None) -> BlockSparse:
    """(E, W, W) padded blocks of ``edges`` (default all) -> BlockSparse in float64."""
    edges = np.arange(graph.n_edges) if edges is None else np.asarray(edges)
    n_orb = np.asarray([basis.n_orbitals(s) for s in graph.symbols])
    a, b = n_orb[graph.senders[edges]], n_orb[graph.receivers[edges]]
    shapes = np.stack([a, b], axis=1)
    mask = (np.arange(padded.shape[1])[None, :, None] < a[:, None, None]) & \
           (np.arange(padded.shape[2])[None, None, :] < b[:, None, None])
    entries = padded.astype(np.float64)[mask]  # row-major per block, blocks in edge order
    return BlockSparse.from_arrays(graph.atom_pairs[edges], shapes, entries)


def overlap_source(predictor: Predictor) -> str | None:
    """The PySCF basis name for exact overlaps, when the training data name one PySCF knows."""
    from deeph_jax.predict.overlap import basis_matches

    name = predictor.metadata.get("basis")
    return name if name and basis_matches(name, predictor.basis) else None


def predict(structure: Structure, predictor: Predictor, chunk_atoms: int | None = 2000, exact_overlap: bool = True,
            progress: bool = False, stats: PredictStats | None = None):
    """-> (H BlockSparse in eV, S BlockSparse, stats). S is exact from PySCF when possible."""
    from deeph_jax.io import validate_structure

    validate_structure(structure)
    predictor.check_elements(structure)
    stats = stats or PredictStats()
    t0 = time.perf_counter()
    graph = build_graph(structure, predictor.config.cutoff)
    stats.graph_s = time.perf_counter() - t0
    h, s = predict_blocks(graph, predictor, chunk_atoms, progress=progress, stats=stats)
    H = blocks_to_sparse(graph, h, predictor.basis)
    name = overlap_source(predictor) if exact_overlap else None
    if name:
        from deeph_jax.predict.overlap import exact_overlap as exact

        S = exact(graph, name, predictor.basis)
        stats.overlap = f"exact, PySCF integrals of basis {name}"
    else:
        S = blocks_to_sparse(graph, s, predictor.basis)
        stats.overlap = "predicted by the network's S head"
    return H, S, stats
