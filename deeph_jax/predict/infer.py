"""Prediction: a trained model + a structure -> block-sparse H (and S), chunk by chunk.

    predictor = load_predictor("models/water-pbe-def2svp")   # or a run folder runs/<name>/
    H, S, info = predict(structure, predictor)                # BlockSparse in eV, and how S was made

A spinful model (``config.spin`` soc or collinear) gives complex (2a, 2b) H blocks; a collinear one takes
the magnetic configuration as ``moments`` (a signed moment per atom; zero when not given).

Chunks (see :mod:`deeph_jax.predict.chunks`) go through one compiled function of fixed padded
size, so peak memory follows the graph and the output, not the network's intermediates of the
whole structure. Chunks are spread round-robin over the local devices.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from deeph_jax.errors import DeephError
from deeph_jax.graph import PairGraph, batch_graphs, build_model_graph
from deeph_jax.io import BlockSparse, OrbitalBasis, Structure
from deeph_jax.predict.bundle import load_bundle
from deeph_jax.predict.chunks import Chunk, make_chunks, model_hops
from deeph_jax.predict.compat import vacuum_mismatch

logger = logging.getLogger(__name__)


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

    @property
    def spinful(self) -> bool:
        return self.config.spin != "none"

    def check_elements(self, structure: Structure, path=None) -> None:
        from deeph_jax.predict.compat import check_elements

        check_elements(self.basis, structure.symbols, path)

    def graph(self, structure: Structure, moments=None) -> PairGraph:
        """The pair graph this model sees (long-range potentials, and the moments of a collinear model:
        ``moments`` (n_atoms,), None for zero). Moments for any other model are refused."""
        from deeph_jax.graph import attach_moments

        spin = self.config.spin
        if moments is not None and spin != "collinear":
            raise DeephError(f"magnetic moments given, but the model (spin = {spin}) takes none; only "
                             f"collinear-spin models do", self.path)
        mismatch = vacuum_mismatch(self.metadata, structure)
        if mismatch:
            logger.warning("%s", mismatch)
        graph = build_model_graph(structure, self.config.cutoff, self.elements, self.config.long_range_alpha)
        if self.config.long_range_charges:
            from deeph_jax.predict.charges import attach_charge_potentials

            graph = attach_charge_potentials(graph, self, structure.periodic)
        if spin == "collinear":
            graph = attach_moments(graph, np.zeros(structure.n_atoms) if moments is None else moments)
        return graph


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
    """Where the time of a prediction went, in seconds.

    ``compile_s`` is the ahead-of-time compilation of the network, once per distinct padded chunk
    shape and device; ``run_s`` is every chunk's run (batching, the network, collecting the
    target blocks and whatever ``on_chunk`` does with them, e.g. exact S and the h5 writes);
    ``chunk_run_s`` splits ``run_s`` by chunk (the time until each chunk's results were handed
    over, in order).
    """

    n_atoms: int = 0
    n_edges: int = 0
    n_chunks: int = 0
    compile_s: float = 0.0
    run_s: float = 0.0
    graph_s: float = 0.0
    overlap: str = ""
    chunk_run_s: list[float] = field(default_factory=list)


def chunk_sizes(chunks) -> tuple[int, int, int]:
    """One padded shape for every chunk: nodes and edges rounded up to a multiple of 256."""
    n = max(c.graph.n_nodes for c in chunks) + 1
    e = max(c.graph.n_edges for c in chunks) + 1
    return int(np.ceil(n / 256) * 256), int(np.ceil(e / 256) * 256), 2


def float_dtype():
    """The float dtype of batches and blocks: float64 under ``jax_enable_x64``, else float32."""
    import jax

    return np.float64 if jax.config.jax_enable_x64 else np.float32


def plan_chunks(graph: PairGraph, predictor: Predictor, chunk_atoms: int | None) -> list[Chunk]:
    """Chunks of about ``chunk_atoms`` centre atoms with the model's receptive-field halo
    (``None``: one chunk, the whole graph)."""
    hops = model_hops(int(predictor.config.num_layers), predictor.config.message_cutoff)
    return make_chunks(graph, hops, chunk_atoms or graph.n_nodes)


def chunk_batch(chunk: Chunk, predictor: Predictor, sizes: tuple[int, int, int]):
    """The chunk's subgraph as one padded inference batch (host numpy arrays); with the exact overlap of its
    edges when the model has a long-range channel and its basis has PySCF integrals (the channel's off-site
    shift is phi-weighted S, and was trained on the DFT S)."""
    batch = batch_graphs([chunk.graph], predictor.elements, None, sizes=sizes, dtype=float_dtype())
    name = overlap_source(predictor) if predictor.config.long_range_alpha is not None else None
    if name is None:
        return batch
    from deeph_jax.graph.targets import padded_edge_blocks
    from deeph_jax.model.irreps_blocks import build_layout
    from deeph_jax.predict.overlap import exact_overlap

    width = build_layout(predictor.basis).width
    blocks, _ = padded_edge_blocks(chunk.graph, exact_overlap(chunk.graph, name, predictor.basis, checked=True),
                                   predictor.basis, width=width)
    s = np.zeros((len(batch.senders), width, width), batch.vectors.dtype)
    s[: len(blocks)] = blocks
    return batch._replace(s_blocks=s)


class CompiledForward:
    """The network compiled ahead of time (``jax.jit(f).lower(...).compile()``), once per padded
    shape and device, so compilation is timed apart from every chunk's run."""

    def __init__(self, predictor: Predictor, devices, stats: PredictStats):
        import jax

        self.predictor = predictor
        self.devices = devices
        self.params = [jax.device_put(predictor.params, d) for d in devices]
        self.stats = stats
        self._compiled: dict = {}

    def prepare(self, chunk: Chunk, sizes, device_index: int) -> None:
        """Compile for ``sizes`` on device ``device_index`` unless done; the time goes to ``compile_s``."""
        import jax

        key = (sizes, device_index)
        if key in self._compiled:
            return
        batch = jax.device_put(chunk_batch(chunk, self.predictor, sizes), self.devices[device_index])
        t0 = time.perf_counter()
        self._compiled[key] = self.predictor.apply.lower(self.params[device_index], batch).compile()
        self.stats.compile_s += time.perf_counter() - t0

    def __call__(self, chunk: Chunk, sizes, device_index: int):
        """Start the chunk's run (asynchronous): -> (h, s) padded blocks on the device."""
        import jax

        batch = jax.device_put(chunk_batch(chunk, self.predictor, sizes), self.devices[device_index])
        return self._compiled[(sizes, device_index)](self.params[device_index], batch)


