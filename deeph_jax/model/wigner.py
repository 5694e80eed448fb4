"""Wigner D matrices in the project's orbital order (real harmonics m = -l..l, p as y, z, x).

e3nn-jax's irreps use (x, y, z) for l = 1 and y as the polar axis of its harmonics. With the
cyclic permutation P v = (v_y, v_z, v_x), ``e3nn.spherical_harmonics(l, P r)`` is the
project's Y_l(r), and D_l(Q) = ``Irrep(l, (-1)**l).D_from_matrix(P Q P^T)`` satisfies
Y_l(Q r) = D_l(Q) Y_l(r) for any orthogonal Q (DESIGN.md section 2). The model permutes
its input vectors once (:func:`to_e3nn_frame`), so every e3nn-jax irrep inside it is
already in project order and these D matrices apply to its features as well.
"""

from __future__ import annotations

import e3nn_jax as e3nn
import numpy as np
from scipy.linalg import block_diag

from deeph_jax.io.basis import OrbitalBasis

# P v = (v_y, v_z, v_x): row k of P picks the source axis.
PERM = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])


def to_e3nn_frame(vectors):
    """(..., 3) Cartesian (x, y, z) -> (..., 3) as (y, z, x), the frame the model works in."""
    return vectors[..., np.array([1, 2, 0])]


def wigner_D(l: int, Q: np.ndarray, parity: int | None = None) -> np.ndarray:
    """(2l+1, 2l+1) D_l(Q) in m = -l..l order; Q (3, 3) orthogonal, proper or improper.

    ``parity`` defaults to (-1)^l (orbitals, spherical harmonics); pass -(-1)^l for the
    pseudo-tensor irreps that appear in blocks (e.g. 1e in p x p).
    """
    import jax

    p = (-1) ** l if parity is None else parity
    Q = np.asarray(Q, dtype=np.float64)
    with jax.enable_x64(True):  # e3nn builds D in JAX's default precision: float32 would stop checks at 1e-7
        return np.asarray(e3nn.Irrep(l, p).D_from_matrix(PERM @ Q @ PERM.T), dtype=np.float64)


def irreps_D(irreps, Q: np.ndarray) -> np.ndarray:
    """(dim, dim) block-diagonal D of an e3nn ``Irreps`` (in the model frame) for Q."""
    import jax

    irreps = e3nn.Irreps(irreps)
    with jax.enable_x64(True):
        return np.asarray(irreps.D_from_matrix(PERM @ np.asarray(Q, np.float64) @ PERM.T), dtype=np.float64)


def atom_D(basis: OrbitalBasis, element: str, Q: np.ndarray) -> np.ndarray:
    """(n_orb, n_orb) D of one atom's orbitals: block-diagonal over its shells."""
    return block_diag(*[wigner_D(l, Q) for l in basis.shells[element]])


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random proper rotation (3, 3), float64."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


PAULI = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=np.complex128)  # x, y, z


def su2_matrix(Q: np.ndarray) -> np.ndarray:
    """(2, 2) complex SU(2) matrix U of the proper part of Q (Q or -Q, whichever has det +1), with
    U sigma_a U^dagger = sum_b Qp_ba sigma_b: a spin-1/2 rotates with U, inversion leaves it alone.
    U is defined up to sign (both act alike on spinful blocks, which carry U on both sides)."""
    from scipy.linalg import expm
    from scipy.spatial.transform import Rotation

    Q = np.asarray(Q, np.float64)
    proper = Q if np.linalg.det(Q) > 0 else -Q
    rotvec = Rotation.from_matrix(proper).as_rotvec()
    return expm(-0.5j * np.einsum("a,aij->ij", rotvec, PAULI))
