"""Validation levels (deeph_jax.train.band_metrics) on real hBN DFT data, against the band module's own
Bloch sums and against shifts whose effect on the levels is known exactly."""

from pathlib import Path

import numpy as np
import pytest

from deeph_jax.io import read_deeph_dir
from deeph_jax.physics.bands import bands_at
from deeph_jax.train.band_metrics import VALIDATION_KPOINTS, electron_count, level_errors, validation_levels
from deeph_jax.train.data import SampleCache, dataset_basis

REPO = Path(__file__).resolve().parents[2]
HBN = REPO / "datasets" / "hbn-szv" / "train-2x2" / "00000"


@pytest.fixture(scope="module")
def hbn():
    basis = dataset_basis([HBN])
    sample = SampleCache([HBN], basis, 10.2)[0]
    return sample, basis


def test_dft_levels_match_the_band_module(hbn):
    sample, basis = hbn
    lv = level_errors(sample, sample.targets.h_blocks, basis, electron_count(HBN), "none")
    # bands_at sums the stored H(R), S(R) of the DeepH folder in the lattice gauge: an independent Bloch sum.
    ref = bands_at(read_deeph_dir(HBN), np.array(VALIDATION_KPOINTS))
    np.testing.assert_allclose(lv.reference, ref, atol=1e-8)
    np.testing.assert_array_equal(lv.predicted, lv.reference)
    assert lv.band_mae_eV(3.0) == 0.0 and lv.gap_error_eV() == 0.0
    # hBN: 8 electrons per BN pair, a gap of several eV at these k-points
    assert lv.n_occupied == 16
    assert 3.0 < lv.reference[:, 16].min() - lv.reference[:, 15].max() < 7.0


def test_a_shift_by_the_overlap_moves_every_level_and_not_the_gap(hbn):
    """H + c S has the levels of H moved by exactly c: the band error is |c|, the gap error 0."""
    sample, basis = hbn
    c = 0.0371
    lv = level_errors(sample, sample.targets.h_blocks + c * sample.targets.s_blocks, basis, 32, "none")
    assert lv.band_mae_eV(3.0) == pytest.approx(c, abs=1e-9)
    assert lv.gap_error_eV() == pytest.approx(0.0, abs=1e-9)


def test_a_shift_of_the_n_on_site_levels_opens_the_gap(hbn):
    """hBN's valence band sits on N, its conduction band on B: lowering N's on-site levels widens the gap."""
    sample, basis = hbn
    g = sample.graph
    h = sample.targets.h_blocks.copy()
    on_n = [e for e in range(g.n_edges) if g.senders[e] == g.receivers[e] and not g.shifts[e].any()
            and g.symbols[g.senders[e]] == "N"]
    for e in on_n:
        h[e] -= 0.1 * sample.targets.s_blocks[e]
    lv = level_errors(sample, h, basis, 32, "none")
    assert 0.02 < lv.gap_error_eV() < 0.1
    assert 0.0 < lv.band_mae_eV(3.0) < 0.1


def test_validation_levels_skip_structures_without_an_electron_count(hbn, tmp_path):
    sample, basis = hbn
    preds = [(sample.targets.h_blocks + 0.01 * sample.targets.s_blocks, sample.targets.s_blocks)]
    out = validation_levels([sample], preds, [HBN], basis, "none")
    assert out["n"] == 1 and out["band_mae_meV"] == pytest.approx(10.0, abs=1e-6)
    assert validation_levels([sample], preds, [tmp_path], basis, "none") is None


def test_spinful_levels_of_a_soc_molecule():
    """CH2BrCl with spin-orbit coupling (X2C): the levels of the spinful DFT H from the edge blocks equal the band
    module's, one electron per spin-orbital: the gap is info.json's HOMO-LUMO gap."""
    import json

    mol = REPO / "datasets" / "halides-soc-ood" / "00000"
    basis = dataset_basis([mol])
    sample = SampleCache([mol], basis, 8.0, spin="soc")[0]
    lv = level_errors(sample, sample.targets.h_blocks, basis, electron_count(mol), "soc")
    ref = bands_at(read_deeph_dir(mol), np.zeros((1, 3)))
    np.testing.assert_allclose(lv.reference, ref, atol=1e-7)
    assert lv.n_occupied == 60 and lv.reference.shape == (1, 2 * 74)
    gap = json.loads((mol / "info.json").read_text())["homo_lumo_gap_eV"]
    assert lv.reference[0, 60] - lv.reference[0, 59] == pytest.approx(gap, abs=1e-6)
    assert lv.band_mae_eV(3.0) == 0.0