def stream_chunks(chunks: list[Chunk], forward: CompiledForward, sizes) -> Iterator[tuple[Chunk, np.ndarray, np.ndarray]]:
    """Run the chunks round-robin over the devices and yield (chunk, h, s) in chunk order, h and s
    the host blocks (n_targets, W, W) of the chunk's target edges.

    Up to one chunk per device plus one more is in flight, so every device has work while the
    host collects (and writes) the oldest.
    """
    n_devices = len(forward.devices)
    in_flight: deque = deque()
    for k, chunk in enumerate(chunks):
        in_flight.append((chunk, *forward(chunk, sizes, k % n_devices)))
        if len(in_flight) > n_devices:
            yield _on_host(*in_flight.popleft())
    while in_flight:
        yield _on_host(*in_flight.popleft())


def _on_host(chunk: Chunk, h, s):
    """Wait for a chunk's device results and keep the rows of its target edges."""
    return chunk, np.asarray(h)[chunk.target_sub_edges], np.asarray(s)[chunk.target_sub_edges]


def collect_into_arrays(n_edges: int, width: int, dtype, spinful: bool = False):
    """Arrays (h_all, s_all) of shape (n_edges, W, W) (spinful h_all: (n_edges, 2W, 2W) complex) and the
    ``on_chunk`` that fills them."""
    h_size, h_dtype = (2 * width, np.result_type(dtype, np.complex64)) if spinful else (width, dtype)
    h_all = np.zeros((n_edges, h_size, h_size), h_dtype)
    s_all = np.zeros((n_edges, width, width), dtype)

    def store(edges, h, s):
        h_all[edges] = h
        s_all[edges] = s

    return h_all, s_all, store


