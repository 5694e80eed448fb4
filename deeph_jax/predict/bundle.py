"""Inference bundles: everything prediction needs, nothing it does not.

A bundle folder holds ``model.yaml`` (the ModelConfig), ``basis.json`` (the orbital map the
model emits), ``params.msgpack`` (flax-serialized parameters) and ``metadata.json`` (training
data, measured errors). Written as one atomic folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from deeph_jax.errors import DeephError
from deeph_jax.io import OrbitalBasis
from deeph_jax.io.atomic import atomic_directory

FILES = ("model.yaml", "basis.json", "params.msgpack", "metadata.json")


def export_bundle(path: str | Path, model_config, basis: OrbitalBasis, params, metadata: dict) -> None:
    from flax import serialization
    import jax

    host = jax.tree_util.tree_map(np.asarray, params)
    with atomic_directory(path) as tmp:
        (tmp / "model.yaml").write_text(yaml.safe_dump(
            {k: list(v) if isinstance(v, tuple) else v for k, v in model_config.to_dict().items()}, sort_keys=False))
        (tmp / "basis.json").write_text(json.dumps(basis.to_orbital_map()) + "\n")
        (tmp / "params.msgpack").write_bytes(serialization.msgpack_serialize(host))
        (tmp / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")


def _check_bundle_files(path: Path) -> None:
    missing = [f for f in FILES if not (path / f).is_file()]
    if missing:
        raise DeephError(f"not an inference bundle (missing {', '.join(missing)})", path)


def _damaged(path: Path, exc: Exception) -> DeephError:
    return DeephError(f"incompatible or damaged bundle ({type(exc).__name__}: {exc})", path)


def _model_config(path: Path):
    from deeph_jax.model.config import ModelConfig

    fields = yaml.safe_load((path / "model.yaml").read_text())
    # Bundles older than the key trained with a shift on every block; they need it to predict as trained.
    return ModelConfig.from_dict({"offsite_shift": True, **fields} if isinstance(fields, dict) else fields)


def load_model_config(path: str | Path):
    """The bundle's ModelConfig alone (model.yaml; no parameters read)."""
    path = Path(path)
    _check_bundle_files(path)
    try:
        return _model_config(path)
    except (ValueError, TypeError, yaml.YAMLError) as exc:
        raise _damaged(path, exc) from None


def load_bundle(path: str | Path):
    """-> (ModelConfig, OrbitalBasis, params, metadata)."""
    from flax import serialization

    path = Path(path)
    _check_bundle_files(path)
    try:
        config = _model_config(path)
        basis = OrbitalBasis.from_orbital_map(json.loads((path / "basis.json").read_text()))
        params = serialization.msgpack_restore((path / "params.msgpack").read_bytes())
        metadata = json.loads((path / "metadata.json").read_text())
    except (ValueError, TypeError, yaml.YAMLError) as exc:
        raise _damaged(path, exc) from None
    return config, basis, params, metadata


def training_metadata(dirs) -> dict:
    """What a bundle records of its training data: basis/xc/pseudopotential names, the
    valence electrons per element implied by the structures' ``occupation`` (least squares over
    compositions, kept only when integral and exact for every structure), and the range of cell heights
    along the vacuum of sheets and wires (``vacuum_heights_A``: periodic DFT's energy zero depends on it)."""
    from collections import Counter

    from deeph_jax.io import read_info, read_poscar
    from deeph_jax.io.structures import vacuum_heights

    meta: dict = {}
    rows, occ = [], []
    elements: list[str] = []
    heights: list[float] = []
    for d in dirs:
        info = read_info(Path(d) / "info.json")
        for key in ("basis", "xc", "pseudopotential"):
            if info.get(key) and key not in meta:
                meta[key] = info[key]
        structure = read_poscar(Path(d) / "POSCAR")
        heights += vacuum_heights(structure)
        if info.get("occupation") is None:
            continue
        counts = Counter(structure.symbols)
        elements = sorted(set(elements) | set(counts))
        rows.append(counts)
        occ.append(float(info["occupation"]))
    if rows:
        A = np.asarray([[c.get(e, 0) for e in elements] for c in rows], float)
        guess = _physical_valence(elements, meta.get("pseudopotential"))
        v = None
        if guess is not None and np.allclose(A @ guess, occ):
            v = guess
        elif np.linalg.matrix_rank(A) == len(elements):  # compositions pin every element down
            x = np.round(np.linalg.lstsq(A, np.asarray(occ), rcond=None)[0])
            v = x if np.allclose(A @ x, occ) and np.all(x > 0) else None
        if v is not None:
            meta["valence_electrons"] = {e: int(n) for e, n in zip(elements, v)}
    if heights:
        meta["vacuum_heights_A"] = [round(min(heights), 3), round(max(heights), 3)]
    return meta


def _physical_valence(elements, pseudopotential: str | None):
    """Electrons per neutral atom: Z for all-electron data, the GTH valence with a pseudopotential."""
    from pyscf.data.elements import charge

    try:
        if pseudopotential:
            from pyscf import gto

            return np.asarray([sum(gto.basis.load_pseudo(pseudopotential, e)[0]) for e in elements], float)
        return np.asarray([charge(e) for e in elements], float)
    except Exception:  # unknown pseudopotential family or element
        return None
