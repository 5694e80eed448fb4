"""E(3)-equivariant model: e3nn-jax + flax message passing; irreps <-> blocks at the boundary."""

from deeph_jax.model.config import PRESETS, ModelConfig, larger, tiny
from deeph_jax.model.irreps_blocks import (
    BlockLayout, block_to_irreps, blocks_to_irreps, build_layout, entry_mask, irreps_to_block,
    irreps_to_blocks, model_elements, pair_kind, shell_pair_irreps, species_pair_masks,
)
from deeph_jax.model.network import HamiltonianNet, count_parameters, hermitian_blocks, summary
from deeph_jax.model.spin_blocks import collinear_blocks, collinear_parts, soc_blocks, soc_parts
from deeph_jax.model.wigner import atom_D, irreps_D, random_rotation, su2_matrix, to_e3nn_frame, wigner_D

__all__ = [
    "BlockLayout", "HamiltonianNet", "ModelConfig", "PRESETS",
    "atom_D", "block_to_irreps", "blocks_to_irreps", "build_layout", "collinear_blocks", "collinear_parts",
    "count_parameters", "entry_mask",
    "hermitian_blocks", "irreps_D", "irreps_to_block", "irreps_to_blocks", "larger", "model_elements",
    "pair_kind", "random_rotation", "shell_pair_irreps", "soc_blocks", "soc_parts", "species_pair_masks",
    "su2_matrix", "summary", "tiny", "to_e3nn_frame", "wigner_D",
]
