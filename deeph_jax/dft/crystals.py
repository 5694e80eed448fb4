"""Periodic DFT data with pyscf.pbc: real-space H(R) and S(R) of rattled supercells, in DeepH format.

Recipe (the one that reproduces PySCF's own bands between k-points; see datasets/README.md):

1. KRKS SCF (default PBE, GTH pseudopotentials gth-pbe, gth-szv basis, PySCF's multigrid
   numerical integration) on a modest Gamma-centred k-mesh (``kmesh``; by default
   ceil(10 A / |a_i|) points along each periodic direction, 1 along a vacuum direction).
2. The Fock matrix non-self-consistently from the converged density on a dense
   Gamma-centred mesh whose Born-von Karman supercell is at least ``bvk_min`` (20 A) long:
   F(k) = h_core(k) + V_eff[D_scf](k), exactly what ``mf.get_bands`` diagonalizes.
3. The inverse Bloch transform of F(k) and S(k) (lattice-summed overlap integrals,
   ``cell.pbc_intor('int1e_ovlp')`` on the same dense mesh) with Wigner-Seitz assignment
   (:mod:`deeph_jax.dft.realspace`), keeping every block (i, j, R) with
   |pos_j + R.cell - pos_i| <= ``cutoff`` (8 A).

Named crystals: ``hbn`` (monolayer hexagonal BN, a = 2.504 A, insulating), ``graphene``
(a = 2.467 A, semimetal: Fermi-Dirac smearing 0.1 eV by default) and ``diamond``
(a = 3.567 A, fcc primitive cell). 2D sheets sit at z = c/2 in a cell of height ``vacuum``
(one value per dataset, recorded: the energy zero depends on it). A user's file gives any
cell ase reads; a lattice direction with a gap of empty space of at least 6 A is treated as
vacuum (one k-point along it).
"""

from __future__ import annotations

import functools
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from deeph_jax.dft.molecules import rng_for
from deeph_jax.dft.pyscf_common import ao_permutation, check_basis_elements, orbital_basis, structure_id
from deeph_jax.dft.realspace import mesh_fractions, shortest_bvk_length, wigner_seitz_blocks
from deeph_jax.dft.runner import SCFNotConverged, run_dataset
from deeph_jax.errors import DeephError
from deeph_jax.io import BlockSparse, DeephStructure, Structure, validate_structure, write_deeph_dir
from deeph_jax.io.atomic import atomic_directory
from deeph_jax.io.deeph import read_json_object
from deeph_jax.io.structures import VACUUM_GAP, vacuum_directions
from deeph_jax.units import ANGSTROM_TO_BOHR, HARTREE_TO_EV

NAMED = {
    "hbn": {"a": 2.504, "species": ("B", "N"), "kind": "sheet"},
    "graphene": {"a": 2.467, "species": ("C", "C"), "kind": "sheet"},
    "diamond": {"a": 3.567, "species": ("C", "C"), "kind": "fcc"},
}


def named_cell(name: str, vacuum: float = 12.0) -> Structure:
    """The primitive cell of a named crystal (Angstrom)."""
    if name not in NAMED:
        raise DeephError(f"unknown crystal {name!r} (known: {', '.join(NAMED)})")
    spec = NAMED[name]
    a = spec["a"]
    if spec["kind"] == "sheet":
        cell = np.array([[a, 0.0, 0.0], [-a / 2, a * np.sqrt(3) / 2, 0.0], [0.0, 0.0, vacuum]])
        frac = np.array([[1 / 3, 2 / 3, 0.5], [2 / 3, 1 / 3, 0.5]])
    else:
        cell = a / 2 * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
        frac = np.array([[0.0, 0.0, 0.0], [0.25, 0.25, 0.25]])
    return Structure(spec["species"], frac @ cell, cell, periodic=True)


def supercell(structure: Structure, reps) -> Structure:
    """Repeat a cell ``reps`` = (n1, n2, n3) times; atoms of image (0,0,0) first, then image by image."""
    reps = tuple(int(r) for r in reps)
    images = [np.array(t) for t in np.ndindex(*reps)]
    pos = np.concatenate([structure.positions + t @ structure.cell for t in images])
    symbols = tuple(structure.symbols) * len(images)
    return Structure(symbols, pos, structure.cell * np.asarray(reps)[:, None], periodic=True)


