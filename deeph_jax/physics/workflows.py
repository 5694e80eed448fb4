"""What the ``bands``, ``dos`` and ``polarization`` commands do, as functions of a structure folder.

Each loads the folder (``hamiltonian_pred.h5`` when present unless told otherwise), computes, writes
its outputs beside the data (or where asked) and returns a dict of the numbers it printed.
Energies in eV, lengths in Angstrom.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from deeph_jax.errors import DeephError
from deeph_jax.io import HAMILTONIAN, HAMILTONIAN_PRED, read_deeph_dir
from deeph_jax.physics import checks, memory
from deeph_jax.physics import kpath as kp
from deeph_jax.physics.bands import bands_at, bloch_pencil, is_time_reversal_point
from deeph_jax.physics.fermi import band_error_near_fermi, band_gap, default_mesh, fermi_level, mesh_points, occupied_bands

FILES = {"dft": HAMILTONIAN, "pred": HAMILTONIAN_PRED}
logger = logging.getLogger(__name__)

DENSE_LIMIT = 6000  # basis functions above which `--method auto` solves a few bands near E_F (sparse)
AUTO_NBANDS = 20  # bands near E_F that `--method auto` / `sparse` computes when --nbands is not given
FERMI_WINDOW_EV = 3.0  # 'near E_F' for band errors: reaches both band edges of hBN


def choose_hamiltonian(folder: Path, which: str | None) -> str:
    """``pred`` when hamiltonian_pred.h5 exists, else ``dft``; the named file must exist."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DeephError("structure folder not found", folder)
    if which is None:
        which = "pred" if (folder / HAMILTONIAN_PRED).is_file() else "dft"
    if not (folder / FILES[which]).is_file():
        found = [n for n in FILES.values() if (folder / n).is_file()]
        hint = f" (found {', '.join(found)})" if found else " (no hamiltonian.h5 or hamiltonian_pred.h5 here)"
        raise DeephError(f"no {FILES[which]}{hint}", folder)
    return which


def load(folder, which: str | None):
    which = choose_hamiltonian(folder, which)
    return read_deeph_dir(folder, hamiltonian=FILES[which]), which


def periodic_of(data) -> np.ndarray:
    return kp.periodic_directions(np.concatenate([data.overlap.atom_pairs, data.hamiltonian.atom_pairs]))


def fermi_of(data, e_path: np.ndarray | None, mesh=None, smearing: float = 0.1):
    """(E_F, (VBM, CBM) or None) from the electron count on a uniform mesh, refined by the path's gap."""
    if data.occupation is None:
        ef = data.fermi_energy_eV
        if ef is None:
            raise DeephError("info.json has neither 'occupation' nor 'fermi_energy_eV': cannot place E_F", data.path)
        return float(ef), None
    mesh = mesh or default_mesh(data.structure.cell, periodic_of(data))
    e_mesh = bands_at(data, mesh_points(mesh))
    ef, gap = fermi_level(e_mesh, data.occupation, data.spinful, sigma=smearing)
    if gap is not None and e_path is not None and e_path.shape[1] == e_mesh.shape[1]:
        gap2 = band_gap(np.concatenate([e_mesh, e_path]), occupied_bands(data.occupation, data.spinful))
        if gap2 is not None:
            gap, ef = gap2, 0.5 * (gap2[0] + gap2[1])
    return ef, gap


def solver_for(nbands, sigma, distributed: bool, progress=None, track: bool = False, near_range: float | None = None):
    """``energies(data, kpoints)``: dense, single-machine shift-invert (``track``: Davidson from k to k,
    :class:`~deeph_jax.physics.bands.PathTracker`; ``near_range``: the same, started and preconditioned by
    the near-range pencil), or rows over the JAX processes."""
    if distributed:
        from deeph_jax.physics.distributed import bands_distributed

        return lambda data, kpoints: bands_distributed(data, kpoints, nbands, sigma, progress)
    return lambda data, kpoints: bands_at(data, kpoints, nbands, sigma, progress=progress, track=track,
                                          near_range=near_range)


