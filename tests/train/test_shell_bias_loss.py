"""The shell-bias loss: the off-site H errors averaged per (element pair, distance bin, entry), squared and
weighted by their counts. Checked by hand on four edges, against a direct numpy grouping on real hBN blocks,
and in the training loss (the plain loss plus the weighted term)."""

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np

from deeph_jax.graph import build_graph
from deeph_jax.io import read_deeph_dir
from deeph_jax.model.irreps_blocks import model_elements
from deeph_jax.train.step import ShellSpec, shell_bias_sse, shell_error_sums

REPO = Path(__file__).resolve().parents[2]
CELL = REPO / "datasets/hbn-szv/train-3x3/00004"
LAYOUT = SimpleNamespace(elements=["B", "N"])  # the grouping needs the element count only


def _edges(vectors, senders, receivers, species):
    return SimpleNamespace(vectors=jnp.asarray(vectors, jnp.float64), senders=jnp.asarray(senders),
                           receivers=jnp.asarray(receivers), species=jnp.asarray(species))


def test_four_edges_by_hand():
    # an on-site block (left out), two B-N hoppings at 1.0 and 1.1 A (one bin of 0.5 A) and one at 3.0 A
    batch = _edges([[0, 0, 0], [1.0, 0, 0], [0, 1.1, 0], [0, 0, 3.0]], [0, 0, 0, 0], [0, 1, 1, 1], [0, 1])
    dh = np.zeros((4, 2, 2))
    dh[:, 0, 0] = [5.0, 1.0, 3.0, -2.0]
    dh[1, 1, 1] = 4.0  # alone in its entry: mean 2 over the two blocks of the bin
    mh = np.ones((4, 2, 2))
    sums, counts = shell_error_sums(jnp.asarray(dh), jnp.asarray(mh), batch, LAYOUT, ShellSpec(0.5, 4.0))
    # (1 + 3)^2 / 2 + 4^2 / 2 + (-2)^2 / 1; the on-site 5 is in no group
    assert float(shell_bias_sse(sums, counts)) == 8.0 + 8.0 + 4.0
    assert float(jnp.sum(counts)) == 12.0


def test_equals_a_direct_grouping_of_real_hbn_blocks():
    data = read_deeph_dir(CELL)
    graph = build_graph(data.structure, 10.2)
    symbols = np.asarray(data.structure.symbols)
    species = np.asarray([model_elements(data.basis).index(s) for s in symbols])
    rng = np.random.default_rng(0)
    dh = rng.normal(0.01, 0.02, (graph.n_edges, 4, 4))  # errors with a mean: a bias to find
    lengths = np.linalg.norm(graph.vectors, axis=1)
    onsite = (graph.senders == graph.receivers) & (lengths == 0)
    expected = 0.0
    for pair in {(a, b) for a in range(2) for b in range(2)}:
        for b in range(int(10.2 / 0.25) + 2):
            sel = ~onsite & (species[graph.senders] == pair[0]) & (species[graph.receivers] == pair[1]) \
                & (np.floor(lengths / 0.25) == b)
            if sel.any():
                expected += float((dh[sel].sum(axis=0) ** 2 / sel.sum()).sum())
    batch = _edges(graph.vectors, graph.senders, graph.receivers, species)
    sums, counts = shell_error_sums(jnp.asarray(dh), jnp.ones_like(jnp.asarray(dh)), batch, LAYOUT,
                                    ShellSpec(0.25, 10.2))
    np.testing.assert_allclose(float(shell_bias_sse(sums, counts)), expected, rtol=1e-6)  # float32 sums


def test_training_loss_adds_the_weighted_term():
    """(A training step with it runs in the resumed hBN runs; compiling one here would cost ~2 minutes.)"""
    from conftest import TINY_MODEL
    from deeph_jax.model import HamiltonianNet
    from deeph_jax.model.config import ModelConfig
    from deeph_jax.model.irreps_blocks import build_layout
    from deeph_jax.train.config import TrainConfig
    from deeph_jax.train.data import load_sample, shard_batches, stack_batches
    from deeph_jax.train.step import (init_state, make_optimizer, shell_bias_spec, stacked_errors, to_device_batch,
                                      weighted_loss)

    basis = read_deeph_dir(CELL, hamiltonian=None, overlap=False).basis
    config = ModelConfig.from_dict({**TINY_MODEL, "cutoff": 6.0})
    samples = [load_sample(c, basis, 6.0, 4) for c in (REPO / "datasets/hbn-szv/train-2x2/00003", CELL)]
    stacked = to_device_batch(stack_batches(shard_batches(samples, 1, model_elements(basis), np.float32)))
    tc = TrainConfig.coerce({"shell_bias_weight": 10.0, "steps": 10, "warmup_steps": 1})
    model, layout, tx = HamiltonianNet(config, basis), build_layout(basis), make_optimizer(tc)
    state = init_state(model, tx, jax.random.PRNGKey(0), jax.tree_util.tree_map(lambda x: x[0], stacked))
    e = stacked_errors(model, layout, state.params, stacked, shells=shell_bias_spec(tc, config.cutoff))
    plain = float(weighted_loss(e, dataclasses.replace(tc, shell_bias_weight=0.0)))
    bias = float(shell_bias_sse(e["group_sum_h"], e["group_count_h"]) / e["count_offsite"])
    assert 0.0 < bias <= float(e["sse_h_offsite"] / e["count_offsite"])  # a part of the off-site MSE
    np.testing.assert_allclose(float(weighted_loss(e, tc)), plain + 10.0 * bias, rtol=1e-5)