@dataclass(frozen=True)
class CrystalSettings:
    """Periodic DFT settings (conv_tol in Hartree per cell, as PySCF; lengths in Angstrom)."""

    basis: str = "gth-szv"
    pseudo: str = "gth-pbe"
    xc: str = "PBE"
    kmesh: tuple | None = None
    kspacing_length: float = 10.0
    bvk_min: float = 20.0
    dense_kmesh: tuple | None = None
    cutoff: float = 10.0
    smearing_eV: float | None = None
    conv_tol: float = 1e-9
    multigrid: bool = True
    max_cycle: int = 100
    damping_retry: float = 0.5

    @classmethod
    def from_metadata(cls, meta: dict, info: dict | None = None) -> "CrystalSettings":
        """The settings a dataset was generated with, from its ``metadata.json`` (``meta``); meshes recorded
        per structure in its ``info.json`` (``info``) win. Recomputing a stored structure's reference with
        anything else (another basis, another mesh) compares two different calculations."""
        info = info or {}
        smearing = (meta.get("smearing") or {}).get("width_eV")
        return cls(basis=meta["basis"], pseudo=meta["pseudopotential"], xc=meta["functional"],
                   kmesh=tuple(info.get("scf_kmesh", meta["scf_kmesh"])),
                   dense_kmesh=tuple(info.get("dense_kmesh", meta["dense_kmesh"])),
                   cutoff=meta["cutoff_A"], smearing_eV=smearing, conv_tol=meta["conv_tol_hartree_per_cell"],
                   multigrid="multigrid" in meta.get("method", "multigrid"))

    @classmethod
    def of_structure(cls, folder) -> "CrystalSettings":
        """:meth:`from_metadata` for the structure folder ``DATASET/NNNNN`` (reads ``DATASET/metadata.json`` and,
        where present, ``NNNNN/info.json``)."""
        folder = Path(folder)
        meta_path = folder.parent / "metadata.json"
        if not meta_path.is_file():
            raise DeephError("no metadata.json beside the structure folder: the dataset's DFT settings are unknown",
                             meta_path)
        info_path = folder / "info.json"
        info = read_json_object(info_path) if info_path.is_file() else None
        try:
            return cls.from_metadata(read_json_object(meta_path), info)
        except KeyError as err:
            raise DeephError(f"no {err} recorded: not a dataset of deeph-jax generate crystal", meta_path) from None

    def meshes(self, structure: Structure) -> tuple[tuple, tuple, tuple]:
        """(SCF mesh, dense mesh, vacuum directions) for ``structure``."""
        vac = vacuum_directions(structure)
        lengths = np.linalg.norm(structure.cell, axis=1)
        scf = self.kmesh or tuple(1 if v else max(1, int(np.ceil(self.kspacing_length / L - 1e-6)))
                                  for v, L in zip(vac, lengths))
        dense = self.dense_kmesh or _dense_mesh(structure.cell, vac, self.bvk_min)
        return tuple(int(x) for x in scf), tuple(int(x) for x in dense), vac


def _dense_mesh(cell: np.ndarray, vac, bvk_min: float) -> tuple:
    """ceil(bvk_min / |a_i|) along each periodic direction, then grown one direction at a time until the
    shortest BvK vector reaches ``bvk_min``: a sheared (strained) cell can have a diagonal
    a_1 - a_2 of the supercell shorter than both edges."""
    lengths = np.linalg.norm(cell, axis=1)
    mesh = [1 if v else max(1, int(np.ceil(bvk_min / L - 1e-6))) for v, L in zip(vac, lengths)]
    periodic = tuple(not v for v in vac)
    while shortest_bvk_length(cell, mesh, periodic) < bvk_min - 1e-6:
        trials = []
        for i in (i for i, p in enumerate(periodic) if p):
            m = list(mesh)
            m[i] += 1
            trials.append((-shortest_bvk_length(cell, m, periodic), int(np.prod(m)), m))
        mesh = min(trials)[2]
    return tuple(mesh)


def build_cell(structure: Structure, settings: CrystalSettings, path=None):
    from pyscf.pbc import gto as pgto

    check_basis_elements(structure.symbols, settings.basis, path, pseudo=settings.pseudo)
    cell = pgto.Cell()
    cell.atom = [(s, tuple(p)) for s, p in zip(structure.symbols, structure.positions)]
    cell.a = structure.cell
    cell.unit = "Angstrom"
    cell.basis = settings.basis
    cell.pseudo = settings.pseudo
    cell.cart = False
    cell.verbose = 0
    try:
        cell.build()
    except Exception as exc:
        raise DeephError(f"cannot build the periodic cell ({type(exc).__name__}: {exc})".replace("\n", " "), path) from None
    return cell


