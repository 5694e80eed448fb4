"""Reading and writing DeepH data (current and legacy formats) and atomic structures."""

from deeph_jax.io.basis import OrbitalBasis, openmx_to_wiki_permutation
from deeph_jax.io.blocks import BlockSparse
from deeph_jax.io.deeph import (
    HAMILTONIAN,
    HAMILTONIAN_PRED,
    INFO,
    OVERLAP,
    POSCAR,
    DeephStructure,
    find_structure_dirs,
    read_deeph_dir,
    read_info,
    read_matrix,
    read_poscar,
    write_deeph_dir,
    write_info,
    write_matrix,
    write_poscar,
)
from deeph_jax.io.legacy import convert_legacy, read_legacy_dir
from deeph_jax.io.structures import Structure, load_structure, load_structures, validate_structure

__all__ = [
    "BlockSparse", "DeephStructure", "OrbitalBasis", "Structure",
    "HAMILTONIAN", "HAMILTONIAN_PRED", "INFO", "OVERLAP", "POSCAR",
    "convert_legacy", "find_structure_dirs", "load_structure", "load_structures", "openmx_to_wiki_permutation",
    "read_deeph_dir", "read_info", "read_legacy_dir", "read_matrix", "read_poscar", "validate_structure",
    "write_deeph_dir", "write_info", "write_matrix", "write_poscar",
]
