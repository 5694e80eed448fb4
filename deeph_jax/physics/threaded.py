"""Sparse products on several cores: scipy's CSR times a block of vectors runs on one thread but releases
the GIL, so row blocks of the matrix multiply in a thread pool. At 9,800 atoms these products were ~30 % of
a band path's time (profile of ``bench_bands.py --path --track``)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp

ROW_SPLIT_MIN_NNZ = 2_000_000  # smaller matrices multiply faster on one thread than through a pool


def product_threads() -> int:
    """Threads for sparse products: OMP_NUM_THREADS or MKL_NUM_THREADS when set (as for the factorizations),
    else the cores this process may use."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class RowSplit:
    """A CSR matrix whose ``@`` multiplies row blocks on ``threads`` threads. The blocks are views of the
    matrix's arrays (no copy of its entries); ``shape`` and ``dtype`` as the matrix's."""

    def __init__(self, a: sp.csr_matrix, threads: int | None = None):
        a = sp.csr_matrix(a)
        self.matrix, self.shape, self.dtype = a, a.shape, a.dtype
        threads = threads or product_threads()
        cuts = np.searchsorted(a.indptr, np.linspace(0, a.nnz, threads + 1)).clip(0, a.shape[0])
        cuts[0], cuts[-1] = 0, a.shape[0]
        self.blocks = [(r0, r1, sp.csr_matrix((a.data[a.indptr[r0]:a.indptr[r1]], a.indices[a.indptr[r0]:a.indptr[r1]],
                                               a.indptr[r0:r1 + 1] - a.indptr[r0]), shape=(r1 - r0, a.shape[1])))
                       for r0, r1 in zip(cuts[:-1], cuts[1:]) if r1 > r0]
        self._pool = ThreadPoolExecutor(len(self.blocks)) if len(self.blocks) > 1 else None

    def __matmul__(self, x: np.ndarray) -> np.ndarray:
        if self._pool is None:
            return self.matrix @ x
        out = np.empty((self.shape[0],) + x.shape[1:], dtype=np.result_type(self.dtype, x.dtype))

        def run(block):
            r0, r1, m = block
            out[r0:r1] = m @ x

        list(self._pool.map(run, self.blocks))
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def row_split(a, threads: int | None = None):
    """``a`` itself when small or on one thread, else a :class:`RowSplit` of it."""
    threads = threads or product_threads()
    if threads < 2 or not sp.issparse(a) or a.nnz < ROW_SPLIT_MIN_NNZ:
        return a
    return RowSplit(a, threads)


__all__ = ["RowSplit", "row_split", "product_threads", "ROW_SPLIT_MIN_NNZ"]
