"""The eigenvalue loss builds each graph's Bloch pencil right (its eigenvalues equal those of the DFT folder's
H(k), S(k) by dense scipy), measures a known shift exactly, skips graphs above its size; its eigenvalue derivative
matches finite differences, and a training step with it runs (twice: XLA's own eigensolvers once hung there)."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from deeph_jax.graph import batch_graphs, build_graph
from deeph_jax.graph.batch import GraphTargets
from deeph_jax.graph.targets import padded_edge_blocks
from deeph_jax.io import read_deeph_dir
from deeph_jax.model.irreps_blocks import build_layout, model_elements
from deeph_jax.train.eigen_loss import EIGEN_KPOINTS, PAD_LEVEL, EigenSpec, eigen_errors, graph_bloch_matrices

REPO = Path(__file__).resolve().parents[2]
CELLS = [REPO / "datasets/hbn-szv/train-2x2/00003", REPO / "datasets/hbn-szv/train-3x3/00004"]


@pytest.fixture(scope="module")
def batch_and_data():
    datas = [read_deeph_dir(c) for c in CELLS]
    basis = datas[0].basis
    layout = build_layout(basis)
    graphs, targets = [], []
    for d in datas:
        g = build_graph(d.structure, 10.2)
        h, present = padded_edge_blocks(g, d.hamiltonian, basis, layout.width)
        s, _ = padded_edge_blocks(g, d.overlap, basis, layout.width)
        graphs.append(g)
        targets.append(GraphTargets(h, s, present))
    batch = batch_graphs(graphs, model_elements(basis), targets, dtype=np.float64)
    return datas, layout, batch


def test_levels_equal_the_folders_bands_and_a_shift_is_measured_exactly(batch_and_data):
    datas, layout, batch = batch_and_data
    window = (-8.0, 2.0)
    with jax.enable_x64(True):
        b = jax.tree_util.tree_map(jnp.asarray, batch)
        exact = eigen_errors(b.h_blocks, b, layout, EigenSpec(18, window))
        assert float(exact["sae_eig"]) < 1e-9
        # The reference: each folder's H(k), S(k) at the same k (lattice gauge), dense scipy.
        real = jnp.asarray(np.diagonal(layout.entry_mask[4 + np.arange(2)], axis1=1, axis2=2))
        expected = 0
        for d_index, d in enumerate(datas):
            for k in EIGEN_KPOINTS:
                k_frac = d.structure.cell @ k / (2 * np.pi)
                e = scipy.linalg.eigh(d.hamiltonian_k(k_frac), d.overlap_k(k_frac), eigvals_only=True)
                expected += int(np.sum((e >= window[0]) & (e <= window[1])))
                (h_re, h_im), orbitals, _ = graph_bloch_matrices(b.h_blocks, b, real, 18, k, PAD_LEVEL)
                (s_re, s_im), _, _ = graph_bloch_matrices(b.s_blocks, b, real, 18, k, 1.0)
                h = np.asarray(h_re[d_index]) + 1j * np.asarray(h_im[d_index])
                ours = scipy.linalg.eigh(h, np.asarray(s_re[d_index]) + 1j * np.asarray(s_im[d_index]),
                                         eigvals_only=True)
                assert int(orbitals[d_index].sum()) == len(e)
                np.testing.assert_allclose(ours[: len(e)], e, atol=1e-8)  # the padded levels lie above
        assert int(exact["count_eig"]) == expected > 0
        # H + 0.01 S moves every level by exactly 10 meV.
        shifted = eigen_errors(b.h_blocks + 0.01 * b.s_blocks, b, layout, EigenSpec(18, window))
        np.testing.assert_allclose(float(shifted["sae_eig"]) / float(shifted["count_eig"]), 0.01, rtol=1e-6)
        # The 18-atom cell does not fit 8 atoms: only the 8-atom cell counts.
        small = eigen_errors(b.h_blocks, b, layout, EigenSpec(8, window))
        assert 0 < int(small["count_eig"]) < expected


def test_gradient_is_finite(batch_and_data):
    datas, layout, batch = batch_and_data
    b = jax.tree_util.tree_map(jnp.asarray, batch._replace(h_blocks=batch.h_blocks.astype(np.float32),
                                                           s_blocks=batch.s_blocks.astype(np.float32),
                                                           vectors=batch.vectors.astype(np.float32)))
    noise = 0.01 * jax.random.normal(jax.random.PRNGKey(0), b.h_blocks.shape)
    noise = 0.5 * (noise + jnp.swapaxes(noise[b.mirror], 1, 2))  # keep H Hermitian

    def loss(scale):
        e = eigen_errors(b.h_blocks + scale * noise, b, layout, EigenSpec(18, (-8.0, 2.0)))
        return e["sse_eig"] / e["count_eig"]

    value, grad = jax.value_and_grad(loss)(1.0)
    assert np.isfinite(float(grad)) and float(grad) > 0 and float(value) > 0


def test_eigenvalue_derivative_matches_finite_differences():
    from deeph_jax.train.eigen_loss import generalized_levels

    rng = np.random.default_rng(4)
    n = 12
    x = rng.normal(size=(2, n, n)) + 1j * rng.normal(size=(2, n, n))
    h = x + np.conj(np.swapaxes(x, 1, 2))
    y = rng.normal(size=(2, n, n)) + 1j * rng.normal(size=(2, n, n))
    s = y @ np.conj(np.swapaxes(y, 1, 2)) + n * np.eye(n)
    dx = rng.normal(size=(2, n, n)) + 1j * rng.normal(size=(2, n, n))
    dh = dx + np.conj(np.swapaxes(dx, 1, 2))
    weights = rng.normal(size=(2, n))
    with jax.enable_x64(True):
        def loss(t):
            m = h + t * dh
            return jnp.sum(jnp.asarray(weights) * generalized_levels(jnp.asarray(m.real), jnp.asarray(m.imag),
                                                                     jnp.asarray(s.real), jnp.asarray(s.imag)))

        grad = float(jax.grad(loss)(0.0))
        eps = 1e-6
        numeric = (float(loss(eps)) - float(loss(-eps))) / (2 * eps)
        exact = sum(np.sum(weights[g] * scipy.linalg.eigh(h[g], s[g], eigvals_only=True)) for g in range(2))
        assert abs(float(loss(0.0)) - exact) < 1e-9
    assert abs(grad - numeric) < 1e-6 * max(1.0, abs(numeric))


def test_host_solver_shortcuts_agree_with_scipy():
    """The reference levels (no eigenvectors) and the all-padding shortcut give scipy's own levels and vectors."""
    from deeph_jax.train.eigen_loss import _host_eigh

    rng = np.random.default_rng(7)
    n = 10
    x = rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))
    y = rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))
    pencil = (x + x.conj().T, y @ y.conj().T + n * np.eye(n))
    padding = (np.diag(rng.permutation([PAD_LEVEL] * (n - 3) + [3.0, -1.0, 2.0])), np.eye(n))
    h = np.stack([pencil[0], padding[0]])
    s = np.stack([pencil[1], padding[1]])
    w, v_re, v_im = _host_eigh(h.real, h.imag, s.real, s.imag, np.float64)
    w_only = _host_eigh(h.real, h.imag, s.real, s.imag, np.float64, vectors=False)
    for g in range(2):
        ref_w, ref_v = scipy.linalg.eigh(h[g], s[g])
        assert np.allclose(w[g], ref_w, atol=1e-10) and np.allclose(w_only[g], ref_w, atol=1e-10)
        v = v_re[g] + 1j * v_im[g]
        assert np.allclose(h[g] @ v, s[g] @ v * w[g][None, :], atol=1e-9)
        assert np.allclose(v.conj().T @ s[g] @ v, np.eye(n), atol=1e-9)


