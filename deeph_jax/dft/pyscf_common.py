"""What the molecular and periodic generators share: PySCF AO order -> DeepH order, units.

PySCF's real spherical AOs are ordered atom by atom, shell (``bas``) by shell, and inside a
shell with ``nctr`` contractions as ``nctr`` consecutive runs of ``2l + 1`` functions. Inside
a run the order is m = -l..l for l >= 2 but (x, y, z) for p; DeepH wants (y, z, x) for p, so
every p run is permuted with ``[1, 2, 0]`` (new -> old). Every other run is kept.

Energies leave this module in eV, lengths in Angstrom, with the CODATA 2018 constants of
:mod:`deeph_jax.units` (never ``pyscf.data.nist``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from deeph_jax.errors import DeephError
from deeph_jax.io import OrbitalBasis

P_ORDER = np.array([1, 2, 0])  # PySCF (x, y, z) -> DeepH (y, z, x), new -> old


def limit_threads(n: int | None) -> None:
    """Pin PySCF's OpenMP threads (a worker process of a pool gets its share of the cores)."""
    if n:
        os.environ["OMP_NUM_THREADS"] = str(n)
        try:
            from pyscf import lib

            lib.num_threads(int(n))
        except Exception:  # pragma: no cover - pyscf absent or built without OpenMP
            pass


def shells_by_atom(mol) -> list[list[int]]:
    """The l of each radial shell of each atom, in PySCF AO order (nctr > 1 counts nctr shells)."""
    out: list[list[int]] = [[] for _ in range(mol.natm)]
    for b in range(mol.nbas):
        out[mol.bas_atom(b)] += [int(mol.bas_angular(b))] * int(mol.bas_nctr(b))
    return out


def orbital_basis(mol, symbols, path=None) -> OrbitalBasis:
    """The DeepH elements_orbital_map of ``mol``; every atom of an element must carry the same shells."""
    shells: dict[str, tuple[int, ...]] = {}
    for sym, ls in zip(symbols, shells_by_atom(mol)):
        if not ls:
            raise DeephError(f"basis {mol.basis!r} has no functions for element {sym}", path)
        if sym in shells and shells[sym] != tuple(ls):
            raise DeephError(f"atoms of element {sym} carry different shells ({list(shells[sym])} vs {ls})", path)
        shells[sym] = tuple(ls)
    return OrbitalBasis(dict(sorted(shells.items())))


def ao_permutation(mol) -> np.ndarray:
    """Index map new -> old from PySCF's AO order to the DeepH order (p runs as y, z, x)."""
    perm = []
    offset = 0
    for b in range(mol.nbas):
        l = int(mol.bas_angular(b))
        for _ in range(int(mol.bas_nctr(b))):
            run = P_ORDER if l == 1 else np.arange(2 * l + 1)
            perm.append(run + offset)
            offset += 2 * l + 1
    perm = np.concatenate(perm).astype(np.int64)
    if offset != mol.nao_nr():
        raise RuntimeError(f"AO count {offset} != nao {mol.nao_nr()} (cartesian basis?)")
    return perm


def check_basis_elements(symbols, basis: str, path=None, pseudo: str | None = None) -> None:
    """Every element must exist in ``basis`` (and in ``pseudo``): a clear one-line error otherwise."""
    import warnings

    from pyscf import gto

    for el in sorted(set(symbols)):
        try:
            with warnings.catch_warnings():  # PySCF's "install basis-set-exchange" hint; the error says it all
                warnings.simplefilter("ignore", UserWarning)
                shells = gto.basis.load(basis, el)
        except Exception as exc:
            raise DeephError(f"element {el} is not in basis {basis!r} ({type(exc).__name__})", path) from None
        if not shells:
            raise DeephError(f"element {el} is not in basis {basis!r}", path)
        if pseudo:
            try:
                pp = gto.basis.load_pseudo(pseudo, el)
            except Exception as exc:
                raise DeephError(
                    f"element {el} is not in pseudopotential {pseudo!r} ({type(exc).__name__})", path
                ) from None
            if not pp:
                raise DeephError(f"element {el} is not in pseudopotential {pseudo!r}", path)


def version_info() -> dict:
    import pyscf

    import deeph_jax

    return {
        "code": "pyscf",
        "code_version": pyscf.__version__,
        "generator": "deeph-jax",
        "generator_version": getattr(deeph_jax, "__version__", "unknown"),
    }


def structure_id(index: int, width: int = 5) -> str:
    return f"{index:0{width}d}"


def done_ids(out: Path) -> set[str]:
    """Structure folders already complete under ``out`` (hidden temp folders are not counted)."""
    if not out.is_dir():
        return set()
    return {p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / "hamiltonian.h5").is_file()}
