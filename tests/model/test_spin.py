"""Spinful models (``ModelConfig.spin``): the spin-orbit head's irreps <-> blocks map, and with random
parameters, on water in def2-SVP (s, p, d shells), the invariances: equivariance under rotations acting on
space and spin together (and inversion on space only), exact Hermiticity, Kramers pairs of the predicted
SOC H, the collinear channel swap under flipping every moment; shipped spinless bundles unchanged; and a
short training run on a toy SOC dataset.

Random parameters come from :func:`deeph_jax.model.testing.random_params` (shapes traced, values drawn in
numpy): ``model.init`` compiles ~100 initializers, several times the cost of the forward pass.
"""

from dataclasses import replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deeph_jax.graph import attach_moments, batch_graphs, build_graph, padded_sizes
from deeph_jax.io import BlockSparse, read_deeph_dir
from deeph_jax.model import HamiltonianNet, model_elements, random_rotation, tiny, wigner_D
from deeph_jax.model.irreps_blocks import build_layout
from deeph_jax.model.network import FAST_COMPILE
from deeph_jax.model.spin_blocks import (collinear_parts, irreps_to_vector_block, soc_blocks, soc_parts,
                                         spin_entry_mask, vector_block_to_irreps, vector_cg_matrix,
                                         vector_pair_irreps)
from deeph_jax.model.testing import equivariance_error, predict, random_params
from deeph_jax.model.wigner import PAULI
from deeph_jax.predict.infer import blocks_to_sparse

REPO = Path(__file__).resolve().parents[2]
WATER = REPO / "datasets" / "water-pbe-def2svp"
CUTOFF = 5.0
P_ORDER = [1, 2, 0]  # project p order (y, z, x) from Cartesian (x, y, z)


def levi_civita() -> np.ndarray:
    eps = np.zeros((3, 3, 3))
    for a, b, c in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
        eps[a, b, c], eps[a, c, b] = 1.0, -1.0
    return eps


def l_dot_s_parts() -> np.ndarray:
    """Ha (3, 3, 3) of L.S within one p shell, project orbital order: L_a = -i eps_a in the Cartesian p basis,
    so L.S = (1/2) sum_a L_a sigma_a = i sum_a Ha sigma_a with Ha = -eps_a / 2."""
    return (-0.5 * levi_civita())[:, P_ORDER][:, :, P_ORDER]


# -- the map alone ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("l1, l2", [(0, 0), (0, 1), (1, 1), (1, 2), (2, 2)])
def test_vector_cg_orthogonal_and_inverse(l1, l2):
    C = vector_cg_matrix(l1, l2)
    M = C.reshape(-1, C.shape[-1])
    assert C.shape[-1] == vector_pair_irreps(l1, l2).dim == 3 * (2 * l1 + 1) * (2 * l2 + 1)
    np.testing.assert_allclose(M.T @ M, np.eye(M.shape[1]), atol=1e-13)
    x = np.random.default_rng(0).normal(size=C.shape[-1])
    with jax.enable_x64(True):
        back = vector_block_to_irreps(irreps_to_vector_block(jnp.asarray(x), l1, l2), l1, l2)
    np.testing.assert_allclose(np.asarray(back), x, atol=1e-13)


