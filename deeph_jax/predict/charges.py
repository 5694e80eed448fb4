"""The first pass of a model with environment-dependent charges: the whole structure's charges, then their potential.

A prediction chunk holds only the atoms near its centre, but the potential at each of them sums over every
charge of the structure. So before the chunks run, :func:`environment_charges` evaluates the model's charge net
on all atoms (it reads only neighbours within the message cutoff: O(N), one cheap jitted call), and
:func:`attach_charge_potentials` sums their long-range potential once, directly or by particle-mesh Ewald
(O(N log N)) by the rule of :func:`deeph_jax.physics.ewald.use_direct_sum`; each chunk then takes its rows.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from deeph_jax.graph import PairGraph


def environment_charges(graph: PairGraph, predictor) -> np.ndarray:
    """(n_nodes,) float64 charge transfer dq (units of e) of every atom, neutral over the structure, from the
    model's charge net on the graph's edges within its cutoff (the message cutoff)."""
    import jax
    import jax.numpy as jnp

    from deeph_jax.model.long_range import charge_net_for, neighbour_weights

    net = charge_net_for(predictor.config, len(predictor.elements))
    cutoff = net.cutoff
    lengths = graph.lengths
    near = (lengths > 0) & (lengths < cutoff)  # self edges have length 0
    index = {e: k for k, e in enumerate(predictor.elements)}
    species = jnp.asarray([index[s] for s in graph.symbols], jnp.int32)
    length = jnp.asarray(lengths[near])
    ones = jnp.ones(length.shape, bool)
    weights = neighbour_weights(length, ~ones, ones, cutoff)
    dq = jax.jit(net.apply)({"params": predictor.params["params"]["charge_net"]}, species, length,
                            jnp.asarray(graph.senders[near]), jnp.asarray(graph.receivers[near]), weights)
    dq = np.asarray(dq, np.float64)
    return dq - dq.mean()


def attach_charge_potentials(graph: PairGraph, predictor, periodic: bool) -> PairGraph:
    """``graph`` with ``charge_potentials`` (n_nodes,) volts: the long-range potential of the whole structure's
    environment-dependent charges (in the structure's own cell when ``periodic``, open boundaries otherwise)."""
    from deeph_jax.physics.ewald import long_range_potential

    dq = environment_charges(graph, predictor)
    cell = graph.cell if periodic else None
    phi = long_range_potential(graph.positions, cell, dq, predictor.config.long_range_alpha)
    return replace(graph, charge_potentials=np.asarray(phi, np.float64), charge_kernel=None)


__all__ = ["attach_charge_potentials", "environment_charges"]