def make_kmf(cell, kpts, settings: CrystalSettings, spin_polarized: bool = False):
    """The k-point Kohn-Sham object with the settings' functional, grids, smearing and tolerances: restricted
    (KRKS), or unrestricted (KUKS) with ``spin_polarized``; any settings object with those fields."""
    from pyscf.pbc import dft as pdft
    from pyscf.pbc.scf import addons

    mf = (pdft.KUKS if spin_polarized else pdft.KRKS)(cell, kpts, xc=settings.xc)
    if settings.multigrid:
        mf = mf.multigrid_numint()
    if settings.smearing_eV:
        mf = addons.smearing_(mf, sigma=settings.smearing_eV / HARTREE_TO_EV, method="fermi")
    mf.conv_tol = settings.conv_tol
    mf.max_cycle = settings.max_cycle
    mf.verbose = 0
    if settings.multigrid:
        import types

        mf.get_hcore = types.MethodType(fast_hcore, mf)
    return mf


_G_CHUNK = 1 << 18


def fast_hcore(mf, cell=None, kpts=None):
    """h_core(k) = T + V_loc + V_nl, as PySCF's multigrid ``get_hcore`` but with the non-local GTH
    projectors from the analytic real-space integrals (``pp_int.get_pp_nl``) instead of PySCF's
    multigrid G-space loop, which dominates the cost on many k-points (same matrix to ~1e-9 Hartree,
    see tests/dft/test_dft_crystals.py)."""
    from pyscf import lib
    from pyscf.pbc.dft.multigrid import MultiGridNumInt
    from pyscf.pbc.dft.multigrid.multigrid import _get_j_pass2
    from pyscf.pbc.gto.pseudo import pp_int

    cell = mf.cell if cell is None else cell
    kpts = mf.kpts if kpts is None else kpts
    kpts = np.asarray(kpts)
    single = kpts.ndim == 1
    kpts = kpts.reshape(-1, 3)
    ni = mf._numint
    if not (cell.pseudo and isinstance(ni, MultiGridNumInt)) or len(cell._ecpbas) > 0:
        return type(mf).get_hcore(mf, cell, kpts[0] if single else kpts)
    Gv = cell.get_Gv(ni.mesh)
    # in chunks of G: the structure factor of a 72-atom cell on its full FFT mesh alone is ~27 GB
    vloc_g = np.empty(len(Gv), dtype=np.complex128)
    for start in range(0, len(Gv), _G_CHUNK):
        g = Gv[start:start + _G_CHUNK]
        vloc_g[start:start + len(g)] = -np.einsum("ij,ij->j", cell.get_SI(g), pp_int.get_gth_vlocG_part1(cell, g))
    vpp = np.asarray(_get_j_pass2(ni, vloc_g, 1, kpts)[0], dtype=np.complex128)
    vpp += np.asarray(pp_int.get_pp_loc_part2(cell, kpts))
    vpp += np.asarray(pp_int.get_pp_nl(cell, kpts))
    vpp += lib.asarray(cell.pbc_intor("int1e_kin", 1, 1, kpts))
    for k, kpt in enumerate(kpts):
        if np.allclose(kpt, 0.0):
            vpp[k] = vpp[k].real
    return vpp[0] if single else vpp


def run_kscf(mf, damping: float = 0.5):
    mf.kernel()
    if not mf.converged:
        mf.damp = damping
        mf.diis_start_cycle = 8
        mf.max_cycle = 2 * mf.max_cycle
        mf.kernel()
        if not mf.converged:
            raise SCFNotConverged(f"periodic SCF not converged after {mf.max_cycle} cycles with damping {damping}")
    return mf


# Largest |electrons on the XC grid - exact electrons| / electrons accepted. PySCF's multigrid integrator (2.14) is
# exact to ~1e-10 on the hBN cells but drops or doubles charge on some cells: 0.59 of the 112 electrons of a 28-atom
# twisted bilayer (whose total energy came out 18 eV per atom too low), 6e-3 of 64 in 16-atom bilayers, 8e-3 of 8 in
# a primitive hBN cell whose vectors differ from a good one by 1e-16 A: a fault of its lattice sums that neither
# the mesh nor a translation moves.
GRID_ELECTRONS_RTOL = 1.0e-6


