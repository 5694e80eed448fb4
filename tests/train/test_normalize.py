"""The radial output scale of the heads (``ModelConfig.radial_scale``): the head reads its table linearly
in edge length, and the table set from real DFT blocks (a shipped hBN cell) follows their size."""

from pathlib import Path

import jax.numpy as jnp
import numpy as np

from deeph_jax.model import model_elements
from deeph_jax.model.config import ModelConfig
from deeph_jax.model.irreps_blocks import build_layout
from deeph_jax.model.network import radial_table_at
from deeph_jax.train.data import load_sample
from deeph_jax.train.normalize import radial_log_scale, target_irreps, target_statistics

REPO = Path(__file__).resolve().parents[2]
CELL = REPO / "datasets/hbn-szv/train-2x2/00000"


def test_radial_table_is_read_linearly_in_length():
    nodes = ModelConfig(cutoff=7.2, radial_scale=True).radial_scale_nodes
    rng = np.random.default_rng(3)
    table = rng.normal(size=(5, len(nodes)))
    kind = rng.integers(0, 5, 200)
    lengths = rng.uniform(0.0, nodes[-1] + 2.0, 200)  # some beyond the last node: held there
    got = np.asarray(radial_table_at(jnp.asarray(table), jnp.asarray(kind), jnp.asarray(lengths), tuple(nodes)))
    expected = np.array([np.interp(r, nodes, table[k]) for k, r in zip(kind, lengths)])
    np.testing.assert_allclose(got, expected, atol=1e-5)  # float32


def test_radial_table_follows_the_size_of_dft_blocks():
    config = ModelConfig(cutoff=10.2, radial_scale=True)
    nodes = config.radial_scale_nodes
    sample = load_sample(CELL, _basis(), config.cutoff, 4)
    layout, elements = build_layout(_basis()), model_elements(_basis())
    _, scale = target_statistics([sample], layout, elements, "h")
    table = radial_log_scale([sample], layout, elements, "h", scale, nodes)
    n = len(elements)
    bn = elements.index("B") * n + elements.index("N")
    assert not table[n * n :].any(), "on-site kinds keep the plain scale"
    # The nearest-neighbour B-N bonds (1.45 A, rattled) alone lie within a few widths of the 1.5 A node.
    g, t = sample.graph, sample.targets
    lengths = np.linalg.norm(g.vectors, axis=1)
    sym = np.asarray(g.symbols)
    near = t.present & (sym[g.senders] == "B") & (sym[g.receivers] == "N") & (np.abs(lengths - 1.45) < 0.3)
    (x,) = target_irreps(t.h_blocks[near], np.full(near.sum(), bn), layout, "h")
    rms = np.sqrt(np.mean((x / scale[bn][layout.channel_of_dim]) ** 2))
    node = int(np.argmin(np.abs(nodes - 1.5)))
    np.testing.assert_allclose(np.exp(table[bn, node]), rms, rtol=0.05)
    # Nearsightedness: B-N blocks beyond 9 A are over 100x smaller than the bonds.
    assert table[bn, node] - table[bn, np.argmin(np.abs(nodes - 9.0))] > np.log(100.0)
    # Below the shortest bond there is no data: the nearest node with data holds.
    assert table[bn, 0] == table[bn, 1] == table[bn, 2]


def _basis():
    from deeph_jax.io.deeph import read_deeph_dir

    return read_deeph_dir(CELL, hamiltonian=None, overlap=False).basis
