"""Exact overlap blocks S_ij(R) from a Gaussian basis PySCF knows: cheap, and no network error.

S_ij(R) = <phi_i | phi_j(. - R)> depends only on the two species and the displacement
d = r_j + R - r_i, so every graph edge is one two-centre integral. Edges are grouped by species
pair and evaluated in slabs with ``pyscf.gto.intor_cross`` between one atom at the origin and
many displaced partner atoms: linear in the number of edges, for molecules and crystals alike
(a lattice sum is not needed because each stored block is one (i, j, R) term).
"""

from __future__ import annotations

import numpy as np

from deeph_jax.errors import DeephError
from deeph_jax.graph import PairGraph
from deeph_jax.io import BlockSparse, OrbitalBasis
from deeph_jax.units import ANGSTROM_TO_BOHR


def _atom_mol(symbol: str, positions_bohr: np.ndarray, basis_name: str):
    from pyscf import gto
    from pyscf.data.elements import charge

    mol = gto.Mole()
    mol.atom = [[symbol, tuple(p)] for p in positions_bohr]
    mol.unit = "Bohr"
    mol.basis = basis_name
    mol.spin = (charge(symbol) * len(positions_bohr)) % 2
    mol.cart = False
    mol.verbose = 0
    mol.build()
    return mol


def basis_matches(basis_name: str, basis: OrbitalBasis) -> bool:
    """Whether PySCF's ``basis_name`` gives exactly the shells of ``basis`` for every element."""
    from deeph_jax.dft.pyscf_common import shells_by_atom

    try:
        for el, ls in basis.shells.items():
            if tuple(shells_by_atom(_atom_mol(el, np.zeros((1, 3)), basis_name))[0]) != tuple(ls):
                return False
    except Exception:  # unknown basis or element
        return False
    return True


def exact_overlap(graph: PairGraph, basis_name: str, basis: OrbitalBasis, edges=None, slab: int = 4096,
                  checked: bool = False) -> BlockSparse:
    """Overlap blocks of ``edges`` of ``graph`` (default all, in that order), from PySCF's ``basis_name``."""
    from pyscf import gto

    from deeph_jax.dft.pyscf_common import ao_permutation

    if not checked and not basis_matches(basis_name, basis):
        raise DeephError(f"PySCF basis {basis_name!r} does not give the model's orbital map {basis.to_orbital_map()}")
    edges_all = np.arange(graph.n_edges) if edges is None else np.asarray(edges)
    symbols = np.asarray(graph.symbols)
    si, sj = symbols[graph.senders[edges_all]], symbols[graph.receivers[edges_all]]
    n_orb = {e: basis.n_orbitals(e) for e in basis.elements}
    blocks: list[np.ndarray | None] = [None] * len(edges_all)
    origin = {e: _atom_mol(e, np.zeros((1, 3)), basis_name) for e in set(symbols)}
    perm = {e: ao_permutation(m) for e, m in origin.items()}
    d_bohr = graph.vectors[edges_all] * ANGSTROM_TO_BOHR
    for a in sorted(set(si)):
        for b in sorted(set(sj)):
            group = np.nonzero((si == a) & (sj == b))[0]  # positions in edges_all
            na, nb = n_orb[a], n_orb[b]
            for start in range(0, len(group), slab):
                part = group[start : start + slab]
                partner = _atom_mol(b, d_bohr[part], basis_name)
                s = gto.intor_cross("int1e_ovlp", origin[a], partner)  # (na, len(part) * nb)
                s = s[perm[a]].reshape(na, len(part), nb)[:, :, perm[b]]
                for k, e in enumerate(part):
                    blocks[e] = s[:, k, :]
    shapes = np.asarray([[n_orb[a], n_orb[b]] for a, b in zip(si, sj)], dtype=np.int64)
    entries = np.concatenate([blk.reshape(-1) for blk in blocks]) if blocks else np.zeros(0)
    return BlockSparse.from_arrays(graph.atom_pairs[edges_all], shapes, entries)