def test_vector_blocks_rotate_with_Q_on_the_spin_index():
    """Irreps rotated by their D(Q) give blocks rotated by D_l1 (.) D_l2^T on the orbitals and by Q itself on
    the Cartesian index (x, y, z), for a rotation, inversion and an improper rotation (no sign under
    inversion: a pseudovector)."""
    from scipy.linalg import block_diag

    rng = np.random.default_rng(1)
    for Q in (random_rotation(np.random.default_rng(2)), -np.eye(3), -random_rotation(np.random.default_rng(3))):
        D = {(l, p): wigner_D(l, Q, p) for l in range(6) for p in (1, -1)}
        proper = Q * np.linalg.det(Q)
        for l1, l2 in ((0, 1), (1, 1), (1, 2), (2, 2)):
            irreps = vector_pair_irreps(l1, l2)
            x = rng.normal(size=irreps.dim)
            Dx = block_diag(*[D[(ir.l, ir.p)] for _, ir in irreps]) @ x
            with jax.enable_x64(True):
                blocks = np.asarray(irreps_to_vector_block(jnp.asarray(x), l1, l2))  # (3, d1, d2)
                moved = np.asarray(irreps_to_vector_block(jnp.asarray(Dx), l1, l2))
            expected = np.einsum("ba,amn->bmn", proper, D[(l1, (-1) ** l1)] @ blocks @ D[(l2, (-1) ** l2)].T)
            np.testing.assert_allclose(moved, expected, atol=1e-12)


def test_spin_orbit_l_dot_s_is_a_scalar():
    """lambda L.S within a p shell is one 0e irrep (L = 1 -> L' = 0): the Cartesian order of the vector
    index is right (any other assignment of x, y, z leaves non-scalar parts)."""
    with jax.enable_x64(True):
        x = np.array(vector_block_to_irreps(jnp.asarray(l_dot_s_parts()), 1, 1))
    starts = np.cumsum([0] + [ir.dim for _, ir in vector_pair_irreps(1, 1)])
    (k,) = [k for k, (_, ir) in enumerate(vector_pair_irreps(1, 1)) if ir.l == 0]
    assert str(vector_pair_irreps(1, 1)[k].ir) == "0e"
    np.testing.assert_allclose(abs(x[starts[k]]), np.sqrt(1.5), atol=1e-12)  # |L.S / 2| in the orthogonal map
    x[starts[k]] = 0.0
    assert np.abs(x).max() < 1e-12


def test_soc_blocks_pauli_form_and_round_trip():
    """[[uu, ud], [du, dd]] is kron(1, H0) + i sum_a kron(sigma_a, Ha); soc_parts inverts it."""
    rng = np.random.default_rng(4)
    h0, ha = rng.normal(size=(2, 3, 3)), rng.normal(size=(2, 3, 3, 3))
    blocks = np.asarray(soc_blocks(jnp.asarray(h0), jnp.asarray(ha)))
    expected = np.stack([np.kron(np.eye(2), h0[e]) + 1j * sum(np.kron(PAULI[a], ha[e, a]) for a in range(3))
                         for e in range(2)])
    np.testing.assert_allclose(blocks, expected, atol=1e-6)
    back0, back_a = soc_parts(blocks)
    np.testing.assert_allclose(back0, h0, atol=1e-6)
    np.testing.assert_allclose(back_a, ha, atol=1e-6)
    mask = np.ones((1, 3, 3), bool)
    assert spin_entry_mask(mask, "soc").all()
    collinear = spin_entry_mask(mask, "collinear")[0]
    assert collinear[:3, :3].all() and collinear[3:, 3:].all() and not collinear[:3, 3:].any()


# -- the SOC model, random parameters, float64 ------------------------------------------------------------
def water_dimer():
    """Two water molecules of the shipped set, 2.6 A apart in a generic direction (6 atoms, one graph)."""
    a = read_deeph_dir(WATER / "00000", hamiltonian=None, overlap=False).structure
    b = read_deeph_dir(WATER / "00001", hamiltonian=None, overlap=False).structure
    return replace(a, symbols=a.symbols + b.symbols,
                   positions=np.vstack([a.positions, b.positions + np.array([1.9, 1.2, 1.3])]))


@pytest.fixture(scope="module")
def water():
    """(structure folder data of one water molecule with S, a water dimer, padded sizes for both)."""
    data = read_deeph_dir(WATER / "00000", hamiltonian=None)
    dimer = water_dimer()
    g = build_graph(dimer, CUTOFF)
    return data, dimer, padded_sizes(g.n_nodes, g.n_edges, 1)


