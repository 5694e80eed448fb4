"""Molecular DFT data with PySCF: geometries, the Kohn-Sham Fock matrix and the overlap, in DeepH format.

For each geometry: a restricted Kohn-Sham SCF (default PBE / def2-SVP, no density fitting,
``conv_tol`` 1e-10 Hartree, PySCF's default grids), then H = h_core + V_eff[D] from the
converged density D (the converged Fock matrix, without DIIS, damping or level shift) and
S = the AO overlap. Both are stored as every atom pair (i, j) with R = 0 (self blocks
included), H in eV (CODATA 2018), p shells reordered to (y, z, x).

Geometries:
- ``water``: O-H bond lengths each uniform in [0.85, 1.15] A, H-O-H angle uniform in
  [95, 120] degrees, a uniformly random rotation; O at the centre of a cubic box (30 A).
- a user's file (anything ``ase.io.read`` reads, every frame): taken as is (one structure
  per frame) or rattled with isotropic Gaussian noise of standard deviation ``rattle`` A
  (``n`` structures, cycling through the frames). The molecule is centred in the box.
"""

from __future__ import annotations

import functools
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from deeph_jax.dft.pyscf_common import (
    ao_permutation,
    check_basis_elements,
    orbital_basis,
    structure_id,
)
from deeph_jax.dft.runner import SCFNotConverged, run_dataset
from deeph_jax.errors import DeephError
from deeph_jax.io import BlockSparse, DeephStructure, Structure, validate_structure, write_deeph_dir
from deeph_jax.io.atomic import atomic_directory
from deeph_jax.units import HARTREE_TO_EV

WATER_BOND = (0.85, 1.15)  # Angstrom
WATER_ANGLE = (95.0, 120.0)  # degrees
DEFAULT_BOX = 30.0  # Angstrom
NAMED_SPIN = ("halides", "radicals")  # named distributions of deeph_jax.dft.spin
NAMED = ("water",) + NAMED_SPIN


@dataclass(frozen=True)
class MoleculeSettings:
    """DFT settings of a molecular dataset (Hartree for conv_tol, as PySCF)."""

    basis: str = "def2-SVP"
    xc: str = "PBE"
    conv_tol: float = 1e-10
    grid_level: int | None = None  # None: PySCF's default (level 3)
    density_fit: bool = False
    auxbasis: str | None = None
    charge: int = 0
    max_cycle: int = 100
    damping_retry: float = 0.5
    spin: str = "restricted"  # "restricted" (RKS), "soc" (GKS + X2C spin-orbit) or "collinear" (UKS)
    unpaired: int | None = None  # collinear: n_alpha - n_beta; None: the named table or the electron parity
    conv_tol_grad: float | None = None  # orbital gradient; None: PySCF's sqrt(conv_tol) (spinful: 1e-7)


# -- geometries ------------------------------------------------------------------------------------
def rng_for(seed: int, index: int) -> np.random.Generator:
    """The geometry RNG of structure ``index``: independent of every other index."""
    return np.random.default_rng([int(seed), int(index)])


def water_geometry(rng: np.random.Generator, box: float = DEFAULT_BOX) -> Structure:
    from scipy.spatial.transform import Rotation

    r1, r2 = rng.uniform(*WATER_BOND, size=2)
    theta = np.deg2rad(rng.uniform(*WATER_ANGLE))
    local = np.array([[0.0, 0.0, 0.0], [r1, 0.0, 0.0], [r2 * np.cos(theta), r2 * np.sin(theta), 0.0]])
    rot = Rotation.random(random_state=rng).as_matrix()
    pos = local @ rot.T + box / 2.0
    return Structure(("O", "H", "H"), pos, np.eye(3) * box, periodic=False)


