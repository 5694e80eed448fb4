"""Long-range electrostatic inputs of a pair graph: per-element Ewald potentials at every atom.

The network's long-range channel (``ModelConfig.long_range_alpha``) gives each element e a learned
charge q_e; the long-range (erf) part of the Ewald potential those charges make at atom i is linear in
them, phi_i = sum_e q_e Psi_i^e, with

    Psi^e = K (1_e - x_e),      x_e = (atoms of element e) / (all atoms),

K the long-range kernel of :mod:`deeph_jax.physics.ewald` and 1_e the indicator of element e. Subtracting
x_e makes every charge set neutral (a common shift of all q_e changes nothing), and Psi depends only on the
geometry, so it is computed once per structure, here, on the host in float64: directly for training cells,
by particle-mesh Ewald for large structures, always over the whole structure (a prediction chunk takes the
rows of its atoms, so chunked and whole-structure predictions see the same potentials).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from deeph_jax.graph.pairs import Cutoff, PairGraph, build_graph
from deeph_jax.physics.ewald import DIRECT_MAX_TERMS, long_range_kernel, long_range_potential, use_direct_sum


# Atoms above which a structure's dense kernel (n_atoms^2 floats, in every training batch) is refused.
CHARGE_KERNEL_MAX_ATOMS = 2000


def element_charges(symbols: Sequence[str], elements: Sequence[str]) -> np.ndarray:
    """(n_atoms, n_elements): column e is the neutral charge set 1_e - x_e (x_e the fraction of element e)."""
    sym = np.asarray(symbols)
    return np.stack([(sym == e).astype(np.float64) - np.mean(sym == e) for e in elements], axis=1)


def element_potentials(positions: np.ndarray, cell: np.ndarray | None, symbols: Sequence[str],
                       elements: Sequence[str], alpha: float, direct_max_terms: float = DIRECT_MAX_TERMS) -> np.ndarray:
    """Psi (n_atoms, n_elements), eV per unit charge: column e is the long-range potential of the neutral
    charge set 1_e - x_e. Periodic cells are summed in 3D in their own cell (``cell`` rows, Angstrom), by the
    rule of :func:`deeph_jax.physics.ewald.use_direct_sum` (``direct_max_terms`` overrides its bound);
    ``cell=None`` is a molecule (open boundaries, direct). One dense kernel serves every column of a direct sum
    up to :data:`CHARGE_KERNEL_MAX_ATOMS` atoms; larger molecules or flakes sum each column in blocks of rows."""
    charges = element_charges(symbols, elements)
    if use_direct_sum(len(charges), cell, alpha, direct_max_terms=direct_max_terms) \
            and len(charges) <= CHARGE_KERNEL_MAX_ATOMS:
        return long_range_kernel(positions, cell, alpha) @ charges
    return np.stack([long_range_potential(positions, cell, q, alpha, direct_max_atoms=0) for q in charges.T], axis=1)


def attach_long_range(graph: PairGraph, elements: Sequence[str], alpha: float | None, periodic: bool,
                      charge_kernel: bool = False) -> PairGraph:
    """``graph`` with ``node_potentials`` (n_nodes, n_elements) filled, and with ``charge_kernel`` the dense
    long-range kernel K (n_nodes, n_nodes) that environment-dependent charges need in training; unchanged when
    ``alpha`` is None."""
    if alpha is None:
        return graph
    cell = graph.cell if periodic else None
    kernel = None
    if charge_kernel:
        if graph.n_nodes > CHARGE_KERNEL_MAX_ATOMS:
            raise ValueError(f"a dense charge kernel for {graph.n_nodes} atoms (> {CHARGE_KERNEL_MAX_ATOMS}) is "
                             f"too large to train on; predict such structures with attach_charge_potentials")
        kernel = long_range_kernel(graph.positions, cell, alpha)
        potentials = kernel @ element_charges(graph.symbols, elements)  # the same sum as the charges' potential
    else:
        potentials = element_potentials(graph.positions, cell, graph.symbols, elements, alpha)
    return replace(graph, node_potentials=potentials, charge_kernel=kernel)


def build_model_graph(structure, cutoff: Cutoff, elements: Sequence[str],
                      long_range_alpha: float | None = None, charge_kernel: bool = False) -> PairGraph:
    """The graph a model sees: the pair graph within ``cutoff`` (A), with the long-range potentials of the
    model's ``elements`` when it has that channel (``long_range_alpha`` in 1/A, else None), and the dense kernel
    of its environment-dependent charges for training (``charge_kernel``)."""
    return attach_long_range(build_graph(structure, cutoff), elements, long_range_alpha, structure.periodic,
                             charge_kernel)


__all__ = ["CHARGE_KERNEL_MAX_ATOMS", "attach_long_range", "build_model_graph", "element_charges", "element_potentials"]
