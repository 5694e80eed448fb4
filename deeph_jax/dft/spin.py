"""Spinful molecular DFT data: spin-orbit coupling (two-component X2C) and collinear magnetism (UKS).

Both are stored in the DeepH spinful layout: each block (i, j) is (2a x 2b), laid out
``[[uu, ud], [du, dd]]``, complex128, H in eV; the overlap stays spinless (a x b, real), as in
DeepH-dock (its readers double S to diag(S, S) when ``spinful``).

- ``soc``: generalized Kohn-Sham with PySCF's one-electron X2C in the spin-orbital basis
  (``dft.GKS(mol).x2c()``, class ``X2C1E_GSCF``): the one-electron Hamiltonian carries the
  spin-orbit terms (two-electron spin-orbit terms are not included). PySCF works in the
  spherical spin-orbital AO basis, [all alpha AOs, all beta AOs], with the non-relativistic
  metric diag(S, S): the X2C h_core is already transformed back to it, so the converged Fock
  matrix F and S give PySCF's ``mo_energy`` (checked per structure, ``mo_energy_residual_eV``).
  uu = F[alpha, alpha], ud = F[alpha, beta], du = F[beta, alpha], dd = F[beta, beta].
- ``collinear``: unrestricted Kohn-Sham (UKS): uu = F_alpha, dd = F_beta, ud = du = 0
  (DeepH-dock's collinear convention: its PySCF and ABACUS nspin=2 exporters write ``spinful``
  true with the two spin channels on the diagonal and zero off-diagonal spin blocks). Mulliken
  spin moments per atom (Bohr magnetons, spin only, g = 2: the atom's n_up - n_down) go to
  info.json as ``magnetic_moments_muB``.

Named distributions (structure ``index`` is molecule ``index % n`` of the list, so a set
cycles through the molecules; a random rotation, then isotropic Gaussian displacements,
both from the RNG seeded by (seed, index)):

- ``halides``: HCl, HBr, Cl2, Br2, BrCl, CH3Cl, CH3Br, CH2Cl2, CH2Br2 (closed shells; PBE,
  def2-SVP is all-electron for Cl and Br), SOC.
- ``radicals``: O2, NH, CH2 (triplets), HCO, NH2, CH3, NO2, HO2 (doublets), collinear UKS with
  n_alpha - n_beta from the table. (Not OH or NO: a diatomic doublet with a pi^3 / pi^1 shell has two
  degenerate partly filled orbitals at every bond length, and its UKS does not converge without
  fractional occupations; measured: OH left out after the damped retry.)
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from deeph_jax.dft.pyscf_common import ao_permutation, check_basis_elements, orbital_basis
from deeph_jax.errors import DeephError
from deeph_jax.io import BlockSparse, DeephStructure, Structure, validate_structure
from deeph_jax.units import HARTREE_TO_EV

SPIN_TREATMENTS = ("restricted", "soc", "collinear")
DEFAULT_RATTLE = 0.06  # Angstrom per Cartesian coordinate, for the named halides and radicals
# Orbital-gradient threshold of the spinful SCFs: PySCF's default sqrt(conv_tol) = 1e-5 leaves the final
# Fock matrix's eigenvalues 1e-5 eV from mo_energy (one diagonalization behind); 1e-7 brings them to ~1e-6 eV
# for one more SCF cycle.
SPIN_CONV_TOL_GRAD = 1e-7


def conv_tol_grad(settings) -> float | None:
    if settings.conv_tol_grad is not None:
        return settings.conv_tol_grad
    return SPIN_CONV_TOL_GRAD if settings.spin != "restricted" else None


# -- equilibrium geometries (Angstrom; experimental or close to it) -------------------------------
def _diatomic(a: str, b: str, d: float):
    return (a, b), np.array([[0.0, 0.0, 0.0], [0.0, 0.0, d]])


def _bent(centre: str, x: str, d: float, angle: float, y: str | None = None, d2: float | None = None):
    """X-centre-Y (Y defaults to X): centre at the origin, the X-centre-Y angle in degrees."""
    t = np.radians(angle) / 2
    d2 = d if d2 is None else d2
    return (centre, x, y or x), np.array([[0.0, 0.0, 0.0], [d * np.sin(t), 0.0, d * np.cos(t)],
                                          [-d2 * np.sin(t), 0.0, d2 * np.cos(t)]])


def _ch3x(x: str | None, d_cx: float, d_ch: float, angle_hcx: float):
    """CH3X (C3v) with H-C-X = ``angle_hcx``; ``x`` None gives planar CH3 (angle 90)."""
    t = np.radians(angle_hcx)
    hs = [[d_ch * np.sin(t) * np.cos(p), d_ch * np.sin(t) * np.sin(p), d_ch * np.cos(t)]
          for p in np.radians([0.0, 120.0, 240.0])]
    if x is None:
        return ("C", "H", "H", "H"), np.array([[0.0, 0.0, 0.0], *hs])
    return ("C", x, "H", "H", "H"), np.array([[0.0, 0.0, 0.0], [0.0, 0.0, d_cx], *hs])


def _ch2x2(x: str, d_cx: float, d_ch: float, angle_xcx: float, angle_hch: float):
    a, b = np.radians(angle_xcx) / 2, np.radians(angle_hch) / 2
    pos = [[0.0, 0.0, 0.0],
           [d_cx * np.sin(a), 0.0, d_cx * np.cos(a)], [-d_cx * np.sin(a), 0.0, d_cx * np.cos(a)],
           [0.0, d_ch * np.sin(b), -d_ch * np.cos(b)], [0.0, -d_ch * np.sin(b), -d_ch * np.cos(b)]]
    return ("C", x, x, "H", "H"), np.array(pos)


def _ho2():
    d_oo, d_oh, ang = 1.331, 0.971, np.radians(104.3)
    return ("O", "O", "H"), np.array([[0.0, 0.0, 0.0], [d_oo, 0.0, 0.0],
                                      [-d_oh * np.cos(ang), d_oh * np.sin(ang), 0.0]])


HALIDES = {
    "HCl": _diatomic("H", "Cl", 1.2746),
    "HBr": _diatomic("H", "Br", 1.4145),
    "Cl2": _diatomic("Cl", "Cl", 1.988),
    "Br2": _diatomic("Br", "Br", 2.281),
    "BrCl": _diatomic("Br", "Cl", 2.136),
    "CH3Cl": _ch3x("Cl", 1.781, 1.086, 108.4),
    "CH3Br": _ch3x("Br", 1.934, 1.082, 107.7),
    "CH2Cl2": _ch2x2("Cl", 1.772, 1.082, 112.0, 111.5),
    "CH2Br2": _ch2x2("Br", 1.925, 1.079, 112.9, 110.9),
}

# name -> ((symbols, positions), n_alpha - n_beta)
RADICALS = {
    "O2": (_diatomic("O", "O", 1.2075), 2),
    "NH": (_diatomic("N", "H", 1.036), 2),
    "CH2": (_bent("C", "H", 1.075, 133.9), 2),
    "HCO": (_bent("C", "H", 1.125, 124.95, y="O", d2=1.175), 1),
    "NH2": (_bent("N", "H", 1.024, 103.3), 1),
    "CH3": (_ch3x(None, 0.0, 1.079, 90.0), 1),
    "NO2": (_bent("N", "O", 1.193, 134.1), 1),
    "HO2": (_ho2(), 1),
}

NAMED_SPIN = {"halides": "soc", "radicals": "collinear"}


def molecules_of(name: str) -> list[str]:
    if name == "halides":
        return list(HALIDES)
    if name == "radicals":
        return list(RADICALS)
    raise DeephError(f"unknown molecule distribution {name!r} (known: water, halides, radicals)")


def molecule_label(name: str, index: int) -> str:
    """The molecule of structure ``index`` in a named distribution: the list, cycled."""
    names = molecules_of(name)
    return names[index % len(names)]


def unpaired_of(name: str, index: int) -> int | None:
    """n_alpha - n_beta of structure ``index`` (radicals), None for closed-shell distributions."""
    if name != "radicals":
        return None
    return RADICALS[molecule_label(name, index)][1]


def named_geometry(name: str, rng: np.random.Generator, index: int, sigma: float, box: float) -> Structure:
    """Equilibrium geometry of molecule ``index % n``, centred, randomly rotated, then rattled."""
    from scipy.spatial.transform import Rotation

    from deeph_jax.dft.molecules import centred, rattled

    label = molecule_label(name, index)
    symbols, local = HALIDES[label] if name == "halides" else RADICALS[label][0]
    local = local - local.mean(0)
    rot = Rotation.random(random_state=rng).as_matrix()
    s = Structure(symbols, local @ rot.T, np.eye(3) * box, periodic=False)
    return rattled(s, rng, sigma, box) if sigma > 0 else centred(s, box)


def named_sampling(name: str, sigma: float, box: float) -> dict:
    table = {k: {"symbols": list(v[0]), "positions_A": np.round(v[1], 6).tolist()} for k, v in HALIDES.items()} \
        if name == "halides" else \
        {k: {"symbols": list(v[0][0]), "positions_A": np.round(v[0][1], 6).tolist(), "n_alpha_minus_n_beta": v[1]}
         for k, v in RADICALS.items()}
    return {
        "distribution": name,
        "molecules": table,
        "choice": "structure index i is molecule i % n of this list (in order)",
        "rotation": "uniformly random (scipy Rotation.random), about the centroid",
        "rattle_sigma_A": sigma,
        "rattle": "isotropic Gaussian per Cartesian coordinate after the rotation (redrawn if two atoms < 0.1 A)",
        "placement": f"bounding-box centre at the centre of a {box} A cubic box",
    }


def spin_meta(settings) -> dict:
    """The metadata.json entries that differ from the restricted generator."""
    hf = settings.xc.upper() in ("HF", "RHF", "GHF", "UHF")
    if settings.spin == "soc":
        return {
            "method": ("generalized Hartree-Fock" if hf else "generalized Kohn-Sham") + ", one-electron X2C with "
                      "spin-orbit coupling (PySCF X2C1E_GSCF: mol.GKS().x2c(), spin-orbital spherical AO basis); "
                      "no two-electron spin-orbit terms",
            "relativity": "x2c1e-soc",
            "hamiltonian": "converged two-component Fock matrix h_X2C + V_eff[D] (eV), spinful blocks "
                           "[[uu, ud], [du, dd]] complex128; S: spinless AO overlap (the non-relativistic metric "
                           "PySCF's X2C Fock is paired with)",
            "fermi_energy": "HOMO-LUMO midpoint of the spin-orbital spectrum",
        }
    return {
        "method": ("unrestricted Hartree-Fock" if hf else "unrestricted Kohn-Sham") + " (collinear spin)",
        "relativity": None,
        "hamiltonian": "converged Fock matrices F_alpha, F_beta (eV) stored as spinful blocks "
                       "[[F_alpha, 0], [0, F_beta]] complex128 (DeepH-dock's collinear convention); S: AO overlap",
        "magnetic_moments": "Mulliken spin populations per atom (n_up - n_down, Bohr magnetons) in info.json "
                            "magnetic_moments_muB",
        "fermi_energy": "midpoint of the highest occupied and lowest empty level over both spins",
    }


# -- DFT ------------------------------------------------------------------------------------------
def electron_count(structure: Structure, charge: int) -> int:
    from pyscf import gto

    return int(sum(gto.charge(s) for s in structure.symbols) - charge)


def _build(structure: Structure, settings, spin: int, path=None):
    from pyscf import gto

    check_basis_elements(structure.symbols, settings.basis, path)
    try:
        return gto.M(atom=[(s, tuple(p)) for s, p in zip(structure.symbols, structure.positions)],
                     unit="Angstrom", basis=settings.basis, charge=settings.charge, spin=int(spin), cart=False,
                     verbose=0)
    except RuntimeError as exc:  # electron count and spin of different parity
        raise DeephError(f"cannot build the molecule ({exc})".replace("\n", " "), path) from None


def _finish(mf, settings):
    if settings.grid_level is not None and hasattr(mf, "grids"):
        mf.grids.level = int(settings.grid_level)
    if settings.density_fit:
        mf = mf.density_fit(auxbasis=settings.auxbasis)
    mf.conv_tol = settings.conv_tol
    mf.conv_tol_grad = conv_tol_grad(settings)
    mf.max_cycle = settings.max_cycle
    mf.verbose = 0
    return mf


def make_soc_mf(mol, settings):
    """GKS (or GHF) with one-electron X2C including spin-orbit coupling."""
    from pyscf import dft, scf

    if settings.xc.upper() in ("HF", "GHF"):
        mf = scf.GHF(mol).x2c()
    else:
        mf = dft.GKS(mol, xc=settings.xc).x2c()
    return _finish(mf, settings)


def make_uks_mf(mol, settings):
    from pyscf import dft, scf

    mf = scf.UHF(mol) if settings.xc.upper() in ("HF", "UHF") else dft.UKS(mol, xc=settings.xc)
    return _finish(mf, settings)


def _spinful_blocks(h_uu, h_ud, h_du, h_dd, offsets) -> dict:
    n = len(offsets) - 1
    out = {}
    for i in range(n):
        r = slice(offsets[i], offsets[i + 1])
        for j in range(n):
            c = slice(offsets[j], offsets[j + 1])
            out[(0, 0, 0, i, j)] = np.block([[h_uu[r, c], h_ud[r, c]], [h_du[r, c], h_dd[r, c]]])
    return out


def _spinless_blocks(s, offsets) -> dict:
    n = len(offsets) - 1
    return {(0, 0, 0, i, j): s[offsets[i]:offsets[i + 1], offsets[j]:offsets[j + 1]]
            for i in range(n) for j in range(n)}


def compute_soc_molecule(structure: Structure, settings, path=None):
    """Two-component X2C GKS; return ``(DeephStructure, mf)``: spinful H (eV), spinless S, DeepH order."""
    from deeph_jax.dft.molecules import run_scf

    validate_structure(structure, path)
    nelectron = electron_count(structure, settings.charge)
    if nelectron % 2:
        raise DeephError(f"{nelectron} electrons: spin-orbit data need a closed shell (Kramers pairs; set "
                         f"--charge)", path)
    mol = _build(structure, settings, 0, path)
    if mol.has_ecp():
        raise DeephError(f"basis {settings.basis!r} uses effective core potentials, which PySCF's spin-orbital X2C "
                         f"does not support (use an all-electron basis)", path)
    basis = orbital_basis(mol, structure.symbols, path)
    mf = run_scf(make_soc_mf(mol, settings), settings.damping_retry)
    nao = mol.nao_nr()
    dm = mf.make_rdm1()
    fock = np.asarray(mf.get_hcore() + mf.get_veff(mol, dm))
    ovlp = np.asarray(mf.get_ovlp())
    s_ao = ovlp[:nao, :nao].real
    if np.abs(ovlp[:nao, nao:]).max() > 0 or np.abs(ovlp[nao:, nao:] - ovlp[:nao, :nao]).max() > 1e-14:
        raise RuntimeError("PySCF's spin-orbital overlap is not diag(S, S)")  # pragma: no cover
    perm = ao_permutation(mol)
    perm2 = np.concatenate([perm, perm + nao])
    h = fock[np.ix_(perm2, perm2)].astype(np.complex128) * HARTREE_TO_EV
    h = 0.5 * (h + h.conj().T)
    s = s_ao[np.ix_(perm, perm)]
    s = 0.5 * (s + s.T)
    e = scipy.linalg.eigh(h, scipy.linalg.block_diag(s, s), eigvals_only=True)
    nocc = mol.nelectron
    gap = float(e[nocc] - e[nocc - 1]) if nocc < len(e) else None
    if gap is not None and gap < 1e-3:
        raise DeephError(f"HOMO-LUMO gap {gap:.2e} eV: not a closed shell (a Kramers pair is split at the Fermi "
                         f"level)", path)
    fermi = float(0.5 * (e[nocc - 1] + e[nocc])) if gap is not None else float(e[nocc - 1])
    offsets = basis.atom_offsets(structure.symbols)
    hb = _spinful_blocks(h[:nao, :nao], h[:nao, nao:], h[nao:, :nao], h[nao:, nao:], offsets)
    info = {
        "orthogonal_basis": False,
        "spinful": True,
        "fermi_energy_eV": fermi,
        "occupation": int(mol.nelectron),
        "basis": settings.basis,
        "xc": settings.xc,
        "relativity": "x2c1e-soc",
        "charge": settings.charge,
        "total_energy_eV": float(mf.e_tot) * HARTREE_TO_EV,
        "homo_lumo_gap_eV": gap,
        "kramers_max_splitting_eV": float(np.abs(e[0::2] - e[1::2]).max()),
        "mo_energy_residual_eV": float(np.abs(e - np.sort(mf.mo_energy) * HARTREE_TO_EV).max()),
    }
    data = DeephStructure(structure=structure, basis=basis, info=info,
                          overlap=BlockSparse.from_blocks(_spinless_blocks(s, offsets)),
                          hamiltonian=BlockSparse.from_blocks(hb))
    return data, mf


def mulliken_moments(dm_a: np.ndarray, dm_b: np.ndarray, s: np.ndarray, ao_atoms: np.ndarray, n_atoms: int):
    """Mulliken spin population per atom: sum over the atom's AOs of ((D_a - D_b) S)_mu,mu (real part)."""
    pop = np.einsum("ij,ji->i", dm_a - dm_b, s).real
    return np.bincount(ao_atoms, weights=pop, minlength=n_atoms)


