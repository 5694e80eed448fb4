"""Magnetic configurations: a signed moment per atom, the input of collinear-spin models.

A structure folder gives them in info.json (a list, one number per atom in POSCAR order, Bohr
magnetons, sign = up / down): ``magnetic_moments`` (the configuration asked for, as predict.py
records it) or else ``magnetic_moments_muB`` (the DFT generators' Mulliken spin populations
n_up - n_down, datasets/README.md); at prediction they come from the user (a list such as ``2,-2,0``
or a file of numbers). Absent means zero for every atom. The model predicts H-up for m and H-down as
the same network on -m, so flipping every moment swaps the channels.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from deeph_jax.errors import DeephError
from deeph_jax.graph.pairs import PairGraph

INFO_KEY = "magnetic_moments"
INFO_KEYS = (INFO_KEY, "magnetic_moments_muB")  # read in this order


def check_moments(moments, n_atoms: int, source=None) -> np.ndarray:
    """(n_atoms,) float64 from any sequence of finite numbers; one DeephError line otherwise."""
    try:
        m = np.asarray(moments, dtype=np.float64)
    except (TypeError, ValueError):
        raise DeephError(f"magnetic moments must be a list of numbers, found {str(moments)[:60]!r}", source) from None
    if m.shape != (n_atoms,):
        raise DeephError(f"{m.size} magnetic moment(s) for {n_atoms} atoms (one signed moment per atom)", source)
    if not np.all(np.isfinite(m)):
        raise DeephError("magnetic moments contain NaN or Inf", source)
    return m


def moments_from_info(info: dict, n_atoms: int, source=None) -> np.ndarray:
    """The structure's moments from its info.json dict (``INFO_KEYS``; zero for every atom when absent)."""
    for key in INFO_KEYS:
        if info.get(key) is not None:
            return check_moments(info[key], n_atoms, source)
    return np.zeros(n_atoms)


def parse_moments(text: str, n_atoms: int) -> np.ndarray:
    """Moments from a command line: a file of numbers (whitespace or comma separated) or ``"2,-2,0"``."""
    path = Path(text)
    source = path if path.is_file() else "--magnetic-moments"
    raw = path.read_text() if path.is_file() else text
    try:
        values = [float(v) for v in raw.replace(",", " ").split()]
    except ValueError:
        raise DeephError(f"not a list of numbers (nor a file): {text[:60]!r}", source) from None
    return check_moments(values, n_atoms, source)


def attach_moments(graph: PairGraph, moments) -> PairGraph:
    """``graph`` with ``node_moments`` (n_nodes,) set; ``moments=None`` leaves it unchanged."""
    if moments is None:
        return graph
    return replace(graph, node_moments=check_moments(moments, graph.n_nodes))
