"""Forward + gradient jit-compile once per padded shape bucket over a stream of mixed sizes;
gradients stay finite with self edges (zero vectors) present."""

from functools import partial
from pathlib import Path

import jax
import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest

from deeph_jax.graph import GraphTargets, batch_graphs, build_graph, count_buckets, padded_edge_blocks
from deeph_jax.io.deeph import read_deeph_dir
from deeph_jax.model import HamiltonianNet, count_parameters, model_elements, summary, tiny
from deeph_jax.model.config import ModelConfig, larger
from deeph_jax.model.network import FAST_COMPILE
from deeph_jax.model.testing import shared_dir

MOLECULES = shared_dir() / "data/deeph-dock/analyze/dataset/inputs.clean/dft"
pytestmark = pytest.mark.skipif(not MOLECULES.is_dir(), reason=f"shared data absent: {MOLECULES}")
CUTOFF = 5.0


def load(names):
    graphs, targets, basis = [], [], None
    for n in names:
        d = read_deeph_dir(MOLECULES / n)
        basis = d.basis if basis is None else basis.merged(d.basis)
        graphs.append(build_graph(d.structure, CUTOFF))
        targets.append(d)
    W = max(basis.n_orbitals(e) for e in basis.elements)
    tg = []
    for g, d in zip(graphs, targets):
        h, present = padded_edge_blocks(g, d.hamiltonian, basis, W)
        s, _ = padded_edge_blocks(g, d.overlap, basis, W)
        tg.append(GraphTargets(h, s, present))
    return graphs, tg, basis


def test_compiles_once_per_bucket_and_gradients_are_finite():
    # water (3 atoms) and ethanol (9 atoms) in a mixed order: two padded shapes.
    names = ["4990", "25000", "4991", "25001", "4992", "25002"]
    graphs, targets, basis = load(names)
    elements = model_elements(basis)
    model = HamiltonianNet(tiny().replace(cutoff=CUTOFF + 1.0), basis)
    traces = []

    def loss(params, vectors, batch):
        h, s = model.apply(params, batch._replace(vectors=vectors))
        m = batch.block_mask[:, None, None] & batch.edge_mask[:, None, None]
        return jnp.sum(jnp.where(m, (h - batch.h_blocks) ** 2 + (s - batch.s_blocks) ** 2, 0.0))

    # FAST_COMPILE only lowers XLA's optimization effort (compile time dominates this test).
    @partial(jax.jit, compiler_options=FAST_COMPILE)
    def step(params, batch):
        traces.append(batch.n_edges)  # runs only when jax traces, i.e. once per new shape
        return jax.value_and_grad(loss, argnums=(0, 1))(params, batch.vectors, batch)

    batches = [jax.tree_util.tree_map(jnp.asarray, batch_graphs([g], elements, [t])) for g, t in zip(graphs, targets)]
    params = model.init(jax.random.PRNGKey(0), batches[0])
    with jax.debug_nans(True):  # self edges have zero vectors: no NaN may reach values or gradients
        for b in batches:
            value, (grads, dvec) = step(params, b)
            assert np.isfinite(float(value))
            assert all(bool(jnp.isfinite(x).all()) for x in jax.tree_util.tree_leaves(grads))
            assert bool(jnp.isfinite(dvec).all()) and float(jnp.abs(dvec).max()) > 0
    expected = count_buckets([(g.n_nodes, g.n_edges) for g in graphs], 1)
    assert expected == 2
    assert len(traces) == expected, traces


def test_parameter_counts_and_summary():
    graphs, _, basis = load(["25000"])
    batch = jax.tree_util.tree_map(jnp.asarray, batch_graphs(graphs, model_elements(basis)))
    shapes = {}
    for name, cfg in (("default", ModelConfig()), ("larger", larger())):
        model = HamiltonianNet(cfg, basis)
        p = jax.eval_shape(lambda b: nn.Module.init(model, jax.random.PRNGKey(0), b), batch)
        shapes[name] = count_parameters(p)
        line = summary(cfg, basis, p)
        assert "\n" not in line and f"{shapes[name]:,} params" in line
    assert shapes["default"] < 1_000_000 < shapes["larger"]


def test_bad_irreps_fail_at_build():
    graphs, _, basis = load(["25000"])
    with pytest.raises(ValueError, match="lack"):
        HamiltonianNet(ModelConfig(edge_channels=(8, 4, 2, 0, 0)), basis)
    with pytest.raises(ValueError, match="entries"):
        ModelConfig(lmax=3)
    with pytest.raises(ValueError, match="num_radial must be at least 2"):
        ModelConfig(num_radial=1)  # the charge net's Gaussian widths divide by num_radial - 1


@pytest.mark.parametrize("offsite_shift", [False, True])
def test_head_shift_acts_on_site_only_unless_asked(offsite_shift):
    """A learned constant on off-site blocks is the same at every distance (a bias on every far block); the
    heads keep it only for bundles trained with it. With the heads' Linear zeroed the blocks are the shifts."""
    from deeph_jax.model.testing import graph_of, predict, random_params

    graphs, _, basis = load(["25000"])  # ethanol
    model = HamiltonianNet(tiny().replace(cutoff=CUTOFF + 1.0, offsite_shift=offsite_shift), basis)
    batch = jax.tree_util.tree_map(jnp.asarray, batch_graphs(graphs, model_elements(basis)))
    params = random_params(model, batch)

    def zero_head_linear(path, leaf):
        name = jax.tree_util.keystr(path)
        return jnp.zeros_like(leaf) if "head_" in name and "'linear'" in name else leaf

    params = jax.tree_util.tree_map_with_path(zero_head_linear, params)
    h, s = predict(model.apply, params, graphs[0], basis, dtype=np.float64)
    onsite = (graphs[0].senders == graphs[0].receivers) & ~graphs[0].shifts.any(1)
    assert np.abs(h[onsite]).max() > 0.1 and np.abs(s[onsite]).max() > 0.1
    far = np.abs(h[~onsite]).max(axis=(1, 2))
    assert (far.min() > 0.1) if offsite_shift else (far.max() == 0.0 and np.abs(s[~onsite]).max() == 0.0)


def test_bundles_without_the_key_keep_their_off_site_shift(tmp_path):
    import shutil

    import yaml

    from deeph_jax.predict.bundle import load_bundle

    shipped = Path(__file__).resolve().parents[2] / "models" / "water-pbe-def2svp"
    assert "offsite_shift" not in yaml.safe_load((shipped / "model.yaml").read_text())
    assert load_bundle(shipped)[0].offsite_shift  # trained with it: it predicts as trained
    new = tmp_path / "new"
    shutil.copytree(shipped, new)
    fields = yaml.safe_load((new / "model.yaml").read_text())
    (new / "model.yaml").write_text(yaml.safe_dump({**fields, "offsite_shift": False}))
    assert not load_bundle(new)[0].offsite_shift
