"""From k-space matrices on a Gamma-centred mesh to real-space blocks H_ij(R), with Wigner-Seitz assignment.

Given M(k) on the full mesh k = n / N (n_a = 0..N_a-1, reciprocal lattice units), the inverse
Bloch transform M_BvK(R0) = (1/N_k) sum_k exp(-i 2 pi k.R0) M(k) gives the matrix of the
Born-von Karman supercell: the sum of M(R0 + N m) over all m. Each block (i, j, R0) is then
given to the image R = R0 + N m that puts atom j closest to atom i (minimum image,
|pos_j + R.cell - pos_i| smallest); images equidistant within ``tie_tol`` share it equally.
Blocks whose image is farther than ``cutoff`` are dropped. With a BvK supercell longer than
2 x cutoff the blocks kept are each a single image.

Bloch convention of the project (and of PySCF's k-point AOs): M(k) = sum_R exp(i 2 pi k.R) M(R),
R applied to atom j.
"""

from __future__ import annotations

import itertools

import numpy as np


def mesh_fractions(mesh) -> np.ndarray:
    """(N_k, 3) Gamma-centred mesh points k = n / N in reciprocal lattice units, n_1 slowest."""
    axes = [np.arange(n) / n for n in mesh]
    return np.array(list(itertools.product(*axes)), dtype=np.float64).reshape(-1, 3)


def bvk_vectors(mesh) -> np.ndarray:
    """(N_k, 3) integer lattice vectors R0 of the BvK supercell, R0_a in 0..N_a-1."""
    return np.array(list(itertools.product(*[range(n) for n in mesh])), dtype=np.int64).reshape(-1, 3)


def shortest_bvk_length(cell: np.ndarray, mesh, periodic_dirs=(True, True, True)) -> float:
    """Length of the shortest non-zero lattice vector of the BvK superlattice (periodic directions only)."""
    big = np.asarray(mesh)[:, None] * np.asarray(cell)
    best = np.inf
    rng = [range(-2, 3) if p else range(0, 1) for p in periodic_dirs]
    for n in itertools.product(*rng):
        if any(n):
            best = min(best, float(np.linalg.norm(np.asarray(n) @ big)))
    return best


def wigner_seitz_blocks(
    m_k: np.ndarray,
    kfrac: np.ndarray,
    mesh,
    positions: np.ndarray,
    cell: np.ndarray,
    atom_offsets: np.ndarray,
    cutoff: float,
    tie_tol: float = 1e-5,
    search: int = 2,
) -> tuple[dict, float]:
    """Real-space blocks ``{(R1, R2, R3, i, j): block}`` from M(k) on the full Gamma-centred mesh.

    Args:
        m_k: (N_k, n_orb, n_orb) matrices at ``kfrac`` (any order; the full mesh of ``mesh``).
        kfrac: (N_k, 3) k-points in reciprocal lattice units.
        positions: (n_atoms, 3) Cartesian, Angstrom; cell: (3, 3) lattice vectors as rows, Angstrom.
        atom_offsets: (n_atoms + 1,) start of each atom's orbitals.
        cutoff: keep blocks with |pos_j + R.cell - pos_i| <= cutoff (Angstrom).
    Returns:
        (blocks, max |Im M(R)|): the blocks are real (the imaginary part of a real basis is noise).
    """
    mesh = tuple(int(n) for n in mesh)
    r0 = bvk_vectors(mesh)
    if len(kfrac) != len(r0):
        raise ValueError(f"{len(kfrac)} k-points for a {mesh} mesh")
    phase = np.exp(-2j * np.pi * (r0 @ kfrac.T)) / len(kfrac)  # (N_R, N_k)
    m_r = np.einsum("rk,kab->rab", phase, m_k)  # (N_R, n_orb, n_orb)
    max_imag = float(np.abs(m_r.imag).max(initial=0.0))
    m_r = m_r.real

    positions = np.asarray(positions, dtype=np.float64)
    cell = np.asarray(cell, dtype=np.float64)
    n_atoms = len(positions)
    shifts = np.array(list(itertools.product(range(-search, search + 1), repeat=3)), dtype=np.int64)
    # Candidate images R = R0 + N m: (N_R, n_m, 3) integer vectors, (N_R, n_m, 3) Cartesian.
    cand = r0[:, None, :] + shifts[None, :, :] * np.asarray(mesh)[None, None, :]
    cand_cart = cand @ cell
    diff = positions[None, :, :] - positions[:, None, :]  # (i, j, 3): pos_j - pos_i
    blocks: dict = {}
    for i in range(n_atoms):
        rows = slice(atom_offsets[i], atom_offsets[i + 1])
        for j in range(n_atoms):
            cols = slice(atom_offsets[j], atom_offsets[j + 1])
            d = np.linalg.norm(diff[i, j][None, None, :] + cand_cart, axis=-1)  # (N_R, n_m)
            dmin = d.min(axis=1, keepdims=True)
            ties = d <= dmin + tie_tol
            count = ties.sum(axis=1)
            keep = ties & (d <= cutoff)
            for r_idx, m_idx in zip(*np.nonzero(keep)):
                R = tuple(int(x) for x in cand[r_idx, m_idx])
                blocks[(R[0], R[1], R[2], i, j)] = m_r[r_idx, rows, cols] / count[r_idx]
    return _sorted_blocks(blocks), max_imag


def _sorted_blocks(blocks: dict) -> dict:
    return {k: blocks[k] for k in sorted(blocks)}
