"""Berry-phase (King-Smith and Vanderbilt) polarization in a non-orthogonal atomic-orbital basis.

Approximation (tight-binding form of exp(-i b.r)): exp(-i b.r) phi_nu(r - tau_nu - R) is replaced by
exp(-i b.(tau_nu + R)) phi_nu(r - tau_nu - R), tau_nu the position of orbital nu's atom. With this
project's Bloch sum (phi_nu,k = sum_R exp(i k.R) phi_nu(r - tau_nu - R), no position phase) the
overlap of cell-periodic states between neighbouring k-points is then

    M(k, k+b) = C(k)^dagger S(k) diag(exp(-i b.tau_nu)) C(k+b),

C(k) the occupied S-orthonormal eigenvectors. In this basis the Bloch functions are periodic,
phi_nu,k+G = phi_nu,k, so a closed string k_0 .. k_N = k_0 + G uses C(k_N) = C(k_0) and the
discretized product phi = -Im ln prod_j det M(k_j, k_j+1) is gauge invariant. Along reciprocal
vector G_i, strings of N_i points are averaged over the perpendicular mesh (phases unwrapped
towards the first string), and in units of e a_i / Omega

    p_i = sum_A Z_A f_A,i  -  spin_factor * phi_i / (2 pi),       P = (e / Omega) sum_i p_i a_i,

f_A the fractional coordinates of atom A and Z_A its valence (ionic) charge. P is defined modulo
the quantum e a_i / Omega along each lattice vector. Lengths in Angstrom, P in e/Angstrom^2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deeph_jax.errors import DeephError
from deeph_jax.physics.bands import solve_dense
from deeph_jax.physics.fermi import mesh_points, occupied_bands, spin_factor

E_PER_A2_TO_C_PER_M2 = 16.02176634  # 1 e / Angstrom^2 in C / m^2 (e = 1.602176634e-19 C exactly)
E_PER_A_TO_C_PER_M = 1.602176634e-9  # 1 e / Angstrom in C / m


@dataclass(frozen=True)
class Polarization:
    """Berry-phase polarization of one structure.

    Attributes:
        reduced: (3,) total p_i in units of the quantum e a_i / Omega, wrapped to [-1/2, 1/2).
        reduced_ionic, reduced_electronic: (3,) the two parts, unwrapped.
        cartesian: (3,) P = (e / Omega) sum_i reduced_i a_i, e/Angstrom^2.
        quantum: (3, 3) rows e a_i / Omega, e/Angstrom^2.
        volume: Omega, Angstrom^3.
        kmesh: the k-mesh (N_1, N_2, N_3); string i runs along G_i with N_i points.
        min_gap_eV: smallest direct gap between occupied and empty states on the mesh.
    """

    reduced: np.ndarray
    reduced_ionic: np.ndarray
    reduced_electronic: np.ndarray
    cartesian: np.ndarray
    quantum: np.ndarray
    volume: float
    kmesh: tuple[int, int, int]
    min_gap_eV: float

    @property
    def dipole_per_cell(self) -> np.ndarray:
        """P * Omega, e*Angstrom."""
        return self.cartesian * self.volume


def wrap(x):
    """x modulo 1 into [-1/2, 1/2)."""
    return (np.asarray(x) + 0.5) % 1.0 - 0.5


def string_phase(c: np.ndarray, s: np.ndarray, tau: np.ndarray, b: np.ndarray) -> float:
    """Berry phase (radians, in (-pi, pi]) of one closed string of N k-points.

    Args:
        c: (N, n, n_occ) occupied eigenvectors at k_0 .. k_N-1 (k_N = k_0 + G closes the string).
        s: (N, n, n) S(k_j).
        tau: (n, 3) Cartesian position of each orbital's atom, Angstrom.
        b: (3,) Cartesian step k_j+1 - k_j, 1/Angstrom (2 pi included).
    """
    phase = np.exp(-1j * (tau @ b))  # (n,)
    total = 0.0
    n = c.shape[0]
    for j in range(n):
        m = c[j].conj().T @ s[j] @ (phase[:, None] * c[(j + 1) % n])
        sign, _ = np.linalg.slogdet(m)
        total += np.angle(sign)
    return float(-np.angle(np.exp(1j * total)))


def orbital_positions(data) -> np.ndarray:
    """(n_basis, 3) Cartesian position of the atom of each basis function (spin doubled when spinful)."""
    counts = np.diff(data.atom_offsets)
    tau = np.repeat(data.structure.positions, counts, axis=0)
    return np.concatenate([tau, tau]) if data.spinful else tau


def berry_polarization(data, valence: np.ndarray, kmesh, n_electrons: float | None = None) -> Polarization:
    """King-Smith-Vanderbilt polarization of a :class:`~deeph_jax.io.DeephStructure` (insulator).

    Args:
        valence: (n_atoms,) ionic charges Z_A (pseudopotential valence), e.
        kmesh: (N_1, N_2, N_3) points per string along each reciprocal vector.
        n_electrons: electrons per cell (default: info.json ``occupation``, else sum Z_A).
    """
    cell = data.structure.cell
    volume = float(abs(np.linalg.det(cell)))
    valence = np.asarray(valence, dtype=np.float64)
    n_e = n_electrons if n_electrons is not None else (data.occupation if data.occupation is not None else valence.sum())
    path = data.path
    n_occ = occupied_bands(n_e, data.spinful, path)
    kmesh = tuple(int(n) for n in kmesh)
    ks = mesh_points(kmesh)
    tau = orbital_positions(data)
    n = tau.shape[0]
    if n_occ >= n:
        raise DeephError(f"{n_e} electrons fill all {n} bands: no gap, no polarization", path)
    cs = np.empty((len(ks), n, n_occ), complex)
    ss = np.empty((len(ks), n, n), complex)
    min_gap = np.inf
    for q, k in enumerate(ks):
        ss[q] = data.overlap_k(k)
        e, c = solve_dense(data.hamiltonian_k(k), ss[q], k, vectors=True, path=path)
        cs[q] = c[:, :n_occ]
        gap = float(e[n_occ] - e[n_occ - 1])
        if gap < min_gap:
            min_gap, k_min = gap, k
    if min_gap < 1e-4:
        raise DeephError(f"no gap between occupied and empty states at k = {np.round(k_min, 6).tolist()} "
                         f"({min_gap:.2e} eV): the Berry-phase polarization needs an insulator", path)
    cs = cs.reshape(*kmesh, n, n_occ)
    ss = ss.reshape(*kmesh, n, n)
    recip = 2.0 * np.pi * np.linalg.inv(cell).T
    phases = np.zeros(3)
    for i in range(3):
        b = recip[i] / kmesh[i]
        c_i, s_i = np.moveaxis(cs, i, 0), np.moveaxis(ss, i, 0)  # string axis first
        c_i = c_i.reshape(kmesh[i], -1, n, n_occ)
        s_i = s_i.reshape(kmesh[i], -1, n, n)
        ph = np.asarray([string_phase(c_i[:, t], s_i[:, t], tau, b) for t in range(c_i.shape[1])])
        ph = ph[0] + np.angle(np.exp(1j * (ph - ph[0])))  # unwrap towards the first string
        phases[i] = ph.mean()
    frac = data.structure.frac_positions
    ionic = valence @ frac
    electronic = -spin_factor(data.spinful) * phases / (2.0 * np.pi)
    reduced = wrap(ionic + electronic)
    quantum = cell / volume
    return Polarization(reduced, ionic, electronic, reduced @ quantum, quantum, volume, kmesh, float(min_gap))


def default_polarization_mesh(cell: np.ndarray, periodic: np.ndarray, length: float = 30.0):
    """N_i = ceil(length / |a_i|) along periodic directions, 1 along non-periodic ones."""
    lengths = np.linalg.norm(np.asarray(cell), axis=1)
    return tuple(int(max(2, np.ceil(length / L))) if p else 1 for L, p in zip(lengths, periodic))


def valence_charges(data, override: dict | None = None) -> np.ndarray:
    """(n_atoms,) ionic charges Z_A: ``override`` (element -> Z), else the pseudopotential's valence
    (info.json ``pseudopotential``, a PySCF GTH name such as gth-pbe: B 3, N 5), else atomic numbers.

    The sum must match info.json ``occupation`` (plus ``charge``) when it is known.
    """
    symbols = data.structure.symbols
    override = dict(override or {})
    pp = data.info.get("pseudopotential")
    z = {}
    for el in sorted(set(symbols)):
        if el in override:
            z[el] = float(override[el])
        elif pp:
            from pyscf.pbc.gto import pseudo

            try:
                z[el] = float(sum(pseudo.load(pp, el)[0]))
            except Exception:
                raise DeephError(f"no valence charge for {el} in pseudopotential {pp!r}: pass --valence {el}=Z",
                                 data.path) from None
        else:
            from ase.data import atomic_numbers

            z[el] = float(atomic_numbers[el])
    charges = np.asarray([z[s] for s in symbols])
    occ = data.occupation
    if occ is not None and abs(charges.sum() - data.info.get("charge", 0) - occ) > 1e-8:
        used = ", ".join(f"{el}={v:g}" for el, v in z.items())
        raise DeephError(f"ionic charges ({used}) sum to {charges.sum():g} but occupation is {occ}: pass the "
                         f"pseudopotential valences with --valence (e.g. Mo=14,Te=16)", data.path)
    return charges