def centred(structure: Structure, box: float = DEFAULT_BOX, path=None) -> Structure:
    """The molecule with its bounding-box centre at the centre of a cubic box of side ``box``."""
    pos = structure.positions
    extent = pos.max(0) - pos.min(0)
    if np.any(extent + 10.0 > box):
        raise DeephError(f"molecule extends {extent.max():.1f} A: does not fit a {box} A box with 5 A margins "
                         f"(raise --box)", path)
    pos = pos - (pos.max(0) + pos.min(0)) / 2.0 + box / 2.0
    return Structure(structure.symbols, pos, np.eye(3) * box, periodic=False)


def rattled(structure: Structure, rng: np.random.Generator, sigma: float, box: float, path=None) -> Structure:
    """Gaussian displacements (sigma in A); a draw that puts two atoms closer than 0.1 A is redrawn
    from the same RNG (deterministic), up to 100 times."""
    for _ in range(100):
        s = Structure(structure.symbols, structure.positions + rng.normal(0.0, sigma, structure.positions.shape),
                      structure.cell, periodic=False)
        try:
            validate_structure(s, path)
        except DeephError:
            continue
        return centred(s, box, path)
    raise DeephError(f"rattle sigma {sigma} A keeps putting atoms on top of each other", path)


# -- DFT ------------------------------------------------------------------------------------------
def build_mol(structure: Structure, settings: MoleculeSettings, path=None):
    from pyscf import gto

    check_basis_elements(structure.symbols, settings.basis, path)
    try:
        mol = gto.M(
            atom=[(s, tuple(p)) for s, p in zip(structure.symbols, structure.positions)],
            unit="Angstrom", basis=settings.basis, charge=settings.charge, spin=0, cart=False, verbose=0,
        )
    except RuntimeError as exc:  # e.g. odd electron count with spin 0
        raise DeephError(f"cannot build the molecule ({exc})".replace("\n", " "), path) from None
    return mol


def make_mf(mol, settings: MoleculeSettings):
    from pyscf import dft, scf

    if settings.xc.upper() in ("HF", "RHF"):
        mf = scf.RHF(mol)
    else:
        mf = dft.RKS(mol, xc=settings.xc)
        if settings.grid_level is not None:
            mf.grids.level = int(settings.grid_level)
    if settings.density_fit:
        mf = mf.density_fit(auxbasis=settings.auxbasis)
    mf.conv_tol = settings.conv_tol
    if settings.conv_tol_grad is not None:
        mf.conv_tol_grad = settings.conv_tol_grad
    mf.max_cycle = settings.max_cycle
    mf.verbose = 0
    return mf


def run_scf(mf, damping: float = 0.5):
    """Converge ``mf``; retry once from scratch with damping; raise SCFNotConverged otherwise."""
    mf.kernel()
    if not mf.converged:
        mf.damp = damping
        mf.diis_start_cycle = 8
        mf.max_cycle = 2 * mf.max_cycle
        mf.kernel()
        if not mf.converged:
            raise SCFNotConverged(f"SCF not converged after {mf.max_cycle} cycles with damping {damping}")
    return mf