def predict_blocks(graph: PairGraph, predictor: Predictor, chunk_atoms: int | None = 2000,
                   on_chunk: Callable | None = None, progress: bool = False, stats: PredictStats | None = None):
    """Predicted (h, s) padded blocks (E, W, W) for every edge of ``graph`` (float32 unless x64; spinful
    models: h (E, 2W, 2W) complex).

    ``chunk_atoms=None`` runs the whole graph at once (the reference the chunks must equal).
    ``on_chunk(edge_ids, h, s)`` receives each chunk's results instead of collecting them;
    then (None, None) is returned.
    """
    import jax

    stats = stats if stats is not None else PredictStats()
    chunks = plan_chunks(graph, predictor, chunk_atoms)
    sizes = chunk_sizes(chunks)
    devices = jax.local_devices()[: max(1, len(chunks))]
    h_all = s_all = None
    if on_chunk is None:
        width = max(predictor.basis.n_orbitals(e) for e in predictor.basis.elements)
        h_all, s_all, on_chunk = collect_into_arrays(graph.n_edges, width, float_dtype(), predictor.spinful)
    stats.compile_s, stats.chunk_run_s = 0.0, []
    forward = CompiledForward(predictor, devices, stats)
    for k, chunk in enumerate(chunks[: len(devices)]):
        forward.prepare(chunk, sizes, k)
    run_chunks(chunks, forward, sizes, on_chunk, stats, _progress_bar(graph.n_edges) if progress else None)
    stats.n_chunks, stats.n_edges, stats.n_atoms = len(chunks), graph.n_edges, graph.n_nodes
    return h_all, s_all


def run_chunks(chunks: list[Chunk], forward: CompiledForward, sizes, on_chunk: Callable, stats: PredictStats,
               bar=None) -> None:
    """Hand every chunk's target blocks to ``on_chunk(edge_ids, h, s)``, timing each chunk into
    ``stats.chunk_run_s`` and all of them into ``stats.run_s``."""
    t_run = t_last = time.perf_counter()
    for chunk, h, s in stream_chunks(chunks, forward, sizes):
        on_chunk(chunk.target_edges, h, s)
        if bar is not None:
            bar.update(len(chunk.target_edges))
        now = time.perf_counter()
        stats.chunk_run_s.append(now - t_last)
        t_last = now
    stats.run_s = time.perf_counter() - t_run
    if bar is not None:
        bar.close()


def _progress_bar(n_edges: int):
    from tqdm import tqdm

    return tqdm(total=n_edges, desc="predict", unit="edge", unit_scale=True)


def blocks_to_sparse(graph: PairGraph, padded: np.ndarray, basis: OrbitalBasis, edges=None) -> BlockSparse:
    """(E, W, W) padded blocks of ``edges`` (default all) -> BlockSparse in float64.

    (E, 2W, 2W) padded spinful blocks (W = the basis' widest atom) give complex128 (2a, 2b) blocks
    ``[[uu, ud], [du, dd]]`` (:func:`deeph_jax.graph.targets.padded_edge_blocks` with ``spinful``).
    """
    edges = np.arange(graph.n_edges) if edges is None else np.asarray(edges)
    n_orb = np.asarray([basis.n_orbitals(s) for s in graph.symbols])
    a, b = n_orb[graph.senders[edges]], n_orb[graph.receivers[edges]]
    width = max(basis.n_orbitals(e) for e in basis.elements)
    spinful = padded.shape[1] == 2 * width
    rows = np.arange(padded.shape[1])[None, :, None]
    cols = np.arange(padded.shape[2])[None, None, :]
    if spinful:  # each spin quarter's (a, b) corner; row-major over the (2a, 2b) block
        rows, cols = rows % width, cols % width
    mask = (rows < a[:, None, None]) & (cols < b[:, None, None])
    entries = padded.astype(np.complex128 if spinful else np.float64)[mask]  # row-major per block, edge order
    shapes = np.stack([a, b], axis=1) * (2 if spinful else 1)
    return BlockSparse.from_arrays(graph.atom_pairs[edges], shapes, entries)


def overlap_source(predictor: Predictor) -> str | None:
    """The PySCF basis name for exact overlaps, when the training data name one PySCF knows."""
    from deeph_jax.predict.overlap import basis_matches

    name = predictor.metadata.get("basis")
    return name if name and basis_matches(name, predictor.basis) else None


def predict(structure: Structure, predictor: Predictor, chunk_atoms: int | None = 2000, exact_overlap: bool = True,
            progress: bool = False, stats: PredictStats | None = None, moments=None):
    """-> (H BlockSparse in eV, S BlockSparse, stats). S is exact from PySCF when possible.

    ``moments``: (n_atoms,) signed magnetic moments, for a collinear-spin model only (None: zero)."""
    from deeph_jax.io import validate_structure

    validate_structure(structure)
    predictor.check_elements(structure)
    stats = stats or PredictStats()
    t0 = time.perf_counter()
    graph = predictor.graph(structure, moments)
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