def sparse_plan(data, n: int, complex_: bool, near_range="auto", path=None) -> float | None:
    """The near-range radius (Angstrom) sparse bands will use, or None for the full pencil, after checking the
    memory either needs. ``near_range``: "auto" (the full pencil when its factorization fits in memory, else
    the near-range one at :func:`~deeph_jax.physics.near_range.default_radius_A`), "off", or a radius."""
    from deeph_jax.physics import near_range as nr

    nnz = data.hamiltonian.entries.shape[0]  # stored entries: at least the nonzeros of H(k)
    full = memory.shift_invert_bytes(n, nnz, complex_)
    if near_range in (None, "off") or (near_range == "auto" and full <= 0.9 * memory.available_bytes()):
        memory.check_fits(full, f"sparse bands of {n:,} orbitals",
                          "use --near-range auto, a machine with more memory, or --distributed over several", path)
        return None
    radius = nr.default_radius_A(data) if near_range == "auto" else checks.check_near_range(near_range)
    nnz_near = nr.stored_entries_within(data.hamiltonian, data.structure, radius)
    memory.check_fits(memory.near_range_bytes(n, nnz, nnz_near, complex_),
                      f"sparse bands of {n:,} orbitals (near-range pencil within {radius:.2f} A)",
                      "use a machine with more memory, or --distributed over several", path)
    return radius


def is_main_process() -> bool:
    """Only the first JAX process writes files in a multi-process run (one process: always)."""
    import sys

    if "jax" not in sys.modules:
        return True
    import jax

    return jax.process_index() == 0


def bands_method(method: str, dimension: int, nbands, distributed: bool) -> str:
    """``auto``: every band (dense) up to DENSE_LIMIT orbitals, a few near E_F (sparse shift-invert) above,
    or when --nbands / --distributed asks for a few."""
    if method not in ("auto", "dense", "sparse"):
        raise DeephError(f"--method must be auto, dense or sparse, got {method!r}")
    if method == "dense" and (nbands is not None or distributed):
        raise DeephError("--method dense computes every band: drop --nbands / --distributed, or use --method sparse")
    if method == "auto":
        return "sparse" if nbands is not None or distributed or dimension > DENSE_LIMIT else "dense"
    return method