def multigrid_charge_error(cell, kpts, settings) -> float:
    """|n_grid - Tr(D S)| / N for PySCF's atomic guess density D: n_grid its integral on the multigrid XC grid,
    Tr(D S) (averaged over ``kpts``) its exact integral, N the cell's electrons. One XC evaluation."""
    mf = make_kmf(cell, kpts, replace(settings, multigrid=True))
    dm = np.asarray(mf.get_init_guess())
    exact = np.einsum("kij,kji->", dm, np.asarray(cell.pbc_intor("int1e_ovlp", hermi=1, kpts=kpts))).real / len(kpts)
    n = mf._numint.nr_rks(cell, mf.grids, settings.xc, dm, hermi=1, kpts=kpts)[0]
    return float(abs(n - exact) / cell.nelectron)


# Other bases of the same lattice, as integer rows (new a_i, new a_j) = M (a_i, a_j) over two periodic directions,
# det M = 1: multigrid's fault depends on the basis (a 16-atom bilayer: 9e-5 with (a1, a2), 1e-10 with (a1, a2 - a1);
# the 28-atom twisted bilayer: 1e-11 with (-a2, a1 - a2)).
EQUIVALENT_BASES = (((1, 0), (0, 1)), ((1, 0), (-1, 1)), ((0, -1), (1, -1)), ((-1, 1), (-1, 0)), ((0, 1), (-1, 0)),
                    ((1, -1), (1, 0)), ((-1, 0), (0, -1)))


def exact_integrator(structure: Structure, settings, path=None):
    """``(structure, settings)`` for the SCF: the structure in the first basis of its lattice (see
    :data:`EQUIVALENT_BASES`: the same atoms and lattice, other cell vectors) on which PySCF's multigrid XC grid
    integrates the guess density exactly (:func:`multigrid_charge_error`), or, where none does, the structure as
    given with ``multigrid=False`` (PySCF's FFTDF: exact, ~8x slower). Either change is said on stderr. Structures
    with fewer than two periodic directions only try their own basis."""
    if not settings.multigrid:
        return structure, settings
    where = f"{path}: " if path is not None else ""
    periodic = [a for a, v in enumerate(vacuum_directions(structure)) if not v]
    bases = EQUIVALENT_BASES if len(periodic) >= 2 else EQUIVALENT_BASES[:1]
    errors = []
    for m in bases:
        candidate = structure
        if m != EQUIVALENT_BASES[0]:
            cell = structure.cell.copy()
            i, j = periodic[:2]
            cell[[i, j]] = np.asarray(m, dtype=np.float64) @ structure.cell[[i, j]]
            candidate = Structure(structure.symbols, structure.positions, cell, structure.periodic)
        cell = build_cell(candidate, settings, path)
        try:
            error = multigrid_charge_error(cell, cell.make_kpts(settings.meshes(candidate)[0]), settings)
        except ValueError:  # multigrid itself fails on some bases ("negative dimensions are not allowed")
            error = float("inf")
        errors.append(error)
        if error <= GRID_ELECTRONS_RTOL:
            if candidate is not structure:
                print(f"{where}PySCF's multigrid misses charge in the given cell basis (relative {errors[0]:.1e}); "
                      f"the SCF runs in the equivalent basis {m} of the two periodic vectors, which the folder stores",
                      file=sys.stderr, flush=True)
            return candidate, settings
    print(f"{where}PySCF's multigrid misses charge in every basis tried (relative {min(errors):.1e} at best); this "
          f"cell runs with FFTDF instead", file=sys.stderr, flush=True)
    return structure, replace(settings, multigrid=False)


def grid_electron_count(mf, path=None) -> float:
    """Electrons of the converged density integrated on the SCF's own XC grid, checked against the cell's electron
    count (the exact integral of a converged density): raises DeephError beyond :data:`GRID_ELECTRONS_RTOL`, returns
    the count for info.json."""
    dm = mf.make_rdm1()
    spin = np.ndim(dm) == 4  # KUKS: (2, nk, nao, nao)
    integrate = mf._numint.nr_uks if spin else mf._numint.nr_rks
    n = float(np.sum(integrate(mf.cell, mf.grids, mf.xc, dm, hermi=1, kpts=mf.kpts)[0]))
    want = float(mf.cell.nelectron)
    if abs(n - want) > GRID_ELECTRONS_RTOL * want:
        raise DeephError(f"the SCF density integrates to {n:.4f} electrons on PySCF's grid, not {want:g}: the XC "
                         f"integrator is wrong for this cell", path)
    return n