def test_training_steps_with_the_eigenvalue_loss_run():
    from conftest import TINY_MODEL
    from deeph_jax.model import HamiltonianNet
    from deeph_jax.model.config import ModelConfig
    from deeph_jax.train.config import TrainConfig
    from deeph_jax.train.data import load_sample, shard_batches, stack_batches
    from deeph_jax.train.step import init_state, make_optimizer, make_train_step, to_device_batch

    basis = read_deeph_dir(CELLS[0], hamiltonian=None, overlap=False).basis
    config = ModelConfig.from_dict({**TINY_MODEL, "cutoff": 6.0})
    samples = [load_sample(c, basis, 6.0, 4) for c in CELLS]
    stacked = stack_batches(shard_batches(samples, 1, model_elements(basis), np.float32))
    tc = TrainConfig.coerce({"eigen_weight": 1.0, "eigen_window_eV": [-7.0, 1.5], "eigen_max_atoms": 18,
                             "steps": 10, "warmup_steps": 1})
    model, layout, tx = HamiltonianNet(config, basis), build_layout(basis), make_optimizer(tc)
    state = init_state(model, tx, jax.random.PRNGKey(0), jax.tree_util.tree_map(lambda x: x[0], stacked))
    step = make_train_step(model, layout, tx, tc)
    batch = to_device_batch(stacked)
    losses = []
    for _ in range(3):
        state, metrics = step(state, batch)
        losses.append(float(metrics["loss"]))
        assert np.isfinite(float(metrics["mae_eig"])) and float(metrics["mae_eig"]) > 0
    assert losses[-1] < losses[0]


def test_spinful_levels_equal_the_folders_and_a_shift_is_measured_exactly():
    """Spin-orbit H (CH2BrCl, X2C): the levels of the complex spinful pencil, S doubled over spin, are the
    folder's dense ones, every Kramers pair twice."""
    from deeph_jax.train.eigen_loss import spin_doubled

    folder = next(p for p in sorted((REPO / "datasets/halides-soc-ood").iterdir()) if (p / "POSCAR").is_file())
    d = read_deeph_dir(folder)
    assert d.spinful
    layout = build_layout(d.basis)
    g = build_graph(d.structure, 6.0)
    h, present = padded_edge_blocks(g, d.hamiltonian, d.basis, layout.width, spinful=True)
    s, _ = padded_edge_blocks(g, d.overlap, d.basis, layout.width)
    batch = batch_graphs([g], model_elements(d.basis), [GraphTargets(h, s, present)], dtype=np.float64)
    window = (-30.0, 0.0)
    e = scipy.linalg.eigh(d.hamiltonian_k([0, 0, 0]), d.overlap_k([0, 0, 0]), eigvals_only=True)  # S doubled
    with jax.enable_x64(True):
        b = jax.tree_util.tree_map(jnp.asarray, batch)
        exact = eigen_errors(b.h_blocks, b, layout, EigenSpec(8, window))
        assert float(exact["sae_eig"]) < 1e-9
        inside = int(np.sum((e >= window[0]) & (e <= window[1])))
        assert inside > 0 and inside % 2 == 0
        assert int(exact["count_eig"]) == len(EIGEN_KPOINTS) * inside
        assert int(eigen_errors(b.h_blocks, b, layout, EigenSpec(8, window, n_kpoints=1))["count_eig"]) == inside
        shifted = eigen_errors(b.h_blocks + 0.01 * spin_doubled(b.s_blocks), b, layout, EigenSpec(8, window))
        np.testing.assert_allclose(float(shifted["sae_eig"]) / float(shifted["count_eig"]), 0.01, rtol=1e-6)
