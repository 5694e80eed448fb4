"""deeph-jax: E(3)-equivariant prediction of DFT Hamiltonians in the DeepH format."""

from deeph_jax.errors import DeephError

__version__ = "0.1.0"
__all__ = ["DeephError", "__version__"]