def make_model(spin: str, basis, sizes, seed: int = 0, **config):
    """(model, random float64 params, jitted apply) of the tiny config with one layer, ``spin`` and ``config``."""
    model = HamiltonianNet(tiny().replace(cutoff=CUTOFF + 1.0, num_layers=1, spin=spin).replace(**config), basis)
    with jax.enable_x64(True):
        structure = read_deeph_dir(WATER / "00000", hamiltonian=None, overlap=False).structure
        graph = build_graph(structure, CUTOFF)
        if spin == "collinear":
            graph = attach_moments(graph, np.zeros(graph.n_nodes))
        batch = jax.tree_util.tree_map(jnp.asarray, batch_graphs([graph], model_elements(basis), sizes=sizes,
                                                                  dtype=np.float64))
        params = random_params(model, batch, seed)
    return model, params, jax.jit(model.apply, compiler_options=FAST_COMPILE)


@pytest.fixture(scope="module")
def soc(water):
    data, _, sizes = water
    return make_model("soc", data.basis, sizes)


def test_soc_equivariant_float64(soc, water):
    """Rotation, inversion and an improper rotation of a water dimer: H(Qx) = kron(U, D_i) H kron(U, D_j)^dagger
    (U of Q's proper part: inversion acts on space only), S(Qx) = D_i S D_j^T."""
    data, dimer, sizes = water
    _, params, apply = soc
    Q = random_rotation(np.random.default_rng(7))
    with jax.enable_x64(True):
        for q in (Q, -np.eye(3), -Q):
            err, hmax = equivariance_error(apply, params, dimer, data.basis, CUTOFF, q, np.float64, sizes)
            print(f"SOC float64: max error {err:.3g} eV, max|H| {hmax:.3g} eV")
            assert err <= 1e-9


def predicted_matrix(apply, params, structure, basis, sizes, moments=None):
    """(graph, spinful BlockSparse H, S blocks) predicted in float64."""
    graph = build_graph(structure, CUTOFF)
    graph = attach_moments(graph, moments)
    with jax.enable_x64(True):
        h, s = predict(apply, params, graph, basis, np.float64, sizes)
    return graph, h, s


def test_soc_exactly_hermitian_and_time_reversal_form(soc, water):
    data, dimer, sizes = water
    _, params, apply = soc
    graph, h, s = predicted_matrix(apply, params, dimer, data.basis, sizes)
    H = blocks_to_sparse(graph, h, data.basis)
    assert H.is_complex and H.missing_mirrors() == 0
    assert H.hermiticity_error() == 0.0
    full = H.bloch_dense([0, 0, 0], data.basis.atom_offsets(dimer.symbols), spinful=True, hermitize=False)
    print(f"max |H - H^dagger| at k = 0: {np.abs(full - full.conj().T).max():.3g} eV")
    assert np.array_equal(full, full.conj().T)
    # The blocks are H0 x 1 + i sum_a Ha x sigma_a: the spin quarters obey uu = conj(dd), ud = -conj(du).
    W = h.shape[1] // 2
    uu, ud, du, dd = h[:, :W, :W], h[:, :W, W:], h[:, W:, :W], h[:, W:, W:]
    assert np.array_equal(uu, dd.conj()) and np.array_equal(ud, -du.conj())
    h0, ha = soc_parts(h)
    assert np.abs(ha).max() > 0.1 * np.abs(h0).max(), "the spin-orbit head should not be negligible here"


