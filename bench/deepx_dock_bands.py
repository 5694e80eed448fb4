"""Reference bands from DeepH-dock (run in DeepH-dock's own venv, Python >= 3.12; not part of deeph-jax).

Produces ``tests/physics/data/mote2_deepx_dock_bands.npz``: the raw (unshifted) eigenvalues of
DeepH-dock's dense eigen routine along the folder's K_PATH, with its k-points and distances.

    bash ../shared/peers/setup-deepx-dock.sh /tmp/venv-deepx-dock
    /tmp/venv-deepx-dock/bin/python bench/deepx_dock_bands.py \
        ../shared/data/deeph-dock/compute/eigen/eigen.clean/MoTe2 tests/physics/data/mote2_deepx_dock_bands.npz
"""

import sys
from pathlib import Path

import numpy as np
from deepx_dock.compute.eigen.band import BandDataGenerator
from deepx_dock.compute.eigen.hamiltonian import HamiltonianObj


def main(folder: str, out: str) -> None:
    folder = Path(folder)
    obj = HamiltonianObj(folder)
    conf = {"k_list_spell": (folder / "K_PATH").read_text()}
    gen = BandDataGenerator(obj, conf)
    energies = obj.diag(np.asarray(gen.kpoints_frac_list), bands_only=True)  # (n_bands, n_k), unshifted
    gen.calc_band_data()  # DeepH-dock's own Fermi level (HOMO/LUMO midpoint along the path)
    np.savez_compressed(
        out,
        kpoints=np.asarray(gen.kpoints_frac_list),
        distances=np.asarray(gen.kpoints_distance_list),  # |dk| / (2 pi), 1/Angstrom
        energies_eV=energies.T,  # (n_k, n_bands)
        fermi_energy_eV=np.float64(gen.fermi_energy_before_shift),
        labels=np.asarray([s for seg in gen.hsk_symbol_list for s in seg]),
    )
    print(f"wrote {out}: {energies.shape[1]} k-points x {energies.shape[0]} bands, E_F {gen.fermi_energy_before_shift:.6f} eV")


if __name__ == "__main__":
    main(*sys.argv[1:3])