def dense_fock_overlap(mf, cell, dense_mesh):
    """F(k) = h_core + V_eff[D_scf] and S(k) on the dense Gamma-centred mesh (Hartree, PySCF AO order)."""
    kfrac = mesh_fractions(dense_mesh)
    kcart = cell.get_abs_kpts(kfrac)
    dm = mf.make_rdm1()
    fock = np.asarray(mf.get_hcore(cell, kcart)) + np.asarray(mf.get_veff(cell, dm, kpts=mf.kpts, kpts_band=kcart))
    ovlp = np.asarray(cell.pbc_intor("int1e_ovlp", hermi=1, kpts=kcart))
    return kfrac, fock, ovlp


def compute_crystal(structure: Structure, settings: CrystalSettings = CrystalSettings(), path=None):
    """Run the periodic DFT; return ``(DeephStructure, mf, extras)``: H(R) in eV, S(R), DeepH order."""
    structure, settings = exact_integrator(validate_structure(structure, path), settings, path)
    scf_mesh, dense_mesh, vac = settings.meshes(structure)
    bvk = shortest_bvk_length(structure.cell, dense_mesh, tuple(not v for v in vac))
    if 2 * settings.cutoff > bvk + 1e-9:
        raise DeephError(f"block cutoff {settings.cutoff} A needs a Born-von Karman supercell >= {2 * settings.cutoff} A "
                         f"but the dense mesh {dense_mesh} gives {bvk:.2f} A (raise --bvk-min)", path)
    cell = build_cell(structure, settings, path)
    basis = orbital_basis(cell, structure.symbols, path)
    t0 = time.time()
    mf = run_kscf(make_kmf(cell, cell.make_kpts(scf_mesh), settings), settings.damping_retry)
    grid_electrons = grid_electron_count(mf, path)
    t_scf = time.time() - t0
    kfrac, fock, ovlp = dense_fock_overlap(mf, cell, dense_mesh)
    t_dense = time.time() - t0 - t_scf
    perm = ao_permutation(cell)
    fock = fock[:, perm][:, :, perm] * HARTREE_TO_EV
    ovlp = ovlp[:, perm][:, :, perm]
    fock = 0.5 * (fock + fock.conj().transpose(0, 2, 1))
    ovlp = 0.5 * (ovlp + ovlp.conj().transpose(0, 2, 1))
    offsets = basis.atom_offsets(structure.symbols)
    hb, h_imag = wigner_seitz_blocks(fock, kfrac, dense_mesh, structure.positions, structure.cell, offsets,
                                     settings.cutoff)
    sb, s_imag = wigner_seitz_blocks(ovlp, kfrac, dense_mesh, structure.positions, structure.cell, offsets,
                                     settings.cutoff)
    h = BlockSparse.from_blocks(hb).symmetrized()
    s = BlockSparse.from_blocks(sb).symmetrized()
    nelec = int(round(cell.nelectron))
    fermi = _fermi_level(mf, nelec, settings)
    info = {
        "orthogonal_basis": False,
        "spinful": False,
        "fermi_energy_eV": fermi,
        "occupation": nelec,
        "basis": settings.basis,
        "pseudopotential": settings.pseudo,
        "xc": settings.xc,
        "scf_kmesh": list(scf_mesh),
        "dense_kmesh": list(dense_mesh),
        "cutoff_A": settings.cutoff,
        "total_energy_eV": float(mf.e_tot) * HARTREE_TO_EV,
        "xc_integrator": "multigrid" if settings.multigrid else "fftdf",
        "grid_electrons": grid_electrons,
        "max_imag_HR_eV": h_imag,
    }
    extras = {"t_scf": t_scf, "t_dense": t_dense, "max_imag_SR": s_imag, "scf_mesh": scf_mesh,
              "dense_mesh": dense_mesh, "vacuum_dirs": vac, "cell": cell}
    data = DeephStructure(structure=structure, basis=basis, info=info, overlap=s, hamiltonian=h)
    return data, mf, extras


