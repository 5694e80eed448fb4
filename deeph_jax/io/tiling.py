"""Exact supercells of a DeepH structure: H and S of a tiled cell from the blocks of the small one.

Block (R, i, j) of the small cell, seen from image t of the tiling, becomes block (T, (t, i), (t', j)) of
the supercell with t + R = T n + t' (componentwise, n the repetitions). The supercell's eigenvalues at k
are the small cell's at the k-points that fold onto it, which makes tiled cells exact references for
large-scale solvers (bands, KPM) at any size.
"""

from __future__ import annotations

import numpy as np

from deeph_jax.io.blocks import BlockSparse
from deeph_jax.io.deeph import DeephStructure
from deeph_jax.io.structures import Structure


def tile_deeph(data: DeephStructure, reps) -> DeephStructure:
    """The exact ``reps`` = (n1, n2, n3) supercell; atoms image by image (image (0,0,0) first), as
    :func:`deeph_jax.dft.crystals.supercell` orders them."""
    reps = np.asarray(reps, dtype=np.int64)
    images = np.array(list(np.ndindex(*reps)), dtype=np.int64)
    st = data.structure
    n_at = st.n_atoms
    pos = np.concatenate([st.positions + t @ st.cell for t in images])
    big = Structure(tuple(st.symbols) * len(images), pos, st.cell * reps[:, None], periodic=True)
    image_index = {tuple(t): n for n, t in enumerate(images.tolist())}
    flat = np.array([image_index[tuple(t)] for t in np.array(list(np.ndindex(*reps))).tolist()])

    def tile_matrix(m: BlockSparse) -> BlockSparse:
        R, i, j = m.atom_pairs[:, :3], m.atom_pairs[:, 3], m.atom_pairs[:, 4]
        shifted = images[:, None, :] + R[None, :, :]  # (n_images, n_blocks, 3)
        T, t_j = np.floor_divide(shifted, reps), np.mod(shifted, reps)
        img_j = flat[np.ravel_multi_index(t_j.reshape(-1, 3).T, reps)].reshape(t_j.shape[:2])
        img_i = np.arange(len(images))[:, None]
        pairs = np.concatenate([T, (img_i * n_at + i)[..., None], (img_j * n_at + j)[..., None]], axis=-1)
        return BlockSparse.from_arrays(pairs.reshape(-1, 5), np.tile(m.shapes, (len(images), 1)),
                                       np.tile(m.entries, len(images)))

    info = dict(data.info)
    if info.get("occupation") is not None:
        info["occupation"] = info["occupation"] * len(images)
    info["atoms_quantity"] = big.n_atoms
    return DeephStructure(big, data.basis, info,
                          overlap=None if data.overlap is None else tile_matrix(data.overlap),
                          hamiltonian=None if data.hamiltonian is None else tile_matrix(data.hamiltonian))


__all__ = ["tile_deeph"]
