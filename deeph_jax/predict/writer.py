"""Stream blocks into a DeepH matrix file chunk by chunk; the file appears whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np


class StreamingMatrixWriter:
    """Append (atom_pairs, shapes, entries) chunks; ``close()`` adds chunk_boundaries and renames.

    Until ``close()`` the data lives in a hidden temporary file beside ``path``; an exception
    or a kill leaves no file under the final name.
    """

    def __init__(self, path: str | Path, dtype=np.float64, compression: str | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self.f = h5py.File(self.tmp, "w")
        kw = {"compression": compression} if compression else {}
        self.pairs = self.f.create_dataset("atom_pairs", (0, 5), np.int64, maxshape=(None, 5), chunks=(65536, 5))
        self.shapes = self.f.create_dataset("chunk_shapes", (0, 2), np.int64, maxshape=(None, 2), chunks=(65536, 2))
        self.entries = self.f.create_dataset("entries", (0,), dtype, maxshape=(None,), chunks=(1 << 20,), **kw)
        self.n_bytes = 0

    def append(self, atom_pairs: np.ndarray, shapes: np.ndarray, entries: np.ndarray) -> None:
        n0, e0 = self.pairs.shape[0], self.entries.shape[0]
        self.pairs.resize(n0 + len(atom_pairs), axis=0)
        self.pairs[n0:] = atom_pairs
        self.shapes.resize(n0 + len(shapes), axis=0)
        self.shapes[n0:] = shapes
        self.entries.resize(e0 + len(entries), axis=0)
        self.entries[e0:] = entries
        self.n_bytes += entries.nbytes

    def close(self) -> None:
        shapes = self.shapes[()]
        bounds = np.concatenate([[0], np.cumsum(shapes[:, 0] * shapes[:, 1])]).astype(np.int64)
        self.f.create_dataset("chunk_boundaries", data=bounds)
        self.f.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        try:
            self.f.close()
        finally:
            if self.tmp.exists():
                self.tmp.unlink()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False