def _fermi_level(mf, nelec: int, settings: CrystalSettings) -> float:
    """Smearing: the SCF chemical potential. Otherwise the mid-gap of the SCF mesh (VBM + CBM) / 2."""
    if settings.smearing_eV:
        return float(mf.get_fermi()) * HARTREE_TO_EV
    e = np.sort(np.concatenate([np.asarray(x) for x in mf.mo_energy]))
    nk = len(mf.mo_energy)
    nocc = nelec // 2
    vbm = max(float(np.sort(x)[nocc - 1]) for x in mf.mo_energy)
    cbm = min(float(np.sort(x)[nocc]) for x in mf.mo_energy if len(x) > nocc) if len(e) > nk * nocc else vbm
    return 0.5 * (vbm + cbm) * HARTREE_TO_EV


def bands_check(data: DeephStructure, mf, kfrac, n_empty: int = 4) -> np.ndarray:
    """max |E_stored(k) - E_pyscf_get_bands(k)| (eV) per k over occupied + ``n_empty`` bands."""
    import scipy.linalg

    cell = mf.cell
    kfrac = np.atleast_2d(np.asarray(kfrac, dtype=np.float64))
    # The reference is PySCF's own get_bands, with PySCF's own h_core (not fast_hcore).
    patched = mf.__dict__.pop("get_hcore", None)
    try:
        e_ref, _ = mf.get_bands(cell.get_abs_kpts(kfrac))
    finally:
        if patched is not None:
            mf.get_hcore = patched
    nocc = int(round(cell.nelectron)) // 2
    out = []
    for k, ref in zip(kfrac, e_ref):
        e = scipy.linalg.eigh(data.hamiltonian_k(k), data.overlap_k(k), eigvals_only=True)
        nb = min(nocc + n_empty, len(e))
        out.append(float(np.abs(e[:nb] - np.asarray(ref)[:nb] * HARTREE_TO_EV).max()))
    return np.asarray(out)


# -- datasets -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CrystalSource:
    name: str | None = "hbn"
    path: str | None = None
    supercell: tuple = (2, 2, 1)
    rattle: float = 0.1  # Angstrom; with rattle_max, the lower end of the sigma range
    vacuum: float = 12.0  # Angstrom, cell height of named 2D sheets
    rattle_max: float | None = None  # Angstrom: sigma uniform in [rattle, rattle_max] per structure
    strain: float = 0.0  # largest |component| of a random symmetric strain in the periodic plane(s)
    pristine: int = 0  # the first `pristine` indices are not rattled (their strain is still drawn)

    @property
    def varied(self) -> bool:
        """Whether sigma and strain are drawn per structure (otherwise one fixed sigma, as the first sets)."""
        return self.rattle_max is not None or self.strain > 0 or self.pristine > 0

    def base(self) -> Structure:
        if self.path is None:
            return named_cell(self.name or "hbn", self.vacuum)
        from deeph_jax.io import load_structure

        try:
            s = load_structure(self.path)
        except DeephError as exc:
            s = _load_with_pymatgen(self.path, exc)
        if not s.periodic:
            raise DeephError("the crystal generator needs a periodic cell (the file has no lattice)", self.path)
        return s

    @property
    def is_sheet(self) -> bool:
        """Whether the cell is a named 2D sheet whose height ``vacuum`` is a dataset setting (recorded)."""
        return self.path is None and NAMED[self.name or "hbn"]["kind"] == "sheet"

    def ideal(self) -> Structure:
        """The cell every structure of the set starts from, unrattled and unstrained (meshes come from it)."""
        return supercell(self.base(), self.supercell)

    def sampling_meta(self) -> dict:
        """Extra entries of metadata.json's ``sampling`` (none here; subclasses describe their own draws)."""
        return {}

    def _start(self, rng: np.random.Generator) -> tuple[Structure, dict]:
        """The structure before strain and rattle, and what was drawn for it (recorded in info.json).
        Subclasses draw their own parameters here, first, from ``rng``; a plain crystal draws nothing."""
        return self.ideal(), {}

    def geometry(self, seed: int, index: int) -> Structure:
        return validate_structure(self._build(seed, index)[0], self.path)

    def sample(self, seed: int, index: int) -> dict:
        """What was drawn for structure ``index``: sigma (A), the strain tensor, and any subclass draws
        (recorded in its info.json)."""
        return self._build(seed, index)[1]

    def _build(self, seed: int, index: int) -> tuple[Structure, dict]:
        """Structure ``index`` (not yet validated) and its record; everything from the RNG of (seed, index)."""
        rng = rng_for(seed, index)
        sc, record = self._start(rng)
        if not self.varied:  # the first datasets' stream: displacements only
            if self.rattle > 0:
                sc = Structure(sc.symbols, sc.positions + rng.normal(0.0, self.rattle, sc.positions.shape), sc.cell)
            return sc, {**record, "rattle_sigma_A": self.rattle}
        sigma, strain = self._draw(rng, index, sc)
        deform = np.eye(3) + strain
        displacement = rng.normal(0.0, 1.0, sc.positions.shape) * sigma
        sc = Structure(sc.symbols, sc.positions @ deform + displacement, sc.cell @ deform, periodic=True)
        return sc, {**record, "rattle_sigma_A": sigma, "strain": strain.round(12).tolist()}

    def _draw(self, rng: np.random.Generator, index: int, ideal: Structure) -> tuple[float, np.ndarray]:
        """sigma (A) and strain of a varied structure: the first draws of its RNG, in this order."""
        hi = self.rattle if self.rattle_max is None else self.rattle_max
        sigma = float(rng.uniform(self.rattle, hi))
        strain = random_strain(rng, self.strain, ideal)
        return (0.0 if index < self.pristine else sigma), strain