def test_soc_kramers_pairs(soc, water):
    """Eigenvalues of the predicted SOC H of a water molecule with its DFT S (x 1 in spin) come in pairs."""
    from scipy.linalg import eigh

    data, _, sizes = water
    _, params, apply = soc
    graph, h, _ = predicted_matrix(apply, params, data.structure, data.basis, sizes)
    offsets = data.atom_offsets
    Hk = blocks_to_sparse(graph, h, data.basis).bloch_dense([0, 0, 0], offsets, spinful=True)
    S = data.overlap.bloch_dense([0, 0, 0], offsets)
    e = eigh(Hk, np.kron(np.eye(2), S), eigvals_only=True)
    split = np.abs(e[1::2] - e[0::2]).max()
    gaps = np.diff(e[0::2])
    print(f"Kramers splitting {split:.3g} eV; smallest gap between pairs {gaps.min():.3g} eV")
    assert split <= 1e-6
    # Not trivially degenerate: H0 alone (no spin-orbit part) has other levels.
    h0, _ = soc_parts(h)
    e0 = eigh(blocks_to_sparse(graph, h0, data.basis).bloch_dense([0, 0, 0], offsets), S, eigvals_only=True)
    assert np.abs(np.repeat(e0, 2) - e).max() > 1e-3


# -- the collinear model -----------------------------------------------------------------------------------
MOMENTS = np.array([2.0, -0.5, 0.3, -1.5, 0.7, 0.0])  # one signed moment per atom of the dimer


@pytest.fixture(scope="module")
def collinear(water):
    """The collinear model in a part of def2-SVP without d shells (lmax 2: half the cost; the channels are
    spinless, and the SOC tests above cover d shells): (model, params, apply, basis)."""
    data, _, sizes = water
    basis = toy_basis(data.basis)
    return (*make_model("collinear", basis, sizes, seed=1, **TOY_MODEL), basis)


def test_collinear_flipping_every_moment_swaps_the_channels(collinear, water):
    data, dimer, sizes = water
    _, params, apply, basis = collinear
    graph, h, s = predicted_matrix(apply, params, dimer, basis, sizes, MOMENTS)
    _, h_flip, s_flip = predicted_matrix(apply, params, dimer, basis, sizes, -MOMENTS)
    up, down = collinear_parts(h)
    up_flip, down_flip = collinear_parts(h_flip)
    print(f"collinear: max |H-up - H-down| {np.abs(up - down).max():.3g} eV; after the flip "
          f"{np.abs(up_flip - down).max():.3g}, {np.abs(down_flip - up).max():.3g} eV")
    assert np.abs(up - down).max() > 1e-3, "the moments should matter"
    assert np.array_equal(up_flip, down) and np.array_equal(down_flip, up) and np.array_equal(s_flip, s)
    W = h.shape[1] // 2
    assert not np.any(h[:, :W, W:]) and not np.any(h[:, W:, :W]) and not np.any(h.imag)
    mirror = graph.mirror()
    assert np.array_equal(h[mirror], np.swapaxes(h, 1, 2).conj())
    _, h0, _ = predicted_matrix(apply, params, dimer, basis, sizes, np.zeros(len(MOMENTS)))
    assert np.array_equal(*collinear_parts(h0)), "no moments, no spin polarization"


@pytest.mark.parametrize("channel", [0, 1])
def test_collinear_channels_equivariant_float64(collinear, water, channel):
    """Each channel is a spinless H: H_sigma(Qx) = D_i H_sigma(x) D_j^T (moments are scalars)."""
    data, dimer, sizes = water
    _, params, apply, basis = collinear

    def one_channel(p, batch):
        h, s = apply(p, batch)
        return collinear_parts(h)[channel], s

    with jax.enable_x64(True):
        for q in (random_rotation(np.random.default_rng(8)), -np.eye(3)):
            err, hmax = equivariance_error(one_channel, params, dimer, basis, CUTOFF, q, np.float64, sizes,
                                           moments=MOMENTS)
            print(f"collinear channel {channel} float64: max error {err:.3g} eV, max|H| {hmax:.3g} eV")
            assert err <= 1e-9


# -- spinless bundles unchanged ---------------------------------------------------------------------------
# Float64 prediction of models/hbn-szv (the long-range model of 2026-12-06) on datasets/hbn-szv/train-2x2/00000,
# no overlap in the batch (the network's own S in the channel): sum |H|, sum H w, sum |S|, sum S w with
# w = sin(0, 1, 2, ...) over the blocks. Recorded when that bundle was shipped; the previous bundle (no
# long-range channel) matched the code before spin models existed (commit a294018) to 1e-12 until then.
HBN_REFERENCE = (3554.033901645542, -31.824268723530928, 204.56333610032988, 3.9099580971548957)