def run_bands(folder, hamiltonian=None, kpath="auto", npoints=200, nbands=None, sigma=None, out=None,
              smearing=0.1, plot=True, distributed=False, method="auto", track=False, near_range="auto") -> dict:
    """Bands along a path. ``method``: see :func:`bands_method` (``result["mode"]`` says which ran).
    ``track``: sparse bands follow the states from k to k by preconditioned Davidson (a factorization
    every few k instead of two per k; eigenvalues to ~1e-9 eV instead of ~1e-14).
    ``near_range``: sparse bands through the near-range pencil (:func:`sparse_plan`: "auto", "off" or a
    radius in Angstrom; ``result["near_range_A"]`` says which ran).
    ``distributed``: the sparse eigenvalues with the matrix rows over the JAX processes of this run
    (:mod:`deeph_jax.physics.distributed`); every process computes, the first writes."""
    folder = Path(folder)
    which = choose_hamiltonian(folder, hamiltonian)
    out = checks.check_output(out, folder, "bands.npz")
    npoints = checks.check_npoints(npoints)
    smearing = checks.check_positive_energy(smearing, "--smearing")
    checks.check_band_request(nbands, sigma)
    segments = None if kpath == "auto" else kp.read_kpath(kpath)  # a bad K_PATH fails before the h5 reads
    data, which = load(folder, which)
    checks.check_occupation(data)
    if not data.structure.periodic:
        raise DeephError("a molecule (every stored R is zero): bands need a crystal; try `deeph-jax polarization`", folder)
    periodic = periodic_of(data)
    if segments is None:
        segments = kp.auto_segments(data.structure, periodic, npoints)
    else:
        checks.check_kpath_periodic(segments, periodic, Path(kpath))
    path = kp.build_path(segments, data.structure.cell)
    n = int(data.atom_offsets[-1]) * (2 if data.spinful else 1)
    sparse = bands_method(method, n, nbands, distributed) == "sparse"
    if sparse and nbands is None:
        nbands = AUTO_NBANDS
    checks.check_nbands_fit(nbands, int(data.atom_offsets[-1]), data.spinful, folder / "info.json")
    if sparse and sigma is None:
        sigma = data.fermi_energy_eV
        if sigma is None:
            raise DeephError("sparse bands need --sigma (eV): info.json has no fermi_energy_eV to default to", folder)
    complex_ = data.spinful or data.hamiltonian.is_complex or len(path.kpoints) > 1
    radius = None
    if distributed and near_range not in (None, "auto", "off"):
        raise DeephError("--near-range is for one machine: drop it with --distributed", folder)
    if sparse and distributed:
        memory.check_fits(memory.shift_invert_bytes(n, data.hamiltonian.entries.shape[0], complex_),
                          f"sparse bands of {n:,} orbitals", "use more processes", folder)
    elif sparse:
        radius = sparse_plan(data, n, complex_, near_range, folder)
    else:
        memory.check_fits(memory.dense_eigen_bytes(n, complex_), f"dense bands of {n:,} orbitals",
                          f"use --method sparse (the {AUTO_NBANDS} bands nearest E_F)", folder)
    logger.info("bands: %d orbitals -> %s", n, f"sparse shift-invert, {nbands} bands nearest {sigma:.4f} eV"
                + ("" if radius is None else f", preconditioned by the near-range pencil within {radius:.2f} A")
                if sparse else "dense, every band")
    solve = solver_for(nbands, sigma, distributed, track=track, near_range=radius)
    energies, channels = spectra_of(data, path.kpoints, solve)
    result = {"hamiltonian": which, "kpoints": path.kpoints, "distances": path.distances,
              "tick_distances": path.tick_distances, "tick_labels": np.asarray(path.tick_labels),
              "energies_eV": energies, "mode": "shift-invert" if sparse else "dense"}
    if channels is not None:
        result.update(energies_up_eV=channels[0], energies_down_eV=channels[1])
    if sparse:
        ef = float(data.fermi_energy_eV if data.fermi_energy_eV is not None else sigma)
        gap = None
        result["sigma_eV"] = float(sigma)
        if radius is not None:
            result["near_range_A"] = radius
    else:
        ef, gap = fermi_of(data, energies, smearing=smearing)
    result["fermi_energy_eV"] = ef
    curves = spin_curves(f"{which} ({FILES[which]})", energies, channels, "r" if which == "pred" else "k", "-")
    if which == "pred" and (folder / HAMILTONIAN).is_file():
        dft = read_deeph_dir(folder, hamiltonian=HAMILTONIAN)
        e_dft, channels_dft = spectra_of(dft, path.kpoints, solve)
        ef_dft, gap_dft = (ef, None) if sparse else fermi_of(dft, e_dft, smearing=smearing)
        result.update(energies_dft_eV=e_dft, fermi_energy_dft_eV=ef_dft, max_abs_diff_eV=float(np.abs(energies - e_dft).max()))
        if gap_dft is not None:
            result["gap_dft_eV"] = gap_dft[1] - gap_dft[0]
        near = band_error_near_fermi(energies, e_dft, ef_dft, FERMI_WINDOW_EV)
        result.update(band_mae_near_fermi_eV=near[0], band_max_near_fermi_eV=near[1], fermi_window_eV=FERMI_WINDOW_EV)
        curves = spin_curves("DFT", e_dft, channels_dft, "k", "-") + spin_curves("predicted", energies, channels, "r", "--")
        ef = ef_dft
    from deeph_jax.physics.plots import plot_bands

    title = f"{folder.name}: E_F = {ef:.4f} eV"
    if "gap_dft_eV" in result and gap is not None:
        # Both gaps on the plot: a mean band error can hide a gap that is off by much more.
        title += f"\ngap: DFT {result['gap_dft_eV']:.3f} eV, predicted {gap[1] - gap[0]:.3f} eV"
    elif gap is not None:
        title += f", gap {gap[1] - gap[0]:.3f} eV"
    if not is_main_process():
        return result
    return finish(result, gap, out, (lambda png: plot_bands(png, path, curves, ef, title=title)) if plot else None)


def spectra_of(data, kpoints, solve):
    """Energies (n_k, n_bands) by ``solve``; for collinear spin also each channel's, (up, down), else None.
    The channels are solved apart (each a spinless problem of half the size) and merged in order."""
    from deeph_jax.physics.collinear import spin_channels

    channels = spin_channels(data)
    if channels is None:
        return solve(data, kpoints), None
    up, down = (solve(channel, kpoints) for channel in channels)
    return np.sort(np.concatenate([up, down], axis=1), axis=1), (up, down)


def spin_curves(legend: str, energies, channels, color: str, style: str) -> list:
    """Band curves for plots.plot_bands: one set, or spin up in ``color`` and spin down in a lighter one."""
    if channels is None:
        return [(legend, energies, color + style)]
    light = {"k": "C7", "r": "C1"}.get(color, color)
    return [(f"{legend}, spin up", channels[0], color + style), (f"{legend}, spin down", channels[1], light + style)]


