"""E(3) equivariance, relabelling invariance and exact Hermiticity of HamiltonianNet's output,
with random untrained parameters, on the shared MoTe2 cell and a C/H molecule (benzene)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deeph_jax.graph import batch_graphs, build_graph, padded_sizes
from deeph_jax.io.deeph import read_deeph_dir
from deeph_jax.model import HamiltonianNet, ModelConfig, model_elements, random_rotation
from deeph_jax.model.network import FAST_COMPILE
from deeph_jax.model.testing import equivariance_error, relabel_error, shared_dir

DATA = shared_dir() / "data" / "deeph-dock"
CASES = {
    "MoTe2": (DATA / "compute/eigen/eigen.clean/MoTe2", 7.0),
    "C6H6": (DATA / "analyze/dataset/inputs.clean/dft/1000", 5.0),
}
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data absent: {DATA} (../shared beside the repo)")


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
    path, cutoff = CASES[request.param]
    data = read_deeph_dir(path, hamiltonian=None, overlap=False)
    model = HamiltonianNet(ModelConfig(cutoff=cutoff + 1.0), data.basis)
    graph = build_graph(data.structure, cutoff)
    # One padded shape per structure (room for two copies): each dtype compiles once.
    sizes = padded_sizes(2 * graph.n_nodes, 2 * graph.n_edges, 2)
    batch = jax.tree_util.tree_map(jnp.asarray, batch_graphs([graph], model_elements(data.basis), sizes=sizes))
    params = model.init(jax.random.PRNGKey(0), batch)
    # FAST_COMPILE: less XLA optimization effort; compile time dominates these tests.
    return request.param, data, cutoff, jax.jit(model.apply, compiler_options=FAST_COMPILE), params, graph, sizes


def test_rotation_and_inversion_float32(case):
    name, data, cutoff, apply, params, _, sizes = case
    Q = random_rotation(np.random.default_rng(1))
    for q in (Q, -np.eye(3), -Q):
        err, hmax = equivariance_error(apply, params, data.structure, data.basis, cutoff, q, np.float32, sizes)
        print(f"{name} float32: max error {err:.3g} eV, max|H| {hmax:.3g} eV, ratio {err / hmax:.2g}")
        assert err <= 1e-5 * hmax


def test_rotation_and_inversion_float64(case):
    name, data, cutoff, apply, params, _, sizes = case
    Q = random_rotation(np.random.default_rng(2))
    with jax.enable_x64(True):
        for q in (Q, -np.eye(3)):
            err, hmax = equivariance_error(apply, params, data.structure, data.basis, cutoff, q, np.float64, sizes)
            print(f"{name} float64: max error {err:.3g} eV, max|H| {hmax:.3g} eV")
            assert err <= 1e-9


def test_translation_and_permutation(case):
    name, data, cutoff, apply, params, _, sizes = case
    n = data.structure.n_atoms
    perm = np.random.default_rng(3).permutation(n)
    err = relabel_error(apply, params, data.structure, data.basis, cutoff, perm, np.array([0.3, -1.1, 0.7]),
                        sizes=sizes)
    assert err <= 1e-5 * 10.0  # float32 rounding of shifted positions; blocks are O(1-10) eV


def test_hermitian_bitwise_and_padding(case):
    name, data, cutoff, apply, params, graph, sizes = case
    elements = model_elements(data.basis)
    # Two copies in one batch: mirror indices are offset, output must still be exactly Hermitian.
    batch = batch_graphs([graph, graph], elements, sizes=sizes)
    h, s = apply(params, jax.tree_util.tree_map(jnp.asarray, batch))
    h, s = np.asarray(h), np.asarray(s)
    mirror = batch.mirror
    for x in (h, s):
        assert np.array_equal(x[mirror], np.swapaxes(x, 1, 2)), "H_ji(-R) must equal H_ij(R)^T bitwise"
        assert not np.any(x[~batch.edge_mask]), "padding edges must be zero"
        n_orb = np.asarray([data.basis.n_orbitals(e) for e in elements])[batch.species]
        rows = np.arange(x.shape[1])[None, :, None] < n_orb[batch.senders][:, None, None]
        cols = np.arange(x.shape[2])[None, None, :] < n_orb[batch.receivers][:, None, None]
        assert not np.any(x[~(rows & cols)]), "entries outside the (n_orb(i), n_orb(j)) corner must be zero"
    # The two copies agree (batching does not change predictions beyond float rounding).
    e = graph.n_edges
    np.testing.assert_allclose(h[:e], h[e: 2 * e], atol=1e-5 * np.abs(h).max())
    if name == "MoTe2":
        ap = graph.atom_pairs
        assert np.any((ap[:, 3] == ap[:, 4]) & np.any(ap[:, :3] != 0, axis=1)), "want (i, i, R != 0) edges"