def random_strain(rng: np.random.Generator, amplitude: float, structure: Structure) -> np.ndarray:
    """A symmetric Cartesian strain tensor, components uniform in [-amplitude, amplitude], acting only in the
    periodic directions: for a sheet (one vacuum direction) it is projected onto the plane of the sheet.

    Always draws 6 numbers, so the RNG stream after it does not depend on ``amplitude``."""
    u = rng.uniform(-1.0, 1.0, 6) * amplitude
    eps = np.array([[u[0], u[3], u[4]], [u[3], u[1], u[5]], [u[4], u[5], u[2]]])
    vac = vacuum_directions(structure)
    proj = np.eye(3)
    for a in np.flatnonzero(vac):
        b, c = [x for x in range(3) if x != a]
        normal = np.cross(structure.cell[b], structure.cell[c])
        normal /= np.linalg.norm(normal)
        proj -= np.outer(normal, normal)
    return proj @ eps @ proj


def _load_with_pymatgen(path, ase_error: DeephError) -> Structure:
    """Formats ase cannot read but pymatgen can; the ase error is raised when pymatgen fails too."""
    from pathlib import Path as _Path

    if not _Path(path).is_file():
        raise ase_error
    try:
        from pymatgen.core import Structure as PmgStructure

        from deeph_jax.io.structures import from_pymatgen

        import warnings

        with warnings.catch_warnings():  # pymatgen's parser chatter; a failure raises the ase error
            warnings.simplefilter("ignore")
            pmg = PmgStructure.from_file(str(path))
    except Exception:
        raise ase_error from None
    return validate_structure(from_pymatgen(pmg), path)


def _crystal_job(index: int, out: str, seed: int, source: CrystalSource, settings: CrystalSettings) -> float:
    t0 = time.time()
    structure = source.geometry(seed, index)
    if source.varied and settings.kmesh is None:
        # One SCF k-point density for the whole set (the ideal supercell's): a 2 % compression must not
        # turn a 1x1 SCF mesh into 2x2. The dense mesh stays per structure, so the BvK cell covers 2 x cutoff.
        settings = replace(settings, kmesh=settings.meshes(source.ideal())[0])
    data, mf, extras = compute_crystal(structure, settings, source.path)
    data.info.update(source.sample(seed, index))
    data.info["sid"] = structure_id(index)
    data.info["seed"] = seed
    data.info["seconds_scf"] = round(extras["t_scf"], 2)
    data.info["seconds_dense_fock"] = round(extras["t_dense"], 2)
    final = Path(out) / structure_id(index)
    with atomic_directory(final) as tmp:
        write_deeph_dir(tmp, data, compression="gzip")
    return time.time() - t0