def finish(result: dict, gap, out: Path, plot) -> dict:
    """Add the gap, write ``result`` to ``out`` and, when ``plot`` is given, the PNG beside it."""
    if gap is not None:
        result["gap_eV"] = gap[1] - gap[0]
    save_result(out, result)
    result["out"] = out
    if plot is not None:
        result["png"] = out.with_suffix(".png")
        plot(result["png"])
    return result


def save_result(out: Path, result: dict) -> None:
    """Write the arrays and scalars of ``result`` to ``.npz`` or ``.h5`` (by extension)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.asarray(v) for k, v in result.items() if not isinstance(v, Path)}
    from deeph_jax.io.atomic import atomic_path

    with atomic_path(out) as tmp:
        if out.suffix == ".npz":
            with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
                np.savez(f, **arrays)
        else:
            import h5py

            with h5py.File(tmp, "w") as f:
                for k, v in arrays.items():
                    f.create_dataset(k, data=np.char.encode(v, "utf-8") if v.dtype.kind == "U" else v)


def choose_dos_method(method: str, dimension: int) -> str:
    """``auto``: dense diagonalization up to DENSE_LIMIT orbitals, the kernel polynomial method above."""
    if method not in ("auto", "dense", "kpm"):
        raise DeephError(f"--method must be auto, dense or kpm, got {method!r}")
    if method == "auto":
        return "kpm" if dimension > DENSE_LIMIT else "dense"
    return method


def run_dos(folder, kmesh, hamiltonian=None, sigma=0.1, out=None, plot=True, method="auto",
            n_moments=None, n_vectors=None, seed=0) -> dict:
    """DOS (states/eV/cell) and E_F. ``method``: dense (Gaussian-smeared eigenvalues on the k-mesh) or kpm
    (Chebyshev moments with the Jackson kernel, resolution ~ ``sigma``, error bars from ``n_vectors``
    random vectors); ``auto`` picks by size and says which."""
    from deeph_jax.physics import memory

    folder = Path(folder)
    which = choose_hamiltonian(folder, hamiltonian)
    out = checks.check_output(out, folder, "dos.npz")
    kmesh = checks.check_kmesh(kmesh)
    sigma = checks.check_positive_energy(sigma, "--sigma")
    if n_vectors is not None and n_vectors < 2:
        raise DeephError(f"--vectors must be >= 2 (error bars need two), got {n_vectors}")
    if n_moments is not None and n_moments < 64:
        raise DeephError(f"--moments must be >= 64, got {n_moments}")
    data, which = load(folder, which)
    checks.check_occupation(data)
    dimension = int(data.atom_offsets[-1]) * (2 if data.spinful else 1)
    method = choose_dos_method(method, dimension)
    kpoints = mesh_points(kmesh)
    complex_any = data.hamiltonian.is_complex or not all(is_time_reversal_point(k) for k in kpoints)
    if method == "dense":
        memory.check_fits(memory.dense_eigen_bytes(dimension, complex_any), f"dense DOS of {dimension:,} orbitals",
                          "use --method kpm", folder)
        return _dense_dos(data, which, folder, kmesh, kpoints, sigma, out, plot)
    return _kpm_dos(data, which, folder, kmesh, kpoints, sigma, out, plot, n_moments, n_vectors, seed)


def _dense_dos(data, which, folder, kmesh, kpoints, sigma, out, plot) -> dict:
    from deeph_jax.physics.dos import energy_grid, gaussian_dos

    energies, channels = spectra_of(data, kpoints, bands_at)
    if data.occupation is not None:
        ef, gap = fermi_level(energies, data.occupation, data.spinful, sigma=sigma)
    else:
        ef, gap = fermi_of(data, None)
    checks.check_dos_grid(energies, sigma)
    grid = energy_grid(energies, sigma)
    dos = gaussian_dos(energies, grid, sigma, data.spinful)
    result = {"hamiltonian": which, "method": "dense", "kmesh": np.asarray(kmesh), "energies_eV": grid,
              "dos_per_eV": dos, "fermi_energy_eV": ef, "sigma_eV": sigma}
    down = None
    if channels is not None:  # per spin channel (one state per band); they add up to dos
        result["dos_up_per_eV"] = gaussian_dos(channels[0], grid, sigma, spinful=True)
        result["dos_down_per_eV"] = down = gaussian_dos(channels[1], grid, sigma, spinful=True)
    from deeph_jax.physics.plots import plot_dos

    title = f"{folder.name} ({which}), mesh {kmesh}, sigma {sigma} eV"
    shown = dos if down is None else result["dos_up_per_eV"]
    return finish(result, gap, out,
                  (lambda png: plot_dos(png, grid, shown, ef, title=title, dos_down=down)) if plot else None)


def _kpm_dos(data, which, folder, kmesh, kpoints, sigma, out, plot, n_moments, n_vectors, seed) -> dict:
    from deeph_jax.physics import kpm, memory

    pairs = [bloch_pencil(data, k) for k in kpoints]
    dimension = pairs[0][0].shape[0]
    nnz = max(s.nnz for _, s in pairs)
    complex_any = any(np.iscomplexobj(h.data) for h, _ in pairs)
    if n_vectors is None:
        n_vectors = kpm.default_vectors(dimension)
    memory.check_fits(memory.kpm_bytes(dimension, nnz, n_vectors, complex_any, kpm.overlap_route(pairs[0][1])),
                      f"KPM of {dimension:,} orbitals", "use fewer --vectors or a machine with more memory", folder)
    moments = kpm.kpm_moments_mesh(pairs, n_moments, resolution=sigma, n_vectors=n_vectors, seed=seed,
                                   progress=True)
    spin_factor = 1.0 if data.spinful else 2.0
    lo, hi = moments.center - 0.999 * moments.half_width, moments.center + 0.999 * moments.half_width
    grid = np.arange(lo, hi, sigma / 4.0)
    dos, err = kpm.kpm_dos(moments, grid, spin_factor)
    gap = None
    if data.occupation is not None:
        fermi = kpm.kpm_fermi_level(moments, data.occupation, spin_factor)
        ef, gap = fermi.fermi_eV, fermi.gap_eV
    else:
        ef, _ = fermi_of(data, None)
    result = {"hamiltonian": which, "method": "kpm", "kmesh": np.asarray(kmesh), "energies_eV": grid,
              "dos_per_eV": dos, "dos_stderr_per_eV": err, "fermi_energy_eV": ef, "sigma_eV": sigma,
              "resolution_eV": kpm.resolution_eV(moments), "n_moments": moments.n_moments, "n_vectors": n_vectors,
              "seconds": moments.seconds, **{f"{stage}_seconds": t for stage, t in moments.timings.items()}}
    from deeph_jax.physics.plots import plot_dos

    title = (f"{folder.name} ({which}), KPM {moments.n_moments} moments x {n_vectors} vectors, "
             f"mesh {kmesh}")
    return finish(result, gap, out,
                  (lambda png: plot_dos(png, grid, dos, ef, title=title, stderr=err)) if plot else None)


def run_polarization(folder, hamiltonian=None, basis=None, kmesh=None, valence=None) -> dict:
    """Molecule: the dipole (e*Angstrom, Debye). Crystal: the Berry-phase polarization."""
    from deeph_jax.physics.berry import (E_PER_A2_TO_C_PER_M2, berry_polarization, default_polarization_mesh,
                                         valence_charges)

    folder = Path(folder)
    which = choose_hamiltonian(folder, hamiltonian)
    if kmesh is not None:
        kmesh = checks.check_kmesh(kmesh)
    data, which = load(folder, which)
    checks.check_occupation(data)
    if not data.structure.periodic:
        from deeph_jax.physics.dipole import molecular_dipole

        dipole, details = molecular_dipole(data, basis)
        return {"kind": "molecule", "hamiltonian": which, "dipole_eA": dipole, **details}
    periodic = periodic_of(data)
    kmesh = tuple(kmesh) if kmesh else default_polarization_mesh(data.structure.cell, periodic)
    z = valence_charges(data, valence)
    pol = berry_polarization(data, z, kmesh)
    cell = data.structure.cell
    result = {"kind": "crystal", "hamiltonian": which, "polarization": pol, "valence": z, "periodic": periodic,
              "P_C_per_m2": pol.cartesian * E_PER_A2_TO_C_PER_M2,
              "quantum_C_per_m2": pol.quantum * E_PER_A2_TO_C_PER_M2}
    if periodic.sum() == 2:  # a sheet: per area, C/m
        i, j = np.nonzero(periodic)[0]
        area = float(np.linalg.norm(np.cross(cell[i], cell[j])))
        per_area = pol.volume / area  # Angstrom: P * Omega / A
        result["P_C_per_m"] = result["P_C_per_m2"] * per_area * 1e-10
        result["quantum_C_per_m"] = result["quantum_C_per_m2"] * per_area * 1e-10
    return result
