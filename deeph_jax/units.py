"""Unit conversions, CODATA 2018 (the values DESIGN.md fixes for the data contract).

Every interface of deeph-jax speaks eV and Angstrom; PySCF speaks Hartree and Bohr.
Convert once, at the boundary, with these constants. They are written out rather than taken
from ``scipy.constants`` because newer scipy ships CODATA 2022 (Bohr differs by 7e-10
relative), and PySCF's own ``nist.HARTREE2EV`` is older still (8e-9 relative): either would
make stored datasets depend on the installed version.
"""

HARTREE_TO_EV: float = 27.211386245988
BOHR_TO_ANGSTROM: float = 0.529177210903
ANGSTROM_TO_BOHR: float = 1.0 / BOHR_TO_ANGSTROM
EV_TO_MICROHARTREE: float = 1e6 / HARTREE_TO_EV
E_ANGSTROM_TO_DEBYE: float = 4.803204712570263  # 1 e*Angstrom in Debye (e / (1e-21/c))