def test_shipped_spinless_bundle_unchanged():
    """A spin = "none" model has exactly the parameter tree (paths, shapes) of the shipped bundle and predicts
    what it did when shipped. (hbn-szv: the cheaper of the two shipped models to compile; both run through the
    same spinless path, and tests/model/test_invariants_shipped.py applies both.)"""
    import flax.linen as nn

    from deeph_jax.graph import build_model_graph
    from deeph_jax.predict.infer import load_predictor

    predictor = load_predictor(REPO / "models" / "hbn-szv")
    assert predictor.config.spin == "none" and predictor.config.long_range_alpha is not None
    model = HamiltonianNet(predictor.config, predictor.basis)
    structure = read_deeph_dir(REPO / "datasets/hbn-szv/train-2x2/00000", hamiltonian=None, overlap=False).structure
    graph = build_model_graph(structure, predictor.config.cutoff, model_elements(predictor.basis),
                              predictor.config.long_range_alpha)
    with jax.enable_x64(True):
        batch = batch_graphs([graph], model_elements(predictor.basis), dtype=np.float64)
        shapes = jax.eval_shape(lambda: nn.Module.init(model, jax.random.PRNGKey(0), batch))
        flat = lambda tree: {jax.tree_util.keystr(k): np.shape(v) for k, v in jax.tree_util.tree_leaves_with_path(tree)}
        assert flat(shapes) == flat(predictor.params)
        apply = jax.jit(model.apply, compiler_options=FAST_COMPILE)
        h, s = predict(apply, predictor.params, graph, predictor.basis, np.float64)
    w = np.sin(np.arange(h.size)).reshape(h.shape)
    found = (np.abs(h).sum(), (h * w).sum(), np.abs(s).sum(), (s * w).sum())
    np.testing.assert_allclose(found, HBN_REFERENCE, rtol=1e-12)


# -- training on a toy SOC dataset -------------------------------------------------------------------------
TOY_SHELLS = {"O": (1, 2, 3, 4), "H": (0, 1)}  # def2-SVP shells kept: O 2s 3s 2p 3p (no 1s core, no d), H s s
TOY_MODEL = {"num_radial": 4, "lmax": 2, "node_channels": (8, 4, 2), "edge_channels": (8, 4, 2),
             "tp_channels": (4, 2, 1), "num_layers": 1, "radial_hidden": 8, "species_embed": 4}


def kept_orbitals(basis, element: str) -> np.ndarray:
    """Orbital indices of ``element``'s shells ``TOY_SHELLS[element]`` in ``basis``."""
    offsets = basis.shell_offsets(element)
    return np.concatenate([offsets[k] + np.arange(2 * basis.shells[element][k] + 1) for k in TOY_SHELLS[element]])


def toy_basis(basis):
    from deeph_jax.io import OrbitalBasis

    return OrbitalBasis.from_orbital_map({e: [basis.shells[e][k] for k in TOY_SHELLS[e]] for e in TOY_SHELLS})


