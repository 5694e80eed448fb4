"""Prediction to DeepH folders: one structure, or every structure of a dataset (with MAE)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from deeph_jax.errors import DeephError
from deeph_jax.graph import moments_from_info
from deeph_jax.graph.moments import INFO_KEY as MOMENTS_KEY
from deeph_jax.io import (HAMILTONIAN, HAMILTONIAN_PRED, OVERLAP, BlockSparse, Structure, find_structure_dirs,
                          read_deeph_dir)
from deeph_jax.io.deeph import write_info, write_poscar
from deeph_jax.predict.infer import PredictStats, Predictor, blocks_to_sparse, overlap_source, predict_blocks
from deeph_jax.predict.writer import StreamingMatrixWriter


def occupation(structure: Structure, predictor: Predictor) -> float | None:
    """Electron count from the per-element valence the training data imply (None if unknown)."""
    valence = predictor.metadata.get("valence_electrons") or {}
    if not all(s in valence for s in set(structure.symbols)):
        return None
    return float(sum(valence[s] for s in structure.symbols))


def predict_to_folder(structure: Structure, predictor: Predictor, out: Path, chunk_atoms: int = 2000,
                      exact_overlap: bool = True, progress: bool = True, moments=None) -> PredictStats:
    """Write POSCAR, info.json, hamiltonian_pred.h5 and overlap.h5 of ``structure`` into ``out``.

    H (and the network's S, when used) stream to disk chunk by chunk; each file is renamed into
    place only when complete. A spinful model writes complex (2a, 2b) H blocks and ``spinful: true``;
    a collinear one takes ``moments`` (n_atoms,) and records them as ``magnetic_moments``.
    """
    from deeph_jax.predict.overlap import exact_overlap as exact

    stats = PredictStats()
    predictor.check_elements(structure)
    t0 = time.perf_counter()
    graph = predictor.graph(structure, moments)
    stats.graph_s = time.perf_counter() - t0
    name = overlap_source(predictor) if exact_overlap else None
    out.mkdir(parents=True, exist_ok=True)
    h_dtype = np.complex128 if predictor.spinful else np.float64
    with StreamingMatrixWriter(out / HAMILTONIAN_PRED, h_dtype) as wh, StreamingMatrixWriter(out / OVERLAP) as ws:

        def on_chunk(edges, h, s):
            H = blocks_to_sparse(graph, h, predictor.basis, edges)
            wh.append(H.atom_pairs, H.shapes, H.entries)
            S = exact(graph, name, predictor.basis, edges, checked=True) if name else \
                blocks_to_sparse(graph, s, predictor.basis, edges)
            ws.append(S.atom_pairs, S.shapes, S.entries)

        predict_blocks(graph, predictor, chunk_atoms, on_chunk=on_chunk, progress=progress, stats=stats)
    stats.overlap = f"exact (PySCF integrals, basis {name})" if name else "predicted (network S head)"
    write_poscar(out / "POSCAR", structure)
    info = {
        "atoms_quantity": structure.n_atoms,
        "orbits_quantity": int(predictor.basis.atom_offsets(structure.symbols)[-1]),
        "orthogonal_basis": False,
        "spinful": predictor.spinful,
        "fermi_energy_eV": None,
        "elements_orbital_map": {e: list(predictor.basis.shells[e]) for e in sorted(set(structure.symbols))},
        "occupation": occupation(structure, predictor),
        "overlap_source": stats.overlap,
        "hamiltonian_source": f"deeph-jax prediction, model {predictor.path}",
    }
    for key in ("basis", "xc", "pseudopotential"):
        if predictor.metadata.get(key):
            info[key] = predictor.metadata[key]
    if graph.node_moments is not None:
        info[MOMENTS_KEY] = [float(m) for m in graph.node_moments]
    write_info(out / "info.json", info)
    return stats


def entry_errors(pred: BlockSparse, dft: BlockSparse) -> tuple[np.ndarray, np.ndarray]:
    """|pred - dft| (eV) of every entry of the blocks both hold: (on-site entries, off-site entries), flat.
    On-site: i == j at R = 0."""
    errors = {True: [np.zeros(0)], False: [np.zeros(0)]}
    for key, block in dft.blocks():
        other = pred.get(key[:3], key[3], key[4])
        if other is not None:
            errors[key[3] == key[4] and key[:3] == (0, 0, 0)].append(np.abs(other - block).ravel())
    return np.concatenate(errors[True]), np.concatenate(errors[False])


def block_mae(pred_dir: Path, dft_dir: Path) -> tuple[float, int]:
    """MAE (eV) over the entries of every block present in both the prediction and the DFT H, and their count."""
    pred = read_deeph_dir(pred_dir, hamiltonian=HAMILTONIAN_PRED, overlap=False).hamiltonian
    dft = read_deeph_dir(dft_dir, hamiltonian=HAMILTONIAN, overlap=False).hamiltonian
    errors = np.concatenate(entry_errors(pred, dft))
    return (float(errors.mean()) if errors.size else float("nan")), int(errors.size)


def predict_dataset(dataset: Path, predictor: Predictor, out: Path, chunk_atoms: int = 2000,
                    exact_overlap: bool = True) -> list[tuple[str, float | None]]:
    """Predict every structure (folder with a POSCAR) of ``dataset`` into ``out/<sid>/``.

    Returns (sid, MAE in eV or None) per structure; MAE where a DFT hamiltonian.h5 exists (spinful H: over
    |complex difference| of every entry). A collinear model takes each structure's info.json magnetic_moments.
    """
    from tqdm import tqdm

    from deeph_jax.predict.compat import check_dataset

    dirs = find_structure_dirs(dataset)
    if not dirs:
        raise DeephError("no structures (no folder with a POSCAR)", dataset)
    check_dataset(predictor, dirs)  # a basis the model does not emit fails here, before any output
    results = []
    for d in tqdm(dirs, desc="structures", unit="structure"):
        sid = str(d.relative_to(dataset)) if d != dataset else d.name
        has_dft = (d / HAMILTONIAN).is_file()
        data = read_deeph_dir(d, hamiltonian=None, overlap=(d / OVERLAP).is_file())
        moments = None
        if predictor.config.spin == "collinear":
            moments = moments_from_info(data.info, data.structure.n_atoms, d / "info.json")
        predict_to_folder(data.structure, predictor, out / sid, chunk_atoms, exact_overlap, progress=False,
                          moments=moments)
        mae = block_mae(out / sid, d)[0] if has_dft else None
        results.append((sid, mae))
    return results
