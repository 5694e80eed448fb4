"""Varied crystal sampling (rattle range, in-plane strain, pristine cells): reproducible and physical."""

import numpy as np

from deeph_jax.dft.crystals import CrystalSource, named_cell, random_strain, supercell


def test_fixed_rattle_stream_is_unchanged():
    # The shipped sets were drawn as positions + normal(0, sigma): the varied options must not change that.
    src = CrystalSource(supercell=(2, 2, 1), rattle=0.1)
    ideal = supercell(named_cell("hbn"), (2, 2, 1))
    rng = np.random.default_rng([0, 3])
    expected = ideal.positions + rng.normal(0.0, 0.1, ideal.positions.shape)
    np.testing.assert_array_equal(src.geometry(0, 3).positions, expected)


def test_varied_sampling_is_reproducible_and_in_range():
    src = CrystalSource(supercell=(3, 3, 1), rattle=0.0, rattle_max=0.15, strain=0.02, pristine=1)
    ideal = supercell(named_cell("hbn"), (3, 3, 1))
    sigmas = []
    for i in range(12):
        a, b = src.geometry(5, i), src.geometry(5, i)
        np.testing.assert_array_equal(a.positions, b.positions)
        sample = src.sample(5, i)
        sigmas.append(sample["rattle_sigma_A"])
        strain = np.asarray(sample["strain"])
        np.testing.assert_allclose(strain, strain.T)
        assert np.abs(strain).max() <= 0.02
        assert np.abs(strain[2]).max() == 0 and np.abs(strain[:, 2]).max() == 0  # in-plane only
        np.testing.assert_allclose(a.cell, ideal.cell @ (np.eye(3) + strain), atol=1e-10)
        np.testing.assert_allclose(a.cell[2], ideal.cell[2])  # the vacuum height is kept
        disp = a.positions - ideal.positions @ (np.eye(3) + strain)
        if i == 0:
            assert sample["rattle_sigma_A"] == 0.0 and np.abs(disp).max() < 1e-10  # strain recorded to 12 digits
        else:
            assert 0.0 <= sample["rattle_sigma_A"] <= 0.15
            assert np.abs(disp).max() < 6 * sample["rattle_sigma_A"] + 1e-12
    assert len(set(sigmas)) == 12 and max(sigmas) > 0.05


def test_strain_of_a_bulk_cell_is_three_dimensional():
    diamond = named_cell("diamond")
    eps = random_strain(np.random.default_rng(0), 0.02, diamond)
    assert np.abs(eps[2]).max() > 0 and np.abs(eps).max() <= 0.02