def write_toy_soc_dataset(out: Path, n: int = 4) -> Path:
    """``n`` shipped water molecules in a part of def2-SVP (``TOY_SHELLS``) made spinful: H x 1 plus
    lambda L.S within each p shell of O, lambda = 0.2 eV (1 + 4 (r_OH1 + r_OH2 - 1.94 A)) varying with the
    geometry (a rotation invariant: the term is equivariant and time-reversal symmetric). S stays spinless."""
    from deeph_jax.io import write_deeph_dir

    ls = l_dot_s_parts()
    for k in range(n):
        data = read_deeph_dir(WATER / f"{k:05d}")
        basis = toy_basis(data.basis)
        pos, sym = data.structure.positions, data.structure.symbols
        o = sym.index("O")
        r = sum(np.linalg.norm(pos[i] - pos[o]) for i in range(len(sym)) if i != o)
        lam = 0.2 * (1.0 + 4.0 * (r - 1.94))
        keep = {e: kept_orbitals(data.basis, e) for e in TOY_SHELLS}
        soc = lam * 1j * sum(np.kron(PAULI[a], ls[a]) for a in range(3))  # (6, 6) on one p shell

        def reduced(matrix, spinful):
            blocks = {}
            for key, block in matrix.blocks():
                block = block[np.ix_(keep[sym[key[3]]], keep[sym[key[4]]])]
                if spinful:
                    block = np.kron(np.eye(2), block).astype(complex)
                    if key[3] == key[4] == o and not any(key[:3]):
                        na = block.shape[0] // 2
                        for shell, l in enumerate(basis.shells["O"]):
                            if l == 1:
                                rows = basis.shell_offsets("O")[shell] + np.arange(3)
                                rows = np.concatenate([rows, na + rows])
                                block[np.ix_(rows, rows)] += soc
                blocks[key] = block
            return BlockSparse.from_blocks(blocks)

        H = reduced(data.hamiltonian, True)
        assert H.hermiticity_error() < 1e-12
        info = {**data.info, "spinful": True, "elements_orbital_map": basis.to_orbital_map()}
        write_deeph_dir(out / f"{k:05d}", replace(data, basis=basis, hamiltonian=H, overlap=reduced(data.overlap, False),
                                                  info=info))
    return out


@pytest.fixture(scope="module")
def toy_soc(tmp_path_factory):
    return write_toy_soc_dataset(tmp_path_factory.mktemp("spin") / "water-soc")


def test_soc_training_loss_falls(toy_soc):
    """50 Adam steps on 4 toy SOC molecules, heads normalized to the data (H0 and Ha apart): the loss (mean
    |dH|^2 over complex entries, plus S) falls by a large factor."""
    import optax

    from deeph_jax.train.config import TrainConfig
    from deeph_jax.train.data import dataset_basis, list_structures, load_sample, shard_batches, stack_batches
    from deeph_jax.train.normalize import normalized_params
    from deeph_jax.train.step import TrainState, make_train_step, to_device_batch

    dirs = list_structures(toy_soc)
    basis = dataset_basis(dirs)
    layout, elements = build_layout(basis), model_elements(basis)
    W = layout.width
    samples = [load_sample(d, basis, CUTOFF, W, spin="soc") for d in dirs]
    assert samples[0].targets.h_blocks.shape[1:] == (2 * W, 2 * W) and np.iscomplexobj(samples[0].targets.h_blocks)
    batch = stack_batches(shard_batches(samples, 1, elements, np.float32))
    model = HamiltonianNet(tiny().replace(cutoff=CUTOFF + 1.0, spin="soc", **TOY_MODEL), basis)
    example = jax.tree_util.tree_map(lambda x: jnp.asarray(x[0]), batch)
    params = random_params(model, example, seed=3, dtype=np.float32)
    params = normalized_params(params, samples, layout, elements, spin="soc")
    tx = optax.adam(optax.warmup_cosine_decay_schedule(0.0, 0.1, 5, 50, 1e-3))
    step = make_train_step(model, layout, tx, TrainConfig(ema_decay=None), compiler_options=FAST_COMPILE)
    state = TrainState(params, tx.init(params), jax.tree_util.tree_map(jnp.array, params), jnp.zeros((), jnp.int32))
    device_batch = to_device_batch(batch)
    losses = []
    for _ in range(51):
        state, metrics = step(state, device_batch)
        losses.append(float(metrics["loss"]))
    print(f"SOC toy training: loss {losses[0]:.3g} -> {losses[-1]:.3g} eV^2 in 50 steps; "
          f"MAE H {1e3 * float(metrics['mae_h']):.2f} meV")
    assert np.isfinite(losses).all() and losses[-1] < losses[0] / 50
