"""Prediction: chunked equals whole-structure, DeepH folders written atomically, exact S, bad input."""

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import jax
import numpy as np
import pytest

from conftest import TINY_MODEL
from deeph_jax.errors import DeephError
from deeph_jax.graph import batch_graphs, build_graph
from deeph_jax.io import OrbitalBasis, Structure, read_deeph_dir
from deeph_jax.model.config import ModelConfig
from deeph_jax.model.network import HamiltonianNet
from deeph_jax.predict.bundle import export_bundle
from deeph_jax.predict.infer import Predictor, load_predictor, predict_blocks
from deeph_jax.predict.writer import StreamingMatrixWriter

REPO = Path(__file__).resolve().parents[2]
HBN = OrbitalBasis({"B": (0, 1), "N": (0, 1)})


def hbn_sheet(reps: int, seed: int = 0) -> Structure:
    a, c = 2.504, 15.0
    cell = np.array([[a, 0, 0], [-a / 2, a * np.sqrt(3) / 2, 0], [0, 0, c]])
    frac = np.array([[1 / 3, 2 / 3, 0.5], [2 / 3, 1 / 3, 0.5]])
    shifts = np.array([[i, j, 0] for i in range(reps) for j in range(reps)])
    pos = ((frac[None] + shifts[:, None]).reshape(-1, 3)) @ cell
    pos += np.random.default_rng(seed).normal(0, 0.05, pos.shape)
    return Structure(("B", "N") * reps * reps, pos, cell * [reps, reps, 1], True)


def random_predictor(basis=HBN, dtype=np.float32, message_cutoff=None, **metadata) -> Predictor:
    config = ModelConfig.from_dict({**TINY_MODEL, "message_cutoff": message_cutoff})
    g = build_graph(hbn_sheet(2), config.cutoff)
    params = HamiltonianNet(config, basis).init(jax.random.PRNGKey(1), batch_graphs([g], ["B", "N"], dtype=dtype))
    return Predictor(config, basis, params, metadata)


@pytest.mark.parametrize("message_cutoff", [None, 2.0])
def test_chunked_equals_whole_structure(message_cutoff):
    from deeph_jax.predict.chunks import make_chunks, model_hops
    from deeph_jax.predict.infer import PredictStats

    predictor = random_predictor(message_cutoff=message_cutoff)
    g = build_graph(hbn_sheet(12), predictor.config.cutoff)  # 288 atoms
    whole = PredictStats()
    h_whole, s_whole = predict_blocks(g, predictor, chunk_atoms=None, stats=whole)
    stats = PredictStats()
    h_chunk, s_chunk = predict_blocks(g, predictor, chunk_atoms=40, stats=stats)
    assert stats.n_chunks >= 6
    # Compilation is timed apart (ahead of time), and every chunk's run is timed, the first included.
    for st in (whole, stats):
        assert st.compile_s > 0 and st.run_s > 0 and len(st.chunk_run_s) == st.n_chunks
        assert abs(sum(st.chunk_run_s) - st.run_s) < 1e-3 * st.run_s + 1e-4
    if message_cutoff:  # a short message cutoff shrinks the halo, so chunks are cheaper
        short, full = (max(c.graph.n_edges for c in make_chunks(g, model_hops(2, m), 40)) for m in (message_cutoff, None))
        assert short < 0.8 * full
    scale = np.abs(h_whole).max()
    assert scale > 0
    np.testing.assert_allclose(h_chunk, h_whole, atol=2e-6 * scale)
    np.testing.assert_allclose(s_chunk, s_whole, atol=2e-6 * np.abs(s_whole).max())
    # Hermitian output, chunked or not: H_ji(-R) = H_ij(R)^T on every edge.
    m = g.mirror()
    assert np.array_equal(h_chunk[m], np.swapaxes(h_chunk, 1, 2))


@pytest.fixture
def bundle(tmp_path):
    p = random_predictor()
    path = tmp_path / "bundle"
    export_bundle(path, p.config, p.basis, p.params, {"basis": "gth-szv", "valence_electrons": {"B": 3, "N": 5}})
    return path


