"""Atomic-orbital bases: which radial shells (and so which orbitals) each element carries.

A basis is the DeepH ``elements_orbital_map``: for each element, the angular momentum l of
each radial shell in order, e.g. ``{"O": [0, 0, 1, 1, 2], "H": [0, 0, 1]}`` (def2-SVP).
Inside a shell the orbitals are real spherical harmonics m = -l..l (p as y, z, x).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from deeph_jax.errors import DeephError


def openmx_to_wiki_permutation(l: int) -> np.ndarray:
    """Index map new -> old from OpenMX's real-harmonic order to the m = -l..l order.

    ``block_new = block_old[perm][:, perm]``. l=1: (x, y, z) -> (y, z, x); l=2:
    (z2, x2-y2, xy, xz, yz) -> (xy, yz, z2, xz, x2-y2); l>=3 as OpenMX's (m=0, +1, -1, +2, -2, ...).
    """
    if l == 0:
        return np.array([0])
    if l == 1:
        return np.array([1, 2, 0])
    if l == 2:
        return np.array([2, 4, 0, 3, 1])
    return np.concatenate([np.arange(2 * l, -1, -2), np.arange(1, 2 * l, 2)])


@dataclass(frozen=True)
class OrbitalBasis:
    """Radial shells per element.

    Attributes:
        shells: element symbol -> tuple of the l of each radial shell, in basis order.
    """

    shells: Mapping[str, tuple[int, ...]]

    @classmethod
    def from_orbital_map(cls, orbital_map: Mapping[str, Sequence[int]]) -> "OrbitalBasis":
        return cls({str(el): tuple(int(l) for l in ls) for el, ls in orbital_map.items()})

    def to_orbital_map(self) -> dict[str, list[int]]:
        return {el: list(ls) for el, ls in self.shells.items()}

    @property
    def elements(self) -> tuple[str, ...]:
        return tuple(self.shells)

    @property
    def lmax(self) -> int:
        return max((max(ls) for ls in self.shells.values() if ls), default=0)

    def n_orbitals(self, element: str) -> int:
        """Number of orbitals of one atom of ``element`` (spin not counted)."""
        return int(sum(2 * l + 1 for l in self.shells[element]))

    def shell_offsets(self, element: str) -> np.ndarray:
        """Start index of each shell inside the atom's orbital block, plus the total: (n_shells + 1,)."""
        sizes = [2 * l + 1 for l in self.shells[element]]
        return np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)

    def check_elements(self, symbols: Iterable[str], path=None) -> None:
        missing = sorted(set(symbols) - set(self.shells))
        if missing:
            raise DeephError(
                f"element(s) {', '.join(missing)} absent from elements_orbital_map "
                f"(which has {', '.join(self.elements)})",
                path,
            )

    def atom_offsets(self, symbols: Sequence[str]) -> np.ndarray:
        """Start of each atom's orbitals in the structure's orbital list, plus the total: (n_atoms + 1,)."""
        sizes = [self.n_orbitals(s) for s in symbols]
        return np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)

    def openmx_to_wiki(self, element: str) -> np.ndarray:
        """Permutation (new -> old) of one atom's orbitals from OpenMX order to m = -l..l order."""
        offsets = self.shell_offsets(element)
        return np.concatenate(
            [openmx_to_wiki_permutation(l) + o for l, o in zip(self.shells[element], offsets[:-1])]
        )

    def merged(self, other: "OrbitalBasis", path=None) -> "OrbitalBasis":
        """Union of two bases; an element present in both must have the same shells."""
        out = dict(self.shells)
        for el, ls in other.shells.items():
            if el in out and out[el] != ls:
                raise DeephError(
                    f"element {el} has shells {list(ls)} here but {list(out[el])} elsewhere in the dataset",
                    path,
                )
            out[el] = ls
        return OrbitalBasis(dict(sorted(out.items())))
