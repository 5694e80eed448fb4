"""The physical invariants on the project's own shipped data and models, so they are tested
without ../shared: E(3) equivariance and exact Hermiticity of the shipped networks' output, on a
water molecule (def2-SVP: s, p, d) and a periodic hBN cell (gth-szv: s, p; lattice rotated too);
Hermiticity of every shipped DFT H and S; and covariance of the shipped overlaps (the stored S
of a rotated structure, recomputed by PySCF, equals D S D^T).

Wigner-D matrices are only float64-accurate with jax's x64 mode on (e3nn-jax builds them in the
default float precision), so every comparison below runs inside ``jax.enable_x64(True)``.
"""

from pathlib import Path

import jax
import numpy as np
import pytest

from deeph_jax.graph import build_graph
from deeph_jax.io import find_structure_dirs, read_deeph_dir
from deeph_jax.model import HamiltonianNet, atom_D, random_rotation
from deeph_jax.model.network import FAST_COMPILE
from deeph_jax.model.testing import equivariance_error, moved, predict
from deeph_jax.predict.infer import blocks_to_sparse, load_predictor

REPO = Path(__file__).resolve().parents[2]
DATASETS = REPO / "datasets"
# name -> (shipped model, one shipped structure folder of its training data's kind)
CASES = {
    "water": ("water-pbe-def2svp", DATASETS / "water-pbe-def2svp" / "00000"),
    "hbn": ("hbn-szv", DATASETS / "hbn-szv" / "train-2x2" / "00000"),
}
SHIPPED_SETS = ["water-pbe-def2svp", "water-pbe-def2svp-val", "water-pbe-def2svp-test", "hbn-szv/train-2x2",
                "hbn-szv/large-4x4"]


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
    """(name, structure folder data, predictor, jitted apply): one compilation per model for the module."""
    model_name, folder = CASES[request.param]
    predictor = load_predictor(REPO / "models" / model_name)
    data = read_deeph_dir(folder, hamiltonian=None, overlap=False)
    # FAST_COMPILE: compile time dominates; the equivariance and Hermiticity tests share this one program.
    apply = jax.jit(HamiltonianNet(predictor.config, predictor.basis).apply, compiler_options=FAST_COMPILE)
    return request.param, data, predictor, apply


def test_shipped_model_equivariant_float64(case):
    name, data, predictor, apply = case
    if name == "hbn":
        graph = predictor.graph(data.structure)
        assert data.structure.periodic and np.any(graph.atom_pairs[:, :3]), "want periodic-image edges"
        assert graph.node_potentials is not None  # the shipped hBN model has the long-range channel
    Q = random_rotation(np.random.default_rng(5))
    with jax.enable_x64(True):
        for q in (Q, -np.eye(3), -Q):  # a rotation, inversion, and an improper rotation
            err, hmax = equivariance_error(apply, predictor.params, data.structure, predictor.basis,
                                           predictor.config.cutoff, q, np.float64,
                                           long_range_alpha=predictor.config.long_range_alpha)
            print(f"{name} float64: max error {err:.3g} eV, max|H| {hmax:.3g} eV")
            assert err <= 1e-12 * hmax


def test_shipped_model_prediction_exactly_hermitian(case):
    """H_ji(-R) = H_ij(R)^T bitwise for the predicted H and S, every mirror present."""
    name, data, predictor, apply = case
    graph = predictor.graph(data.structure)
    with jax.enable_x64(True):
        h, s = predict(apply, predictor.params, graph, predictor.basis, np.float64)
    for blocks in (h, s):
        matrix = blocks_to_sparse(graph, blocks, predictor.basis)
        assert matrix.n_blocks == graph.n_edges
        assert matrix.missing_mirrors() == 0
        assert matrix.hermiticity_error() == 0.0


@pytest.mark.parametrize("dataset", SHIPPED_SETS)
def test_shipped_dft_data_hermitian(dataset):
    """Every stored block has its mirror, and H_ji(-R) = H_ij(R)^T to 1e-12 (the generators symmetrize)."""
    dirs = find_structure_dirs(DATASETS / dataset)
    assert dirs
    for d in dirs[:8]:  # a few per set: reading is the cost, and every structure was written by the same code
        data = read_deeph_dir(d)
        for matrix in (data.hamiltonian, data.overlap):
            assert matrix.missing_mirrors() == 0, d
            assert matrix.hermiticity_error() <= 1e-12, d
        k = [0.13, -0.27, 0.0]
        raw = data.hamiltonian.bloch_dense(k, data.atom_offsets, hermitize=False)
        assert np.abs(raw - raw.conj().T).max() <= 1e-12 * np.abs(raw).max(), d


def overlap_covariance_error(folder: Path, Q: np.ndarray, cutoff: float) -> float:
    """max |S'(Q x) - D_i S_ij D_j^T| between PySCF's overlap of the moved structure and the stored S."""
    from deeph_jax.predict.overlap import exact_overlap

    data = read_deeph_dir(folder, hamiltonian=None)
    graph = build_graph(moved(data.structure, Q), cutoff)
    rotated = exact_overlap(graph, data.info["basis"], data.basis)
    D = [atom_D(data.basis, s, Q) for s in data.structure.symbols]
    err = 0.0
    for (R1, R2, R3, i, j), block in data.overlap.blocks():
        recomputed = rotated.get((R1, R2, R3), i, j)
        assert recomputed is not None, f"block {(R1, R2, R3, i, j)} beyond the {cutoff} A graph"
        err = max(err, float(np.abs(recomputed - D[i] @ block @ D[j].T).max()))
    return err


@pytest.mark.parametrize("name, tolerance", [
    ("water", 1e-9),  # molecular integrals: exact; the stored S matches PySCF to 2e-11
    ("hbn", 1e-6),  # the periodic SCF's lattice-summed S matches the two-centre integral to 9e-8
])
def test_shipped_overlap_covariant(name, tolerance):
    Q = -random_rotation(np.random.default_rng(6))  # improper: rotation times inversion
    with jax.enable_x64(True):
        err = overlap_covariance_error(CASES[name][1], Q, cutoff=10.5)
    print(f"{name}: max |S(Qx) - D S D^T| = {err:.3g}")
    assert err <= tolerance
