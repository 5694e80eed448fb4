"""DFT data generators (PySCF): molecules and periodic crystals, written in DeepH format.

See :mod:`deeph_jax.dft.molecules`, :mod:`deeph_jax.dft.crystals` and the ``deeph-jax generate``
command (:mod:`deeph_jax.dft.commands`).
"""