def compute_collinear_molecule(structure: Structure, settings, path=None, unpaired: int | None = None,
                               dm0=None):
    """UKS; return ``(DeephStructure, mf)`` with spinful blocks [[F_up, 0], [0, F_down]] (eV) and spinless S.

    ``unpaired`` = n_alpha - n_beta (PySCF's ``spin``; negative puts the excess in beta); None takes the
    electron-count parity (0 or 1)."""
    from deeph_jax.dft.molecules import run_scf

    validate_structure(structure, path)
    if unpaired is None:
        unpaired = electron_count(structure, settings.charge) % 2
    mol = _build(structure, settings, unpaired, path)
    basis = orbital_basis(mol, structure.symbols, path)
    mf = make_uks_mf(mol, settings)
    if dm0 is not None:
        mf.kernel(dm0)
        if not mf.converged:
            run_scf(mf, settings.damping_retry)
    else:
        run_scf(mf, settings.damping_retry)
    dm = np.asarray(mf.make_rdm1())
    fock = np.asarray(mf.get_hcore())[None] + np.asarray(mf.get_veff(mol, dm))
    s_ao = np.asarray(mf.get_ovlp())
    perm = ao_permutation(mol)
    hs = []
    for f in fock:
        h = f[np.ix_(perm, perm)] * HARTREE_TO_EV
        hs.append(0.5 * (h + h.T))
    s = s_ao[np.ix_(perm, perm)]
    s = 0.5 * (s + s.T)
    na, nb = (int(x) for x in mol.nelec)
    e_up = scipy.linalg.eigh(hs[0], s, eigvals_only=True)
    e_dn = scipy.linalg.eigh(hs[1], s, eigvals_only=True)
    residual = max(float(np.abs(e_up - mf.mo_energy[0] * HARTREE_TO_EV).max()),
                   float(np.abs(e_dn - mf.mo_energy[1] * HARTREE_TO_EV).max()))
    homo = max([e_up[na - 1]] * (na > 0) + [e_dn[nb - 1]] * (nb > 0))
    lumos = [e_up[na]] * (na < len(e_up)) + [e_dn[nb]] * (nb < len(e_dn))
    lumo = min(lumos) if lumos else None
    fermi = float(0.5 * (homo + lumo)) if lumo is not None else float(homo)
    ao_atoms = np.asarray([lab[0] for lab in mol.ao_labels(fmt=False)], dtype=np.int64)
    moments = mulliken_moments(dm[0], dm[1], s_ao, ao_atoms, mol.natm)
    offsets = basis.atom_offsets(structure.symbols)
    zero = np.zeros_like(hs[0])
    hb = _spinful_blocks(hs[0].astype(np.complex128), zero, zero, hs[1].astype(np.complex128), offsets)
    info = {
        "orthogonal_basis": False,
        "spinful": True,
        "spin_polarized": True,
        "collinear_spin": True,
        "fermi_energy_eV": fermi,
        "occupation": int(mol.nelectron),
        "occupation_up": na,
        "occupation_down": nb,
        "basis": settings.basis,
        "xc": settings.xc,
        "charge": settings.charge,
        "total_energy_eV": float(mf.e_tot) * HARTREE_TO_EV,
        "homo_lumo_gap_eV": float(lumo - homo) if lumo is not None else None,
        "aufbau": bool(lumo is None or homo < lumo),
        "spin_square": float(mf.spin_square()[0]),
        "magnetic_moments_muB": [round(float(m), 8) for m in moments],
        "total_magnetic_moment_muB": round(float(moments.sum()), 8),
        "magnetic_moment_method": "Mulliken spin population (n_up - n_down per atom, spin only)",
        "mo_energy_residual_eV": residual,
    }
    data = DeephStructure(structure=structure, basis=basis, info=info,
                          overlap=BlockSparse.from_blocks(_spinless_blocks(s, offsets)),
                          hamiltonian=BlockSparse.from_blocks(hb))
    return data, mf


# -- rotations of spinful blocks ------------------------------------------------------------------
def su2_from_rotation(q: np.ndarray) -> np.ndarray:
    """The SU(2) matrix U = exp(-i theta n.sigma / 2) of the proper part of the orthogonal ``q``
    (inversion acts on space only); defined up to a sign, which cancels in U H U^dagger."""
    from scipy.spatial.transform import Rotation

    q = np.asarray(q, dtype=np.float64)
    proper = q * np.sign(np.linalg.det(q))
    v = Rotation.from_matrix(proper).as_rotvec()
    theta = np.linalg.norm(v)
    if theta < 1e-15:
        return np.eye(2, dtype=np.complex128)
    n = v / theta
    sx = np.array([[0, 1], [1, 0]], dtype=np.complex128)
    sy = np.array([[0, -1j], [1j, 0]], dtype=np.complex128)
    sz = np.array([[1, 0], [0, -1]], dtype=np.complex128)
    return np.cos(theta / 2) * np.eye(2) - 1j * np.sin(theta / 2) * (n[0] * sx + n[1] * sy + n[2] * sz)