def generate_crystals(
    out: str | Path,
    n: int,
    seed: int = 0,
    source: CrystalSource = CrystalSource(),
    settings: CrystalSettings = CrystalSettings(),
    workers: int = 1,
    threads_per_worker: int | None = None,
    progress: bool = True,
    command: str | None = None,
) -> dict:
    """Generate (or complete) a crystal dataset of ``n`` rattled supercells under ``out``."""
    out = Path(out)
    base = source.base()
    check_basis_elements(base.symbols, settings.basis, source.path, pseudo=settings.pseudo)
    ideal = source.ideal()
    validate_structure(ideal, source.path)
    scf_mesh, dense_mesh, vac = settings.meshes(ideal)
    bvk = shortest_bvk_length(ideal.cell, dense_mesh, tuple(not v for v in vac))
    if 2 * settings.cutoff > bvk + 1e-9:
        raise DeephError(f"block cutoff {settings.cutoff} A needs a Born-von Karman supercell >= {2 * settings.cutoff} A "
                         f"but the dense mesh {dense_mesh} gives {bvk:.2f} A (raise --bvk-min)", source.path)
    meta = {
        "functional": settings.xc,
        "basis": settings.basis,
        "pseudopotential": settings.pseudo,
        "method": "restricted Kohn-Sham, pyscf.pbc KRKS" + (" with multigrid numint" if settings.multigrid else " (FFTDF)"),
        "ke_cutoff": "pyscf default from cell.precision",
        "conv_tol_hartree_per_cell": settings.conv_tol,
        "max_cycle": settings.max_cycle,
        "retry": f"once, from scratch, with damping {settings.damping_retry}",
        "smearing": None if not settings.smearing_eV else {"method": "fermi-dirac", "width_eV": settings.smearing_eV},
        "scf_kmesh": list(scf_mesh),
        "scf_kmesh_rule": "given" if settings.kmesh else f"ceil({settings.kspacing_length} A / |a_i|), 1 along vacuum",
        "dense_kmesh": list(dense_mesh),
        "dense_kmesh_rule": "given" if settings.dense_kmesh else f"ceil({settings.bvk_min} A / |a_i|), 1 along vacuum",
        "bvk_shortest_vector_A": bvk,
        "vacuum_directions": list(vac),
        "cell_height_c_A": float(np.linalg.norm(ideal.cell[2])),
        "vacuum_A": source.vacuum if source.is_sheet else None,
        "cutoff_A": settings.cutoff,
        "hamiltonian": "non-self-consistent Fock matrix h_core + V_eff[D_scf] on the dense Gamma-centred mesh, "
                       "inverse Bloch transform with Wigner-Seitz assignment; eV",
        "overlap": "cell.pbc_intor('int1e_ovlp') on the dense mesh, same transform",
        "pairs": "every (i, j, R) with |pos_j + R.cell - pos_i| <= cutoff_A, (i, i, 0) included, both mirrors",
        "fermi_energy": "SCF chemical potential (smearing) or mid-gap of the SCF-mesh eigenvalues",
        "sampling": {
            "crystal": source.name if source.path is None else str(source.path),
            "primitive_cell_A": base.cell.tolist(),
            "supercell": list(source.supercell),
            "atoms": ideal.n_atoms,
            "rattle_sigma_A": source.rattle,
            "rattle": "isotropic Gaussian per Cartesian coordinate, cell fixed",
            **({
                "rattle_sigma_A": [source.rattle, source.rattle_max if source.rattle_max is not None else source.rattle],
                "rattle": "per structure: sigma uniform in the range, then the strain (6 uniform numbers), then "
                          "Gaussian displacements; sigma 0 for the first `pristine` indices",
                "strain_max": source.strain,
                "strain": "symmetric Cartesian tensor, components uniform in [-strain_max, strain_max], projected onto "
                          "the periodic plane; cell and positions deformed, then rattled",
                "pristine": source.pristine,
                "scf_kmesh": "the ideal supercell's for every structure; dense mesh per structure (info.json)",
            } if source.varied else {}),
            "rng": "numpy default_rng([seed, index]) per structure",
            **source.sampling_meta(),
        },
    }
    job = functools.partial(_crystal_job, out=str(out), seed=seed, source=source, settings=settings)
    return run_dataset(out, "crystal", meta, job, n, seed, workers, threads_per_worker, progress, command)


__all__ = ["CrystalSettings", "CrystalSource", "compute_crystal", "generate_crystals", "named_cell", "supercell",
           "bands_check", "ANGSTROM_TO_BOHR"]