def compute_molecule(structure: Structure, settings: MoleculeSettings = MoleculeSettings(), path=None,
                     unpaired: int | None = None):
    """Run the DFT; return ``(DeephStructure, mf)`` with H in eV and S, both in DeepH orbital order.

    ``settings.spin`` "soc" or "collinear" gives spinful H (:mod:`deeph_jax.dft.spin`); ``unpaired``
    (n_alpha - n_beta) is used by "collinear" when ``settings.unpaired`` is None."""
    if settings.spin != "restricted":
        from deeph_jax.dft import spin

        if settings.spin == "soc":
            return spin.compute_soc_molecule(structure, settings, path)
        if settings.spin == "collinear":
            return spin.compute_collinear_molecule(
                structure, settings, path, settings.unpaired if settings.unpaired is not None else unpaired)
        raise DeephError(f"unknown spin treatment {settings.spin!r} (known: {', '.join(spin.SPIN_TREATMENTS)})")
    validate_structure(structure, path)
    mol = build_mol(structure, settings, path)
    if mol.nelectron % 2:
        raise DeephError(f"{mol.nelectron} electrons: only closed-shell molecules are supported (set --charge)", path)
    basis = orbital_basis(mol, structure.symbols, path)
    mf = run_scf(make_mf(mol, settings), settings.damping_retry)
    dm = mf.make_rdm1()
    fock = mf.get_hcore() + mf.get_veff(mol, dm)
    ovlp = mf.get_ovlp()
    perm = ao_permutation(mol)
    h = np.asarray(fock)[np.ix_(perm, perm)] * HARTREE_TO_EV
    s = np.asarray(ovlp)[np.ix_(perm, perm)]
    h = 0.5 * (h + h.T)
    s = 0.5 * (s + s.T)
    import scipy.linalg

    e = scipy.linalg.eigh(h, s, eigvals_only=True)
    nocc = mol.nelectron // 2
    fermi = float(0.5 * (e[nocc - 1] + e[nocc])) if nocc < len(e) else float(e[nocc - 1])
    offsets = basis.atom_offsets(structure.symbols)
    hb, sb = {}, {}
    n = structure.n_atoms
    for i in range(n):
        for j in range(n):
            key = (0, 0, 0, i, j)
            rows, cols = slice(offsets[i], offsets[i + 1]), slice(offsets[j], offsets[j + 1])
            hb[key] = h[rows, cols]
            sb[key] = s[rows, cols]
    info = {
        "orthogonal_basis": False,
        "spinful": False,
        "fermi_energy_eV": fermi,
        "occupation": int(mol.nelectron),
        "basis": settings.basis,
        "xc": settings.xc,
        "charge": settings.charge,
        "total_energy_eV": float(mf.e_tot) * HARTREE_TO_EV,
        "homo_lumo_gap_eV": float(e[nocc] - e[nocc - 1]) if nocc < len(e) else None,
    }
    data = DeephStructure(structure=structure, basis=basis, info=info,
                          overlap=BlockSparse.from_blocks(sb), hamiltonian=BlockSparse.from_blocks(hb))
    return data, mf


# -- datasets -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MoleculeSource:
    """Where geometries come from: the named ``water`` distribution or a user's file."""

    name: str | None = "water"
    path: str | None = None
    rattle: float = 0.0  # Angstrom, standard deviation of the Gaussian displacement per coordinate
    box: float = DEFAULT_BOX

    def frames(self) -> list[Structure]:
        if self.path is None:
            return []
        from deeph_jax.io import load_structures

        return load_structures(self.path, molecule=True)

    def geometry(self, seed: int, index: int, frames: list[Structure]) -> Structure:
        if self.path is None:
            if self.name in NAMED_SPIN:
                from deeph_jax.dft.spin import named_geometry

                return named_geometry(self.name, rng_for(seed, index), index, self.rattle, self.box)
            if self.name != "water":
                raise DeephError(f"unknown molecule distribution {self.name!r} (known: {', '.join(NAMED)})")
            return water_geometry(rng_for(seed, index), self.box)
        frame = frames[index % len(frames)]
        if self.rattle > 0:
            return rattled(frame, rng_for(seed, index), self.rattle, self.box, self.path)
        return centred(frame, self.box, self.path)


def _molecule_job(index: int, out: str, seed: int, source: MoleculeSource, settings: MoleculeSettings) -> float:
    t0 = time.time()
    frames = source.frames()
    structure = source.geometry(seed, index, frames)
    unpaired = None
    if source.path is None and source.name in NAMED_SPIN:
        from deeph_jax.dft.spin import molecule_label, unpaired_of

        unpaired = unpaired_of(source.name, index)
    data, _ = compute_molecule(structure, settings, source.path, unpaired=unpaired)
    if source.path is None and source.name in NAMED_SPIN:
        data.info["molecule"] = molecule_label(source.name, index)
    data.info["sid"] = structure_id(index)
    data.info["seed"] = seed
    final = Path(out) / structure_id(index)
    with atomic_directory(final) as tmp:
        write_deeph_dir(tmp, data, compression="gzip")
    return time.time() - t0


