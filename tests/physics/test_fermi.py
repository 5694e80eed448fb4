"""The band-error measure used for predicted-vs-DFT comparisons."""

import numpy as np
import pytest

from deeph_jax.physics.fermi import band_error_near_fermi


def test_band_error_near_fermi_counts_only_the_window():
    ref = np.array([[-10.0, -1.0, 1.0, 10.0], [-9.0, -2.0, 2.0, 9.0]])
    pred = ref + np.array([[5.0, 0.01, -0.03, 5.0], [5.0, 0.02, 0.0, 5.0]])  # far bands badly off
    mean, worst, n = band_error_near_fermi(pred, ref, fermi_energy=0.0, window=3.0)
    assert n == 4 and abs(mean - 0.015) < 1e-12 and abs(worst - 0.03) < 1e-12
    with pytest.raises(ValueError, match="within 0.5 eV"):
        band_error_near_fermi(pred, ref, fermi_energy=0.0, window=0.5)
