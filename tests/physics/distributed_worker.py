"""Subprocess worker for tests/physics/test_distributed.py: eigenvalues near sigma (at a generic k: complex
Hermitian) and KPM moments (at Gamma: real) of a tiled shipped hBN cell, with the matrix rows split over the
JAX processes of this run.

    python distributed_worker.py SIGMA_EV E_MIN_EV E_MAX_EV OUT_NPZ
"""

import sys
from pathlib import Path

import numpy as np

from deeph_jax.io import read_deeph_dir
from deeph_jax.io.tiling import tile_deeph
from deeph_jax.runtime import init_distributed

SMALL = Path(__file__).resolve().parents[2] / "datasets" / "hbn-szv" / "train-2x2" / "00000"
K_GENERIC = np.array([[0.13, 0.29, 0.0]])


def main():
    sigma, e_min, e_max = (float(x) for x in sys.argv[1:4])
    out = sys.argv[4]
    init_distributed()
    import jax

    from deeph_jax.physics.distributed import bands_distributed, kpm_moments_distributed

    data = tile_deeph(read_deeph_dir(SMALL), (2, 2, 1))
    energies = bands_distributed(data, K_GENERIC, n_bands=4, sigma=sigma)
    # Bounds given: the Lanczos estimate of the spectrum's ends costs thousands of gathers, and is tested apart.
    moments = kpm_moments_distributed(data, np.zeros((1, 3)), n_moments=16, n_vectors=2, seed=5,
                                      bounds=(e_min, e_max))
    np.savez(f"{out}.{jax.process_index()}.npz", energies=energies, moments=moments.per_vector,
             processes=jax.process_count())


if __name__ == "__main__":
    main()
