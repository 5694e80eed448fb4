"""Block-sparse real-space matrices H_ij(R), S_ij(R), stored as the DeepH h5 layout in memory.

The arrays are exactly those of a DeepH matrix file, so reading and writing are copies and
a round trip is bit-identical:

- ``atom_pairs``  (n_blocks, 5) int64: ``[R1, R2, R3, i, j]``, R in lattice vectors applied to j,
  atoms 0-based;
- ``shapes``      (n_blocks, 2) int64: (rows, cols) of each block;
- ``boundaries``  (n_blocks + 1,) int64: offsets of each block in ``entries``;
- ``entries``     (boundaries[-1],) float64 or complex128: the blocks, flattened row-major.

Spinful blocks are (2a, 2b), laid out ``[[uu, ud], [du, dd]]``; the dense spinful matrix is
``[[H_uu, H_ud], [H_du, H_dd]]`` with each quarter in the spinless orbital order (as DeepH-dock).
Bloch sum: H(k) = sum_R exp(i 2 pi k.R) H(R), k in reciprocal lattice units, no position phase.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import scipy.sparse as sp

from deeph_jax.errors import DeephError


PATTERN_CHUNK_BLOCKS = 1 << 18  # blocks per chunk when working out a CSR pattern


@dataclass(frozen=True, eq=False)
class BlockSparse:
    """A real-space matrix as blocks keyed by (R, i, j). Energies in eV (overlap: unitless)."""

    atom_pairs: np.ndarray
    shapes: np.ndarray
    boundaries: np.ndarray
    entries: np.ndarray
    _index: dict = field(default=None, repr=False, compare=False)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_blocks(cls, blocks: Mapping[tuple[int, int, int, int, int], np.ndarray]) -> "BlockSparse":
        """Build from ``{(R1, R2, R3, i, j): block}``, keeping the mapping's order."""
        keys = np.asarray(list(blocks.keys()), dtype=np.int64).reshape(-1, 5)
        mats = [np.asarray(b) for b in blocks.values()]
        shapes = np.asarray([m.shape for m in mats], dtype=np.int64).reshape(-1, 2)
        dtype = np.result_type(*mats) if mats else np.float64
        entries = (
            np.concatenate([m.reshape(-1) for m in mats]).astype(dtype, copy=False)
            if mats
            else np.zeros(0, dtype)
        )
        return cls.from_arrays(keys, shapes, entries)

    @classmethod
    def from_arrays(cls, atom_pairs, shapes, entries) -> "BlockSparse":
        shapes = np.asarray(shapes, dtype=np.int64).reshape(-1, 2)
        boundaries = np.concatenate([[0], np.cumsum(shapes[:, 0] * shapes[:, 1])]).astype(np.int64)
        return cls(np.asarray(atom_pairs, dtype=np.int64).reshape(-1, 5), shapes, boundaries, np.asarray(entries))

    # -- access -------------------------------------------------------------------------------
    @property
    def n_blocks(self) -> int:
        return int(self.atom_pairs.shape[0])

    @property
    def is_complex(self) -> bool:
        return np.iscomplexobj(self.entries)

    def block(self, n: int) -> np.ndarray:
        """The n-th stored block, a view of shape ``shapes[n]``."""
        b0, b1 = self.boundaries[n], self.boundaries[n + 1]
        return self.entries[b0:b1].reshape(self.shapes[n])

    @property
    def index(self) -> dict[tuple[int, int, int, int, int], int]:
        """``(R1, R2, R3, i, j) -> n``; built once, on first use."""
        if self._index is None:
            object.__setattr__(self, "_index", {tuple(int(x) for x in k): n for n, k in enumerate(self.atom_pairs)})
        return self._index

    def get(self, R, i: int, j: int) -> np.ndarray | None:
        n = self.index.get((int(R[0]), int(R[1]), int(R[2]), int(i), int(j)))
        return None if n is None else self.block(n)

    def blocks(self):
        """Iterate ``((R1, R2, R3, i, j), block)`` in stored order."""
        for n in range(self.n_blocks):
            yield tuple(int(x) for x in self.atom_pairs[n]), self.block(n)

    def mirror_indices(self) -> np.ndarray:
        """For each block (R, i, j), the index of its mirror (-R, j, i), or -1 when it is not stored."""
        index = self.index
        ap = self.atom_pairs
        keys = zip(-ap[:, 0], -ap[:, 1], -ap[:, 2], ap[:, 4], ap[:, 3])
        return np.asarray([index.get(tuple(int(x) for x in k), -1) for k in keys], dtype=np.int64)

    def select(self, keep: np.ndarray) -> "BlockSparse":
        """The blocks whose indices are ``keep`` (ascending), in stored order."""
        keep = np.asarray(keep, dtype=np.int64)
        sizes = self.shapes[keep, 0] * self.shapes[keep, 1]
        starts = np.repeat(self.boundaries[keep] - np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes)
        return BlockSparse.from_arrays(self.atom_pairs[keep], self.shapes[keep],
                                       self.entries[starts + np.arange(int(sizes.sum()))])

    # -- Hermiticity --------------------------------------------------------------------------
    def hermiticity_error(self) -> float:
        """max |M_ij(R) - M_ji(-R)^dagger| over stored mirrored pairs (0 for an exactly Hermitian set)."""
        mirror = self.mirror_indices()
        worst = 0.0
        for n in np.nonzero(mirror >= 0)[0]:
            d = np.abs(self.block(n) - self.block(mirror[n]).conj().T)
            worst = max(worst, float(d.max(initial=0.0)))
        return worst

    def missing_mirrors(self) -> int:
        return int(np.sum(self.mirror_indices() < 0))

    def symmetrized(self) -> "BlockSparse":
        """The Hermitian part: M_ij(R) <- (M_ij(R) + M_ji(-R)^dagger) / 2 for every stored mirrored pair."""
        mirror = self.mirror_indices()
        entries = self.entries.copy()
        for n in np.nonzero(mirror >= 0)[0]:
            sym = 0.5 * (self.block(n) + self.block(mirror[n]).conj().T)
            entries[self.boundaries[n] : self.boundaries[n + 1]] = sym.reshape(-1)
        return BlockSparse(self.atom_pairs, self.shapes, self.boundaries, entries)

    # -- Bloch sums ---------------------------------------------------------------------------
    def _coo_pattern(self, atom_offsets: np.ndarray, n_orbitals: int, spinful: bool):
        """Global (row, col) of every entry, vectorized over blocks of the same shape."""
        rows = np.empty(self.entries.shape[0], dtype=np.int64)
        cols = np.empty(self.entries.shape[0], dtype=np.int64)
        shape_ids = self.shapes[:, 0] * 100003 + self.shapes[:, 1]
        for sid in np.unique(shape_ids):
            sel = np.nonzero(shape_ids == sid)[0]
            a, b = (int(x) for x in self.shapes[sel[0]])
            r, c = np.arange(a), np.arange(b)
            if spinful:
                # Local spin-major index s * half + o -> global s * n_orbitals + o.
                r = (r // (a // 2)) * n_orbitals + r % (a // 2)
                c = (c // (b // 2)) * n_orbitals + c % (b // 2)
            base_r = atom_offsets[self.atom_pairs[sel, 3]]
            base_c = atom_offsets[self.atom_pairs[sel, 4]]
            where = self.boundaries[sel][:, None, None] + (np.arange(a)[:, None] * b + np.arange(b)[None, :])
            rows[where] = base_r[:, None, None] + r[None, :, None]
            cols[where] = base_c[:, None, None] + c[None, None, :]
        block_of_entry = np.repeat(np.arange(self.n_blocks), np.diff(self.boundaries))
        return rows, cols, block_of_entry

    def _csr_pattern(self, atom_offsets: np.ndarray, n_orbitals: int, spinful: bool) -> dict:
        """The CSR structure of M(k) (the same at every k) and where each stored entry lands in it.

        Entries of different R on the same (row, col) share a slot (their Bloch sum). ``mirror`` maps every
        slot (r, c) to slot (c, r) when the pattern is structurally symmetric (both mirrors stored, as in
        DeepH files), so M(k) is hermitized without a sparse transpose. Indices are int32 where they fit:
        at 10^5 atoms there are ~2e8 entries.
        """
        if not spinful:
            return self._csr_pattern_by_blocks(atom_offsets, n_orbitals)
        size = 2 * n_orbitals
        rows, cols, block_of_entry = self._coo_pattern(atom_offsets, n_orbitals, spinful)
        key = rows * size + cols
        del rows, cols
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        del key
        first = np.empty(sorted_key.shape[0], dtype=bool)
        first[:1] = True
        np.not_equal(sorted_key[1:], sorted_key[:-1], out=first[1:])
        slots = sorted_key[first]
        del sorted_key
        small = np.int32 if max(slots.shape[0], size) < 2**31 - 1 else np.int64
        position = np.empty(order.shape[0], dtype=small)
        position[order] = np.cumsum(first, dtype=small) - 1
        del order, first
        indptr = np.concatenate([[0], np.cumsum(np.bincount(slots // size, minlength=size))]).astype(small)
        indices = (slots % size).astype(small)
        transposed = indices.astype(np.int64) * size + slots // size
        mirror = np.searchsorted(slots, transposed)
        ok = mirror < slots.shape[0]
        ok[ok] = slots[mirror[ok]] == transposed[ok]
        return {"size": size, "position": position, "indptr": indptr, "indices": indices,
                "block_of_entry": block_of_entry.astype(small, copy=False),
                "mirror": mirror.astype(small) if ok.all() else None}

    def _csr_pattern_by_blocks(self, atom_offsets: np.ndarray, n_orbitals: int) -> dict:
        """:meth:`_csr_pattern` of a spinless matrix, worked out per atom pair instead of per entry.

        Every row of atom i holds the same atom pairs (i, j) in order of j, each as ``n_orb(j)`` columns, so
        an entry's slot is indptr[row] + (columns of the pairs (i, j' < j)) + its column in the block. The
        sort is over unique atom pairs (~10^6 at 10^4 atoms), not over entries (~2e7).
        """
        n_atoms = atom_offsets.shape[0] - 1
        n_orb_atom = np.diff(atom_offsets)
        i, j = self.atom_pairs[:, 3], self.atom_pairs[:, 4]
        pairs, pair_of_block = np.unique(i * n_atoms + j, return_inverse=True)
        pi, pj = pairs // n_atoms, pairs % n_atoms
        width = n_orb_atom[pj]
        ends = np.cumsum(width)
        first_of_atom = np.searchsorted(pi, np.arange(n_atoms))  # pairs are sorted by i, then j
        row_length = np.add.reduceat(width, np.minimum(first_of_atom, len(pairs) - 1)) * (np.bincount(pi, minlength=n_atoms) > 0)
        offset_in_row = ends - width - np.concatenate([[0], ends])[first_of_atom[pi]]
        indptr = np.concatenate([[0], np.cumsum(np.repeat(row_length, n_orb_atom))])
        size = n_orbitals
        small = np.int32 if max(int(indptr[-1]), size) < 2**31 - 1 else np.int64
        position = np.empty(self.entries.shape[0], dtype=small)
        indices = np.empty(int(indptr[-1]), dtype=small)
        mirror_pair = np.searchsorted(pairs, pj * n_atoms + pi)
        symmetric = bool(np.all(mirror_pair < len(pairs)) and np.all(pairs[np.minimum(mirror_pair, len(pairs) - 1)] == pj * n_atoms + pi))
        mirror = np.empty(int(indptr[-1]), dtype=small) if symmetric else None
        shape_ids = self.shapes[:, 0] * 100003 + self.shapes[:, 1]
        groups = [np.nonzero(shape_ids == sid)[0] for sid in np.unique(shape_ids)]
        # in chunks of blocks: the (blocks, a, b) index arrays of one chunk are temporary (at 10^5 atoms
        # whole-group ones were several GB each)
        for sel in (g[c: c + PATTERN_CHUNK_BLOCKS] for g in groups for c in range(0, len(g), PATTERN_CHUNK_BLOCKS)):
            a, b = (int(x) for x in self.shapes[sel[0]])
            p = pair_of_block[sel]
            row0 = indptr[atom_offsets[pi[p]]]  # slot of the block's first row
            slot = (row0[:, None, None] + np.arange(a)[None, :, None] * row_length[pi[p]][:, None, None]
                    + offset_in_row[p][:, None, None] + np.arange(b)[None, None, :])
            where = self.boundaries[sel][:, None, None] + (np.arange(a)[:, None] * b + np.arange(b)[None, :])
            position[where] = slot
            indices[slot] = atom_offsets[pj[p]][:, None, None] + np.arange(b)[None, None, :]
            if symmetric:  # slot (r, c) of pair (i, j) <-> slot (c, r) of pair (j, i)
                q = mirror_pair[p]
                back = (indptr[atom_offsets[pi[q]]][:, None, None] + np.arange(b)[None, None, :] * row_length[pi[q]][:, None, None]
                        + offset_in_row[q][:, None, None] + np.arange(a)[None, :, None])
                mirror[slot] = back
        return {"size": size, "position": position, "indptr": indptr.astype(small), "indices": indices,
                "block_of_entry": np.repeat(np.arange(self.n_blocks, dtype=small), np.diff(self.boundaries)),
                "mirror": mirror}

    def share_pattern(self, other: "BlockSparse") -> None:
        """Reuse ``other``'s cached CSR pattern when both hold the same blocks (H and S of one structure
        usually do): at 10^4 atoms working it out costs more than a Bloch sum."""
        cache = getattr(other, "_pattern_cache", None)
        if (cache is not None and getattr(self, "_pattern_cache", None) is None
                and np.array_equal(self.atom_pairs, other.atom_pairs) and np.array_equal(self.shapes, other.shapes)):
            object.__setattr__(self, "_pattern_cache", cache)

    def bloch_sparse(self, k, atom_offsets: np.ndarray, spinful: bool = False, hermitize: bool = False,
                     real: bool = False) -> sp.csr_matrix:
        """M(k) = sum_R exp(i 2 pi k.R) M(R) as a sparse CSR matrix (duplicates summed, indices sorted).

        Args:
            k: (3,) in reciprocal lattice units.
            atom_offsets: (n_atoms + 1,) start of each atom's orbitals (spin not counted).
            spinful: the blocks are (2a, 2b) spin blocks; the result has size 2 * n_orbitals.
            hermitize: return (M + M^dagger) / 2 (stored data are Hermitian only to their precision).
            real: return the real part in float64 (for real blocks at Gamma or a zone-boundary TRIM point,
                where it is all there is): half the memory and work.
        """
        atom_offsets = np.asarray(atom_offsets, dtype=np.int64)
        n_orb = int(atom_offsets[-1])
        key = (atom_offsets.tobytes(), spinful)
        cache = getattr(self, "_pattern_cache", None)
        if cache is None or cache[0] != key:
            cache = (key, self._csr_pattern(atom_offsets, n_orb, spinful))
            object.__setattr__(self, "_pattern_cache", cache)
        pat = cache[1]
        phase = np.exp(2j * np.pi * (self.atom_pairs[:, :3] @ np.asarray(k, dtype=np.float64)))
        n_slots = pat["indices"].shape[0]
        if real:
            weights = self.entries.real * phase.real[pat["block_of_entry"]]
            data = np.bincount(pat["position"], weights=weights, minlength=n_slots)
        else:
            weights = self.entries * phase[pat["block_of_entry"]]
            data = np.bincount(pat["position"], weights=weights.real, minlength=n_slots).astype(np.complex128)
            data.imag = np.bincount(pat["position"], weights=weights.imag, minlength=n_slots)
        del weights
        m = sp.csr_matrix((data, pat["indices"], pat["indptr"]), shape=(pat["size"], pat["size"]))
        if hermitize:
            if pat["mirror"] is not None:
                m.data = 0.5 * (data + data[pat["mirror"]].conj())
            else:
                m = (0.5 * (m + m.conj().T)).tocsr()
        return m

    def bloch_dense(self, k, atom_offsets: np.ndarray, spinful: bool = False, hermitize: bool = True) -> np.ndarray:
        """Dense M(k) (complex128). With ``hermitize`` the result is made exactly Hermitian,
        (M + M^dagger) / 2: stored data are Hermitian only to their precision."""
        m = self.bloch_sparse(k, atom_offsets, spinful).toarray()
        return 0.5 * (m + m.conj().T) if hermitize else m


def check_block_shapes(
    matrix: BlockSparse, symbols, n_orbitals_per_atom: np.ndarray, spinful: bool, path=None
) -> None:
    """Every block must be (n_orb(i), n_orb(j)) (times 2 each when spinful), with i, j valid atoms."""
    n_atoms = len(symbols)
    ij = matrix.atom_pairs[:, 3:]
    bad = np.nonzero((ij < 0).any(1) | (ij >= n_atoms).any(1))[0]
    if bad.size:
        i, j = ij[bad[0]]
        raise DeephError(f"atom_pairs row {bad[0]} names atoms ({i}, {j}) but the structure has {n_atoms} atoms", path)
    factor = 2 if spinful else 1
    expected = np.stack([n_orbitals_per_atom[ij[:, 0]], n_orbitals_per_atom[ij[:, 1]]], axis=1) * factor
    bad = np.nonzero((expected != matrix.shapes).any(1))[0]
    if bad.size:
        n = bad[0]
        i, j = ij[n]
        raise DeephError(
            f"block {matrix.atom_pairs[n].tolist()} has shape {tuple(matrix.shapes[n])} but the orbital map gives "
            f"{tuple(expected[n])} for atoms {i} ({symbols[i]}) and {j} ({symbols[j]})",
            path,
        )
