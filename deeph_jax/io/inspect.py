"""A summary of a DeepH dataset: what a user runs first on new data."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deeph_jax.errors import DeephError
from deeph_jax.io.basis import OrbitalBasis
from deeph_jax.io.deeph import HAMILTONIAN, find_structure_dirs, read_deeph_dir

SHELL_LETTERS = "spdfghi"


def shells_text(ls) -> str:
    """[0, 0, 1, 1, 2] -> '2s2p1d (13 orbitals)'."""
    counts = Counter(ls)
    text = "".join(f"{counts[l]}{SHELL_LETTERS[l]}" for l in sorted(counts))
    return f"{text} ({sum(2 * l + 1 for l in ls)} orbitals)"


@dataclass
class DatasetSummary:
    root: Path
    n_structures: int = 0
    atoms: list = field(default_factory=list)
    basis: OrbitalBasis = field(default_factory=lambda: OrbitalBasis({}))
    element_counts: Counter = field(default_factory=Counter)
    n_blocks: int = 0
    n_entries: int = 0
    h_range: tuple = (np.inf, -np.inf)
    s_range: tuple = (np.inf, -np.inf)
    spinful: set = field(default_factory=set)
    fermi: list = field(default_factory=list)
    molecules: int = 0
    max_R: int = 0
    hermiticity_h: float = 0.0
    hermiticity_s: float = 0.0
    without_h: int = 0

    def lines(self) -> list[str]:
        out = [f"dataset      {self.root}", f"structures   {self.n_structures} ({self.molecules} molecules, "
               f"{self.n_structures - self.molecules} periodic)"]
        if self.atoms:
            out.append(f"atoms        {min(self.atoms)} to {max(self.atoms)} per structure, {sum(self.atoms)} in all")
        out.append("elements     " + ", ".join(f"{e} ({self.element_counts[e]} atoms)" for e in self.basis.elements))
        out.append("basis (l of each radial shell, m = -l..l inside a shell):")
        out += [f"  {e:<3} {list(ls)}  {shells_text(ls)}" for e, ls in self.basis.shells.items()]
        out.append(f"blocks       {self.n_blocks} H_ij(R) blocks, {self.n_entries} entries; largest |R| component {self.max_R}")
        spin = "spinful (complex 2x2 spin blocks)" if True in self.spinful else "spinless (real)"
        out.append(f"spin         {spin}")
        if self.n_structures > self.without_h:
            out.append(f"H range      {self.h_range[0]:.4f} to {self.h_range[1]:.4f} eV (real parts)")
        if self.without_h:
            out.append(f"without H    {self.without_h} structures have no hamiltonian.h5")
        out.append(f"S range      {self.s_range[0]:.4f} to {self.s_range[1]:.4f}")
        out.append(f"Hermiticity  max |H_ij(R) - H_ji(-R)^T| = {self.hermiticity_h:.2e} eV, S: {self.hermiticity_s:.2e} "
                   "(symmetrized when H(k) is built)")
        known = [f for f in self.fermi if f is not None]
        if known:
            out.append(f"Fermi energy {min(known):.4f} to {max(known):.4f} eV ({len(known)} structures give one)")
        else:
            out.append("Fermi energy not given")
        return out


def summarize_dataset(root: str | Path, progress: bool = True) -> DatasetSummary:
    """Read every structure under ``root`` and collect the summary (raises DeephError on bad files)."""
    root = Path(root)
    dirs = find_structure_dirs(root)
    if not dirs:
        raise DeephError("no structure found (no folder with a POSCAR)", root)
    summary = DatasetSummary(root)
    iterator = dirs
    if progress and len(dirs) > 20:
        from tqdm import tqdm

        iterator = tqdm(dirs, desc="inspect", unit="structure")
    for d in iterator:
        has_h = (d / HAMILTONIAN).is_file()
        data = read_deeph_dir(d, hamiltonian=HAMILTONIAN if has_h else None)
        summary.n_structures += 1
        summary.without_h += not has_h
        summary.atoms.append(data.structure.n_atoms)
        summary.basis = summary.basis.merged(data.basis, d / "info.json")
        summary.element_counts.update(data.structure.symbols)
        summary.spinful.add(data.spinful)
        summary.fermi.append(data.fermi_energy_eV)
        summary.molecules += not data.structure.periodic
        s = data.overlap
        summary.s_range = (min(summary.s_range[0], s.entries.min()), max(summary.s_range[1], s.entries.max()))
        summary.hermiticity_s = max(summary.hermiticity_s, s.hermiticity_error())
        summary.n_blocks += s.n_blocks
        summary.n_entries += s.entries.size
        summary.max_R = max(summary.max_R, int(np.abs(s.atom_pairs[:, :3]).max(initial=0)))
        if has_h:
            h = data.hamiltonian.entries.real
            summary.h_range = (min(summary.h_range[0], h.min()), max(summary.h_range[1], h.max()))
            summary.hermiticity_h = max(summary.hermiticity_h, data.hamiltonian.hermiticity_error())
    return summary