def generate_molecules(
    out: str | Path,
    n: int | None = None,
    seed: int = 0,
    source: MoleculeSource = MoleculeSource(),
    settings: MoleculeSettings = MoleculeSettings(),
    workers: int = 1,
    threads_per_worker: int | None = None,
    progress: bool = True,
    command: str | None = None,
) -> dict:
    """Generate (or complete) a molecular dataset under ``out``; return the run summary."""
    out = Path(out)
    frames = source.frames()
    if source.path is not None:
        # Check the first frame up front: bad elements or basis fail before any pool starts.
        check_basis_elements(frames[0].symbols, settings.basis, source.path)
        if source.rattle <= 0:
            n = len(frames) if n is None else min(n, len(frames))
        for f in frames:
            centred(f, source.box, source.path)
    elif source.name not in NAMED:
        raise DeephError(f"unknown molecule distribution {source.name!r} (known: {', '.join(NAMED)})")
    if n is None:
        raise DeephError(f"--n is required for the {source.name or 'named'} distribution and for rattled molecules")
    if source.path is None and source.name in NAMED_SPIN:
        from deeph_jax.dft.spin import named_sampling

        sampling = named_sampling(source.name, source.rattle, source.box)
    elif source.path is None:
        sampling = {
            "distribution": "water",
            "O-H bond length uniform (A)": list(WATER_BOND),
            "H-O-H angle uniform (deg)": list(WATER_ANGLE),
            "rotation": "uniformly random (scipy Rotation.random)",
            "placement": f"O at the centre of a {source.box} A cubic box",
        }
    else:
        sampling = {
            "distribution": "file",
            "file": str(source.path),
            "frames": len(frames),
            "rattle_sigma_A": source.rattle,
            "placement": f"bounding-box centre at the centre of a {source.box} A cubic box",
        }
    sampling["rng"] = "numpy default_rng([seed, index]) per structure"
    meta = {
        "functional": settings.xc,
        "basis": settings.basis,
        "pseudopotential": None,
        "method": "restricted Kohn-Sham" if settings.xc.upper() not in ("HF", "RHF") else "restricted Hartree-Fock",
        "density_fitting": settings.density_fit,
        "auxbasis": settings.auxbasis,
        "grid_level": settings.grid_level if settings.grid_level is not None else "pyscf default (3)",
        "conv_tol_hartree": settings.conv_tol,
        "max_cycle": settings.max_cycle,
        "retry": f"once, from scratch, with damping {settings.damping_retry}",
        "charge": settings.charge,
        "hamiltonian": "converged Kohn-Sham Fock matrix h_core + V_eff[D], eV; S: AO overlap",
        "pairs": "all atom pairs (i, j), R = 0, self blocks included",
        "fermi_energy": "HOMO-LUMO midpoint",
        "sampling": sampling,
    }
    if settings.spin != "restricted":
        from deeph_jax.dft.spin import spin_meta

        meta.update(spin_meta(settings))
        meta["spin"] = settings.spin
    if settings.spin != "restricted" or settings.conv_tol_grad is not None:
        from deeph_jax.dft.spin import conv_tol_grad

        meta["conv_tol_grad"] = conv_tol_grad(settings)
        if settings.spin == "collinear" and settings.unpaired is not None:
            meta["n_alpha_minus_n_beta"] = settings.unpaired
    job = functools.partial(_molecule_job, out=str(out), seed=seed, source=source, settings=settings)
    return run_dataset(out, "molecules", meta, job, n, seed, workers, threads_per_worker, progress, command)


def settings_dict(settings: MoleculeSettings) -> dict:
    return asdict(settings)
