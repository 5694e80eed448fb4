"""Magnetic zigzag graphene nanoribbons (ZGNR) with collinear spin: KUKS, H-up(R) and H-down(R), in DeepH format.

Geometry: an N-ZGNR has N zigzag carbon chains (2N C) and one H on each edge carbon (2 H) per
cell; periodic along x (a = 2.467 A, the graphene value of :mod:`deeph_jax.dft.crystals`),
C-C 1.4243 A (a / sqrt 3), C-H 1.09 A, the ribbon in the plane z = c/2, with ``gap`` A of
vacuum between the H atoms of neighbouring images along y (cell length = ribbon extent +
gap) and a cell height ``height`` along z. Atom order: chain by chain from the bottom edge,
(A_k, B_k) per chain, then the bottom H and the top H. The two edge carbons A_0 (bottom,
sublattice A) and B_{N-1} (top, sublattice B) carry the edge moments: antiparallel (``afm``,
the ground state) or parallel (``fm``).

DFT: KUKS, PBE, gth-szv / gth-pbe, PySCF multigrid (it has a UKS path), Fermi-Dirac smearing
(the FM state is metallic) with one common Fermi level for both spins (the total moment is
free). The SCF starts from PySCF's atomic guess with +-``seed_moment`` electrons moved
between the spin channels in the p_z orbital of each edge carbon, signed by the requested
state; the converged state is classified from the Mulliken moments of the two edge carbons
and recorded (``magnetic_state``) next to the request.

H(R) as in :mod:`deeph_jax.dft.crystals`: F_sigma(k) = h_core(k) + V_eff,sigma[D_scf](k) on a
dense mesh (Born-von Karman length >= ``bvk_min``), inverse Bloch transform with Wigner-Seitz
assignment, blocks within ``cutoff``; stored as spinful blocks [[F_up, 0], [0, F_down]]
(complex128, DeepH-dock's collinear convention), S spinless.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from deeph_jax.dft.crystals import (
    CrystalSettings,
    build_cell,
    exact_integrator,
    grid_electron_count,
    make_kmf,
    run_kscf,
)
from deeph_jax.dft.molecules import rng_for
from deeph_jax.dft.pyscf_common import ao_permutation, orbital_basis, structure_id
from deeph_jax.dft.realspace import mesh_fractions, shortest_bvk_length, wigner_seitz_blocks
from deeph_jax.dft.runner import run_dataset
from deeph_jax.errors import DeephError
from deeph_jax.io import BlockSparse, DeephStructure, Structure, validate_structure, write_deeph_dir
from deeph_jax.io.atomic import atomic_directory
from deeph_jax.units import HARTREE_TO_EV

A_GRAPHENE = 2.467  # Angstrom, as crystals.NAMED["graphene"]
D_CH = 1.09  # Angstrom
STATES = ("afm", "fm")
EDGE_MOMENT_MIN = 0.05  # muB: an edge carbon with less is counted as non-magnetic


def zgnr_cell(width: int, gap: float = 10.0, height: float = 10.0, a: float = A_GRAPHENE) -> Structure:
    """The ideal N-ZGNR cell (N = ``width`` zigzag chains: 2N C + 2 H), Angstrom."""
    if width < 1:
        raise DeephError(f"ZGNR width {width}: need at least one zigzag chain")
    d = a / np.sqrt(3.0)
    pos, sym = [], []
    for k in range(width):
        pos.append([(k % 2) * a / 2, 1.5 * k * d, 0.0])
        pos.append([((k + 1) % 2) * a / 2, 1.5 * k * d + 0.5 * d, 0.0])
        sym += ["C", "C"]
    pos.append([0.0, -D_CH, 0.0])
    pos.append([pos[2 * width - 1][0], pos[2 * width - 1][1] + D_CH, 0.0])
    sym += ["H", "H"]
    pos = np.asarray(pos)
    extent = pos[:, 1].max() - pos[:, 1].min()
    pos[:, 1] += gap / 2 - pos[:, 1].min()
    pos[:, 2] = height / 2
    return Structure(tuple(sym), pos, np.diag([a, extent + gap, height]), periodic=True)


def edge_atoms(width: int) -> tuple[int, int]:
    """(bottom, top) edge carbons: A_0 and B_{N-1}."""
    return 0, 2 * width - 1


@dataclass(frozen=True)
class RibbonSource:
    width: int = 2
    magnetic: str = "afm"  # "afm", "fm" or "alternate" (even index AFM, odd FM)
    rattle: float = 0.05  # Angstrom, isotropic Gaussian per Cartesian coordinate
    gap: float = 10.0  # Angstrom of vacuum between ribbon images along y
    height: float = 10.0  # Angstrom, cell height along z
    pristine: int = 0  # the first `pristine` indices are not rattled

    def base(self) -> Structure:
        return zgnr_cell(self.width, self.gap, self.height)

    def state(self, index: int) -> str:
        if self.magnetic == "alternate":
            return STATES[index % 2]
        if self.magnetic not in STATES:
            raise DeephError(f"unknown magnetic state {self.magnetic!r} (known: afm, fm, alternate)")
        return self.magnetic

    def geometry(self, seed: int, index: int) -> Structure:
        s = self.base()
        rng = rng_for(seed, index)
        sigma = 0.0 if index < self.pristine else self.rattle
        disp = rng.normal(0.0, 1.0, s.positions.shape) * sigma
        return validate_structure(Structure(s.symbols, s.positions + disp, s.cell, periodic=True))


@dataclass(frozen=True)
class RibbonSettings(CrystalSettings):
    """CrystalSettings with smearing on by default and the initial edge moment."""

    smearing_eV: float | None = 0.1
    kmesh: tuple | None = (8, 1, 1)  # even, so the SCF mesh holds k = 1/2, where the edge bands are flat
    seed_moment: float = 0.5  # electrons moved between spin channels in each edge carbon's p_z


def make_kuks(cell, kpts, settings: RibbonSettings):
    return make_kmf(cell, kpts, settings, spin_polarized=True)


def initial_guess(mf, cell, edges: dict[int, float], amount: float) -> np.ndarray:
    """PySCF's atomic guess (2, nk, nao, nao) with ``amount * sign`` electrons moved from beta to alpha
    in the p_z AO of each atom of ``edges`` ({atom: +1 or -1})."""
    dm0 = np.array(mf.get_init_guess(cell, "minao"), dtype=np.complex128)
    for mu, (atom, _, shell, comp) in enumerate(cell.ao_labels(fmt=False)):
        if atom in edges and shell.endswith("p") and comp.strip() == "z":
            dm0[0, :, mu, mu] += 0.5 * amount * edges[atom]
            dm0[1, :, mu, mu] -= 0.5 * amount * edges[atom]
    return dm0


def fermi_level(mo_energy, n_electrons: int, sigma: float | None) -> float:
    """Common chemical potential (Hartree) of both spins: Fermi-Dirac occupations summing to
    ``n_electrons`` over the k-mesh (as PySCF's smearing with fix_spin False), or mid-gap without smearing."""
    e = np.concatenate([np.ravel(x) for s in mo_energy for x in s])
    nk = len(mo_energy[0])
    if not sigma:
        e = np.sort(e)
        n = n_electrons * nk
        return float(0.5 * (e[n - 1] + e[n]))
    from scipy.optimize import brentq

    def count(mu):
        x = np.clip((e - mu) / sigma, -200, 200)
        return (1.0 / (np.exp(x) + 1.0)).sum() / nk - n_electrons

    return float(brentq(count, e.min() - 1.0, e.max() + 1.0, xtol=1e-14))


def magnetic_moments(mf, cell) -> np.ndarray:
    """Mulliken spin moments per atom (muB): (1/N_k) sum_k Re tr over the atom's AOs of (D_a - D_b)(k) S(k)."""
    dm = np.asarray(mf.make_rdm1())
    s = np.asarray(cell.pbc_intor("int1e_ovlp", hermi=1, kpts=mf.kpts))
    pop = np.einsum("kij,kji->i", dm[0] - dm[1], s).real / len(mf.kpts)
    atoms = np.asarray([lab[0] for lab in cell.ao_labels(fmt=False)], dtype=np.int64)
    return np.bincount(atoms, weights=pop, minlength=cell.natm)


def classify(m_bottom: float, m_top: float) -> str:
    if abs(m_bottom) < EDGE_MOMENT_MIN and abs(m_top) < EDGE_MOMENT_MIN:
        return "nonmagnetic"
    if abs(m_bottom) < EDGE_MOMENT_MIN or abs(m_top) < EDGE_MOMENT_MIN:
        return "one-edge"
    return "fm" if m_bottom * m_top > 0 else "afm"


def compute_ribbon(structure: Structure, width: int, state: str, settings: RibbonSettings = RibbonSettings(),
                   path=None):
    """KUKS of one ribbon cell; return ``(DeephStructure, mf, extras)``: spinful H(R) (eV), S(R)."""
    structure, settings = exact_integrator(validate_structure(structure, path), settings, path)
    scf_mesh, dense_mesh, vac = settings.meshes(structure)
    bvk = shortest_bvk_length(structure.cell, dense_mesh, tuple(not v for v in vac))
    if 2 * settings.cutoff > bvk + 1e-9:
        raise DeephError(f"block cutoff {settings.cutoff} A needs a Born-von Karman supercell >= {2 * settings.cutoff} A "
                         f"but the dense mesh {dense_mesh} gives {bvk:.2f} A (raise --bvk-min)", path)
    cell = build_cell(structure, settings, path)
    basis = orbital_basis(cell, structure.symbols, path)
    bottom, top = edge_atoms(width)
    signs = {bottom: 1.0, top: 1.0 if state == "fm" else -1.0}
    t0 = time.time()
    mf = make_kuks(cell, cell.make_kpts(scf_mesh), settings)
    dm0 = initial_guess(mf, cell, signs, settings.seed_moment)
    mf.kernel(dm0)
    if not mf.converged:  # the damped retry of crystals.run_kscf, from the same magnetic guess
        mf.damp = settings.damping_retry
        mf.diis_start_cycle = 8
        mf.max_cycle = 2 * mf.max_cycle
        mf.kernel(dm0)
        if not mf.converged:
            run_kscf(mf, settings.damping_retry)  # raises SCFNotConverged
    grid_electrons = grid_electron_count(mf, path)
    t_scf = time.time() - t0
    kfrac = mesh_fractions(dense_mesh)
    kcart = cell.get_abs_kpts(kfrac)
    dm = mf.make_rdm1()
    fock = np.asarray(mf.get_hcore(cell, kcart))[None] + np.asarray(mf.get_veff(cell, dm, kpts=mf.kpts,
                                                                                   kpts_band=kcart))
    ovlp = np.asarray(cell.pbc_intor("int1e_ovlp", hermi=1, kpts=kcart))
    t_dense = time.time() - t0 - t_scf
    perm = ao_permutation(cell)
    offsets = basis.atom_offsets(structure.symbols)
    spin_blocks, imag = [], 0.0
    for f in fock:
        f = f[:, perm][:, :, perm] * HARTREE_TO_EV
        f = 0.5 * (f + f.conj().transpose(0, 2, 1))
        hb, h_imag = wigner_seitz_blocks(f, kfrac, dense_mesh, structure.positions, structure.cell, offsets,
                                         settings.cutoff)
        spin_blocks.append(BlockSparse.from_blocks(hb).symmetrized())
        imag = max(imag, h_imag)
    ovlp = ovlp[:, perm][:, :, perm]
    ovlp = 0.5 * (ovlp + ovlp.conj().transpose(0, 2, 1))
    sb, _ = wigner_seitz_blocks(ovlp, kfrac, dense_mesh, structure.positions, structure.cell, offsets, settings.cutoff)
    up, dn = spin_blocks
    blocks = {}
    for key, b_up in up.blocks():
        b_dn = dn.get(key[:3], key[3], key[4])
        z = np.zeros_like(b_up)
        blocks[key] = np.block([[b_up, z], [z, b_dn]]).astype(np.complex128)
    moments = magnetic_moments(mf, cell)
    nelec = int(round(cell.nelectron))
    sigma = settings.smearing_eV / HARTREE_TO_EV if settings.smearing_eV else None
    fermi = fermi_level(mf.mo_energy, nelec, sigma) * HARTREE_TO_EV
    info = {
        "orthogonal_basis": False,
        "spinful": True,
        "spin_polarized": True,
        "collinear_spin": True,
        "fermi_energy_eV": fermi,
        "occupation": nelec,
        "basis": settings.basis,
        "pseudopotential": settings.pseudo,
        "xc": settings.xc,
        "smearing_eV": settings.smearing_eV,
        "scf_kmesh": list(scf_mesh),
        "dense_kmesh": list(dense_mesh),
        "cutoff_A": settings.cutoff,
        "total_energy_eV": float(mf.e_tot) * HARTREE_TO_EV,
        "xc_integrator": "multigrid" if settings.multigrid else "fftdf",
        "grid_electrons": grid_electrons,
        "max_imag_HR_eV": imag,
        "ribbon_width_chains": width,
        "edge_atoms": [bottom, top],
        "magnetic_state_requested": state,
        "magnetic_state": classify(moments[bottom], moments[top]),
        "edge_moments_muB": [round(float(moments[bottom]), 8), round(float(moments[top]), 8)],
        "magnetic_moments_muB": [round(float(m), 8) for m in moments],
        "total_magnetic_moment_muB": round(float(moments.sum()), 8),
        "magnetic_moment_method": "Mulliken spin population on the SCF k-mesh (n_up - n_down per atom, spin only)",
    }
    data = DeephStructure(structure=structure, basis=basis, info=info,
                          overlap=BlockSparse.from_blocks(sb).symmetrized(), hamiltonian=BlockSparse.from_blocks(blocks))
    extras = {"t_scf": t_scf, "t_dense": t_dense, "scf_mesh": scf_mesh, "dense_mesh": dense_mesh, "cell": cell,
              "kfrac": kfrac}
    return data, mf, extras


def bands_check(data: DeephStructure, mf, kfrac, n_empty: int = 4) -> float:
    """max |E_stored(k) - E_pyscf_get_bands(k)| (eV) over both spins at ``kfrac``, over the lowest
    nelectron / 2 + ``n_empty`` bands of each spin."""
    import scipy.linalg

    cell = mf.cell
    kfrac = np.atleast_2d(np.asarray(kfrac, dtype=np.float64))
    patched = mf.__dict__.pop("get_hcore", None)
    try:
        e_ref, _ = mf.get_bands(cell.get_abs_kpts(kfrac))
    finally:
        if patched is not None:
            mf.get_hcore = patched
    n = data.atom_offsets[-1]
    nb = min(n, int(round(cell.nelectron)) // 2 + n_empty)
    worst = 0.0
    for ik, k in enumerate(kfrac):
        h, s = data.hamiltonian_k(k), data.overlap_k(k)
        for spin in (0, 1):
            sl = slice(spin * n, (spin + 1) * n)
            e = scipy.linalg.eigh(h[sl, sl], s[sl, sl], eigvals_only=True)
            ref = np.asarray(e_ref[spin][ik]) * HARTREE_TO_EV
            worst = max(worst, float(np.abs(e[:nb] - ref[:nb]).max()))
    return worst


def _ribbon_job(index: int, out: str, seed: int, source: RibbonSource, settings: RibbonSettings) -> float:
    t0 = time.time()
    structure = source.geometry(seed, index)
    if settings.kmesh is None:  # one SCF mesh per dataset, the ideal cell's
        settings = replace(settings, kmesh=settings.meshes(source.base())[0])
    state = source.state(index)
    data, mf, extras = compute_ribbon(structure, source.width, state, settings)
    data.info["rattle_sigma_A"] = 0.0 if index < source.pristine else source.rattle
    data.info["sid"] = structure_id(index)
    data.info["seed"] = seed
    data.info["seconds_scf"] = round(extras["t_scf"], 2)
    data.info["seconds_dense_fock"] = round(extras["t_dense"], 2)
    final = Path(out) / structure_id(index)
    with atomic_directory(final) as tmp:
        write_deeph_dir(tmp, data, compression="gzip")
    return time.time() - t0


def generate_ribbons(out: str | Path, n: int, seed: int = 0, source: RibbonSource = RibbonSource(),
                     settings: RibbonSettings = RibbonSettings(), workers: int = 1,
                     threads_per_worker: int | None = None, progress: bool = True, command: str | None = None) -> dict:
    """Generate (or complete) a dataset of ``n`` rattled magnetic ZGNR cells under ``out``."""
    ideal = source.base()
    source.state(0)
    scf_mesh, dense_mesh, vac = settings.meshes(ideal)
    bvk = shortest_bvk_length(ideal.cell, dense_mesh, tuple(not v for v in vac))
    if 2 * settings.cutoff > bvk + 1e-9:
        raise DeephError(f"block cutoff {settings.cutoff} A needs a Born-von Karman supercell >= {2 * settings.cutoff} A "
                         f"but the dense mesh {dense_mesh} gives {bvk:.2f} A (raise --bvk-min)")
    meta = {
        "functional": settings.xc,
        "basis": settings.basis,
        "pseudopotential": settings.pseudo,
        "method": "unrestricted Kohn-Sham (collinear spin), pyscf.pbc KUKS" +
                  (" with multigrid numint" if settings.multigrid else " (FFTDF)"),
        "ke_cutoff": "pyscf default from cell.precision",
        "conv_tol_hartree_per_cell": settings.conv_tol,
        "max_cycle": settings.max_cycle,
        "retry": f"once, from the same guess, with damping {settings.damping_retry}",
        "smearing": None if not settings.smearing_eV else {"method": "fermi-dirac", "width_eV": settings.smearing_eV,
                                                           "spin": "one Fermi level for both spins (moment free)"},
        "initial_guess": f"minao atomic guess, {settings.seed_moment} electrons moved between spins in the p_z AO of "
                         f"each edge carbon (signs from the requested state)",
        "scf_kmesh": list(scf_mesh),
        "scf_kmesh_rule": "given" if settings.kmesh else f"ceil({settings.kspacing_length} A / |a_i|), 1 along vacuum",
        "dense_kmesh": list(dense_mesh),
        "dense_kmesh_rule": "given" if settings.dense_kmesh else f"ceil({settings.bvk_min} A / |a_i|), 1 along vacuum",
        "bvk_shortest_vector_A": bvk,
        "vacuum_directions": list(vac),
        "cell_A": ideal.cell.tolist(),
        "cutoff_A": settings.cutoff,
        "hamiltonian": "non-self-consistent Fock matrices F_up, F_down (h_core + V_eff,sigma[D_scf]) on the dense "
                       "mesh, inverse Bloch transform with Wigner-Seitz assignment; eV; spinful blocks "
                       "[[F_up, 0], [0, F_down]] complex128 (DeepH-dock's collinear convention)",
        "overlap": "cell.pbc_intor('int1e_ovlp') on the dense mesh, same transform; spinless",
        "pairs": "every (i, j, R) with |pos_j + R.cell - pos_i| <= cutoff_A, (i, i, 0) included, both mirrors",
        "fermi_energy": "common Fermi-Dirac chemical potential of both spins on the SCF mesh",
        "magnetic_moments": "Mulliken spin populations per atom in info.json magnetic_moments_muB; the converged "
                            "state (afm, fm, nonmagnetic, one-edge) in magnetic_state",
        "sampling": {
            "crystal": "zgnr",
            "width_chains": source.width,
            "atoms": ideal.n_atoms,
            "a_A": A_GRAPHENE,
            "c_c_A": A_GRAPHENE / np.sqrt(3.0),
            "c_h_A": D_CH,
            "vacuum_gap_y_A": source.gap,
            "cell_height_z_A": source.height,
            "magnetic": source.magnetic,
            "magnetic_rule": "afm/fm for every structure, or alternate: even index afm, odd fm",
            "rattle_sigma_A": source.rattle,
            "rattle": "isotropic Gaussian per Cartesian coordinate, cell fixed",
            "pristine": source.pristine,
            "rng": "numpy default_rng([seed, index]) per structure",
        },
    }
    job = functools.partial(_ribbon_job, out=str(out), seed=seed, source=source, settings=settings)
    return run_dataset(Path(out), "ribbon", meta, job, n, seed, workers, threads_per_worker, progress, command)