def test_predict_cli_writes_deeph_folder_with_exact_overlap(bundle, tmp_path):
    from deeph_jax.io.deeph import write_poscar

    s = hbn_sheet(3)
    write_poscar(tmp_path / "POSCAR", s)
    out = subprocess.run([sys.executable, str(REPO / "predict.py"), "--checkpoint", str(bundle), "--structure",
                          str(tmp_path / "POSCAR"), "--out", str(tmp_path / "pred"), "--chunk-atoms", "6"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "compile" in out.stdout and "exact" in out.stdout
    data = read_deeph_dir(tmp_path / "pred", hamiltonian="hamiltonian_pred.h5")
    info = json.loads((tmp_path / "pred" / "info.json").read_text())
    assert info["occupation"] == 9 * 8 and "exact" in info["overlap_source"]
    assert data.hamiltonian.n_blocks == data.overlap.n_blocks
    assert data.hamiltonian.hermiticity_error() < 1e-6 * np.abs(data.hamiltonian.entries).max()
    # The exact S is the PySCF two-centre overlap: 1 on the diagonal of on-site blocks.
    assert np.allclose(np.diag(data.overlap.get((0, 0, 0), 0, 0)), 1.0, atol=1e-6)


def test_exact_overlap_matches_shipped_dft(tmp_path):
    from deeph_jax.predict.overlap import exact_overlap

    folder = REPO / "datasets" / "water-pbe-def2svp" / "00000"
    data = read_deeph_dir(folder)
    g = build_graph(data.structure, 6.0)
    S = exact_overlap(g, "def2-SVP", data.basis)
    for key, block in data.overlap.blocks():
        np.testing.assert_allclose(S.get(key[:3], key[3], key[4]), block, atol=1e-9)


def test_bad_inputs(bundle, tmp_path):
    predictor = load_predictor(bundle)
    water = Structure(("O", "H", "H"), [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]], np.eye(3) * 10, False)
    with pytest.raises(DeephError, match=r"element\(s\) H, O not in the model \(trained on B, N\)"):
        predictor.check_elements(water)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model.yaml").write_text("num_layers: 2\n")
    with pytest.raises(DeephError, match="not an inference bundle"):
        load_predictor(tmp_path / "broken")
    for f in ("model.yaml", "basis.json", "params.msgpack", "metadata.json"):
        (tmp_path / "broken" / f).write_text("{not: [valid")
    with pytest.raises(DeephError, match="incompatible or damaged bundle"):
        load_predictor(tmp_path / "broken")
    from deeph_jax.io.deeph import write_poscar

    close = Structure(("B", "N"), [[0, 0, 0], [0.05, 0, 0]], np.eye(3) * 10, True)
    write_poscar(tmp_path / "POSCAR", close)
    out = subprocess.run([sys.executable, str(REPO / "predict.py"), "--checkpoint", str(bundle), "--structure",
                          str(tmp_path / "POSCAR"), "--out", str(tmp_path / "p")], capture_output=True, text=True)
    assert out.returncode == 2 and "overlapping atoms" in out.stderr and out.stderr.count("\n") == 1


def test_interrupted_write_leaves_no_file(tmp_path):
    target = tmp_path / "hamiltonian_pred.h5"
    with pytest.raises(RuntimeError):
        with StreamingMatrixWriter(target) as w:
            w.append(np.zeros((1, 5), np.int64), np.array([[1, 1]]), np.zeros(1))
            raise RuntimeError("killed")
    assert not target.exists() and not list(tmp_path.iterdir())


def test_shipped_models_listed_with_their_test_error():
    out = subprocess.run([sys.executable, str(REPO / "predict.py"), "--list-models"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    listed = {}
    for line in out.stdout.splitlines():
        if not line.startswith(" "):
            name = line.strip()
            listed[name] = {}
        else:
            key, value = line.split(maxsplit=1)
            listed[name][key] = value
    assert {"water-pbe-def2svp", "hbn-szv", "halides-soc"} <= set(listed)
    for name, meta in listed.items():
        assert float(meta["test_mae_meV"]) > 0 and meta["training_data"].startswith("datasets/"), name
        load_predictor(REPO / "models" / name)  # each bundle loads


def test_chunks_of_a_rattled_sheet_follow_the_requested_size():
    from deeph_jax.predict.chunks import spatial_order

    g = build_graph(hbn_sheet(40), 3.0)  # 3200 atoms, rattled across the vacuum too
    groups = spatial_order(g, 800)
    # The sheet's thin extent along z is never cut: 4 chunks (2 x 2), not hundreds of slivers.
    assert len(groups) == 4 and sorted(np.concatenate(groups).tolist()) == list(range(g.n_nodes))


@pytest.mark.parametrize("charges", [False, True], ids=["element charges", "environment charges"])
def test_chunked_equals_whole_structure_with_long_range_channel(charges):
    """The long-range potentials are computed once for the whole structure; chunks take their rows. With
    environment-dependent charges, those of every atom come first (prediction's first pass), and the result
    equals the training route (the dense kernel in the batch) on the whole structure."""
    from deeph_jax.graph import build_model_graph
    from deeph_jax.model.testing import predict as predict_graph

    config = ModelConfig.from_dict({**TINY_MODEL, "message_cutoff": 2.0, "long_range_alpha": 0.3,
                                    "long_range_charges": charges})
    g2 = build_model_graph(hbn_sheet(2), config.cutoff, ["B", "N"], 0.3, charge_kernel=charges)
    params = HamiltonianNet(config, HBN).init(jax.random.PRNGKey(1), batch_graphs([g2], ["B", "N"]))
    lr = dict(params["params"]["long_range"])
    lr["charges"] = np.array([0.8, -0.8], np.float32)
    params = {"params": {**params["params"], "long_range": lr}}
    if charges:
        net = dict(params["params"]["charge_net"])
        net["out"] = {**net["out"], "kernel": np.linspace(-1, 1, net["out"]["kernel"].size, dtype=np.float32)[:, None]}
        params = {"params": {**params["params"], "charge_net": net}}
    predictor = Predictor(config, HBN, params, {})
    sheet = hbn_sheet(12)  # 288 atoms
    g = predictor.graph(sheet)
    assert np.abs(g.node_potentials).max() > 0.01
    assert (g.charge_potentials is not None and np.abs(g.charge_potentials).max() > 0.01) == charges
    h_whole, _ = predict_blocks(g, predictor, chunk_atoms=None)
    h_chunk, _ = predict_blocks(g, predictor, chunk_atoms=40)
    scale = np.abs(h_whole).max()
    np.testing.assert_allclose(h_chunk, h_whole, atol=2e-6 * scale)
    if charges:
        trained = build_model_graph(sheet, config.cutoff, ["B", "N"], 0.3, charge_kernel=True)
        h_train, _ = predict_graph(jax.jit(HamiltonianNet(config, HBN).apply), params, trained, HBN)
        np.testing.assert_allclose(h_whole, h_train, atol=2e-6 * scale)
        assert np.abs(h_whole - predict_blocks(replace(g, charge_potentials=0 * g.charge_potentials), predictor,
                                               chunk_atoms=None)[0]).max() > 1e-4 * scale
    # The chunks' own potentials would differ (a chunk is no periodic cell): the rows must come from the whole.
    from deeph_jax.predict.chunks import make_chunks, model_hops

    chunk = make_chunks(g, model_hops(config.num_layers, config.message_cutoff), 40)[0]
    assert chunk.graph.node_potentials is not None and chunk.graph.node_potentials.shape[0] == chunk.graph.n_nodes


def test_prediction_feeds_the_exact_overlap_to_the_long_range_channel():
    """A model with a long-range channel and a PySCF basis gets the exact overlap of each chunk's edges in its
    batch (the channel's off-site shift was trained on the DFT S); other models get none."""
    pytest.importorskip("pyscf")
    from deeph_jax.graph import build_model_graph
    from deeph_jax.predict.chunks import make_chunks, model_hops
    from deeph_jax.predict.infer import chunk_batch, chunk_sizes
    from deeph_jax.predict.overlap import exact_overlap

    config = ModelConfig.from_dict({**TINY_MODEL, "message_cutoff": 2.0, "long_range_alpha": 0.3})
    g = build_model_graph(hbn_sheet(3), config.cutoff, ["B", "N"], 0.3)
    params = HamiltonianNet(config, HBN).init(jax.random.PRNGKey(1), batch_graphs([g], ["B", "N"]))
    chunk = make_chunks(g, model_hops(config.num_layers, config.message_cutoff), 8)[0]
    sizes = chunk_sizes([chunk])
    with_lr = Predictor(config, HBN, params, {"basis": "gth-szv"})
    batch = chunk_batch(chunk, with_lr, sizes)
    exact = exact_overlap(chunk.graph, "gth-szv", HBN)
    for e in range(0, chunk.graph.n_edges, 7):
        a = HBN.n_orbitals(chunk.graph.symbols[chunk.graph.senders[e]])
        b = HBN.n_orbitals(chunk.graph.symbols[chunk.graph.receivers[e]])
        np.testing.assert_allclose(batch.s_blocks[e, :a, :b], exact.get(*_key_of(chunk.graph, e)), atol=1e-6)
    assert not batch.s_blocks[chunk.graph.n_edges:].any()
    assert chunk_batch(chunk, Predictor(config, HBN, params, {}), sizes).s_blocks is None  # no PySCF basis
    local = ModelConfig.from_dict({**TINY_MODEL, "message_cutoff": 2.0})
    assert chunk_batch(chunk, Predictor(local, HBN, params, {"basis": "gth-szv"}), sizes).s_blocks is None


def _key_of(graph, e):
    """(R, i, j) of edge e of a PairGraph, as BlockSparse.get takes them."""
    pair = graph.atom_pairs[e]
    return tuple(int(x) for x in pair[:3]), int(pair[3]), int(pair[4])


def test_fine_tuning_adds_environment_charges_to_a_bundle_without_them(tmp_path):
    """``train.init_from`` a bundle without environment-dependent charges into a run with them: every bundle
    parameter is kept, the new charge net starts at zero output, so the run starts at the bundle's predictions;
    any other config difference is refused."""
    from types import SimpleNamespace

    from deeph_jax.graph import build_model_graph
    from deeph_jax.model.testing import predict as predict_graph
    from deeph_jax.train.loop import Trainer

    old = ModelConfig.from_dict({**TINY_MODEL, "message_cutoff": 2.0, "long_range_alpha": 0.5})
    new = old.replace(long_range_charges=True)
    g_old = build_model_graph(hbn_sheet(2), old.cutoff, ["B", "N"], 0.5)
    g_new = build_model_graph(hbn_sheet(2), old.cutoff, ["B", "N"], 0.5, charge_kernel=True)
    p_old = HamiltonianNet(old, HBN).init(jax.random.PRNGKey(1), batch_graphs([g_old], ["B", "N"]))
    lr = {**p_old["params"]["long_range"], "charges": np.array([0.6, -0.6], np.float32)}
    p_old = {"params": {**p_old["params"], "long_range": lr}}
    like = HamiltonianNet(new, HBN).init(jax.random.PRNGKey(2), batch_graphs([g_new], ["B", "N"]))
    export_bundle(tmp_path / "old", old, HBN, p_old, {})
    run = SimpleNamespace(model_config=new, basis=HBN)
    p_new = Trainer.initial_params_from_bundle(run, tmp_path / "old", like)
    assert set(p_new["params"]) == set(p_old["params"]) | {"charge_net"}
    h_old, _ = predict_graph(jax.jit(HamiltonianNet(old, HBN).apply), p_old, g_old, HBN)
    h_new, _ = predict_graph(jax.jit(HamiltonianNet(new, HBN).apply), p_new, g_new, HBN)
    np.testing.assert_allclose(h_new, h_old, atol=1e-6 * np.abs(h_old).max())
    with pytest.raises(DeephError, match="different basis or model config"):
        Trainer.initial_params_from_bundle(SimpleNamespace(model_config=new.replace(num_radial=6), basis=HBN),
                                           tmp_path / "old", like)


def test_fine_tuning_keeps_the_bundles_off_site_shift(tmp_path):
    """A run that fine-tunes a bundle made before ``model.offsite_shift`` (no key: its heads shifted every block)
    keeps the shift, whatever its config says: its parameters were trained with it."""
    import yaml

    from deeph_jax.train.config import load_config
    from deeph_jax.train.loop import Trainer

    legacy = REPO / "models" / "water-pbe-def2svp"
    assert "offsite_shift" not in yaml.safe_load((legacy / "model.yaml").read_text())
    data = REPO / "datasets" / "water-pbe-def2svp-test"
    config = load_config(REPO / "configs" / "demo.yaml", [f"data.train={data}", f"train.init_from={legacy}",
                                                          "data.max_structures=4", "train.batch_size=2", "train.progress=false"])
    assert ModelConfig.from_dict(config["model"]).offsite_shift is False
    assert Trainer(config, tmp_path / "run", overwrite=True).model_config.offsite_shift is True


def test_entry_errors_split_on_site_from_off_site_and_skip_blocks_one_side_lacks():
    """|pred - dft| per entry: on-site is i == j at R = 0 only (i == j at R != 0 is a hopping to an image)."""
    from deeph_jax.io import BlockSparse
    from deeph_jax.predict.run import entry_errors

    dft = BlockSparse.from_blocks({(0, 0, 0, 0, 0): np.eye(2), (1, 0, 0, 0, 0): np.ones((2, 2)),
                                   (0, 0, 0, 0, 1): np.zeros((2, 2)), (0, 1, 0, 1, 0): np.ones((2, 2))})
    pred = BlockSparse.from_blocks({(0, 0, 0, 0, 0): np.eye(2) + 0.5, (1, 0, 0, 0, 0): np.ones((2, 2)) - 0.25,
                                    (0, 0, 0, 0, 1): np.full((2, 2), 1j)})
    on, off = entry_errors(pred, dft)
    np.testing.assert_allclose(on, [0.5] * 4)
    np.testing.assert_allclose(np.sort(off), [0.25] * 4 + [1.0] * 4)
