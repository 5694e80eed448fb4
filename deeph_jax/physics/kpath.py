"""k-point paths for band structures: DeepH ``K_PATH`` files and automatic high-symmetry paths.

A path is a list of straight segments; each segment's points include both of its ends, so a
path has the sum of its segments' point counts (the DeepH-dock convention: the shared corner of
two segments appears twice). k-points are in reciprocal lattice units of the structure's own
cell; distances are Cartesian lengths |dk| in 1/Angstrom with the 2 pi (k = frac @ B,
B = 2 pi inv(cell).T), accumulated along the path and not advanced across a jump between
disconnected segments.

``K_PATH`` format, one segment a line: ``N  k1x k1y k1z  k2x k2y k2z  label1 label2``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deeph_jax.errors import DeephError


@dataclass(frozen=True)
class Segment:
    """One straight piece of a path: ``n`` points from ``start`` to ``end`` (both included)."""

    n: int
    start: np.ndarray  # (3,) reciprocal lattice units
    end: np.ndarray  # (3,)
    labels: tuple[str, str]


@dataclass(frozen=True)
class KPath:
    """Points of a path and what a plot needs.

    Attributes:
        kpoints: (n_k, 3) reciprocal lattice units.
        distances: (n_k,) cumulative Cartesian distance, 1/Angstrom (2 pi included).
        tick_distances: (n_ticks,) where high-symmetry points sit on the distance axis.
        tick_labels: (n_ticks,) their labels (``A|B`` where two disconnected segments meet).
        segments: the segments that made the path.
    """

    kpoints: np.ndarray
    distances: np.ndarray
    tick_distances: np.ndarray
    tick_labels: tuple[str, ...]
    segments: tuple[Segment, ...]


def reciprocal_lattice(cell: np.ndarray) -> np.ndarray:
    """(3, 3) reciprocal vectors as rows, 2 pi included, 1/Angstrom: cell @ B.T = 2 pi I."""
    return 2.0 * np.pi * np.linalg.inv(np.asarray(cell, dtype=np.float64)).T


def parse_kpath(text: str, path=None) -> list[Segment]:
    """Parse a DeepH ``K_PATH`` text; every problem is one DeephError naming the line."""
    segments = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) != 9:
            raise DeephError(
                f"line {lineno}: expected 'N  k1x k1y k1z  k2x k2y k2z  label1 label2' (9 fields), got {len(fields)}", path
            )
        try:
            n = int(fields[0])
            k = np.asarray([float(x) for x in fields[1:7]])
        except ValueError:
            raise DeephError(f"line {lineno}: the point count and six coordinates must be numbers: {line.strip()!r}", path) from None
        if n < 2:
            raise DeephError(f"line {lineno}: a segment needs at least 2 points (both ends), got {n}", path)
        if not np.all(np.isfinite(k)):
            raise DeephError(f"line {lineno}: coordinates must be finite", path)
        segments.append(Segment(n, k[:3], k[3:], (fields[7], fields[8])))
    if not segments:
        raise DeephError("no k-path segments found", path)
    return segments


def read_kpath(path: str | Path) -> list[Segment]:
    path = Path(path)
    if not path.is_file():
        raise DeephError("k-path file not found", path)
    return parse_kpath(path.read_text(errors="replace"), path)


def build_path(segments: list[Segment], cell: np.ndarray) -> KPath:
    """Points and distances of ``segments`` for a structure with lattice rows ``cell`` (Angstrom)."""
    B = reciprocal_lattice(cell)
    kpts, dist, ticks, labels = [], [], [], []
    x = 0.0
    for s_i, seg in enumerate(segments):
        t = np.arange(seg.n)[:, None] / (seg.n - 1)
        k = seg.start[None, :] + t * (seg.end - seg.start)[None, :]
        step = np.linalg.norm(np.diff(k, axis=0) @ B, axis=1)
        d = x + np.concatenate([[0.0], np.cumsum(step)])
        kpts.append(k)
        dist.append(d)
        if s_i == 0:
            ticks.append(x)
            labels.append(seg.labels[0])
        elif segments[s_i - 1].labels[1] != seg.labels[0] or not np.allclose(segments[s_i - 1].end, seg.start):
            labels[-1] = f"{labels[-1]}|{seg.labels[0]}"
        ticks.append(d[-1])
        labels.append(seg.labels[1])
        x = d[-1]
    return KPath(np.concatenate(kpts), np.concatenate(dist), np.asarray(ticks), tuple(labels), tuple(segments))


def periodic_directions(matrix_atom_pairs: np.ndarray) -> np.ndarray:
    """(3,) bool: lattice directions along which some stored block has R != 0 (H(k) depends on k_i)."""
    return np.any(np.asarray(matrix_atom_pairs)[:, :3] != 0, axis=0)


def auto_segments(structure, periodic: np.ndarray | None = None, npoints: int = 200) -> list[Segment]:
    """A high-symmetry path from seekpath (HPKOT), mapped to the structure's own cell.

    The path is that of the atoms' symmetry, or of the lattice's when the lattice alone is more
    symmetric: a rattled (or slightly strained) hBN supercell is triclinic to spglib, but its bands are
    read along Gamma-M-K-Gamma of its hexagonal lattice (see :func:`seekpath_result`).
    Segments that leave the plane of a 2D sheet (any end with a component along a
    non-periodic reciprocal direction, e.g. Gamma-A for a sheet with vacuum along c) are dropped.
    ``npoints`` is shared among segments in proportion to their length (at least 2 each).
    """
    cell = np.asarray(structure.cell)
    periodic = np.ones(3, bool) if periodic is None else np.asarray(periodic, bool)
    res = seekpath_result(structure)
    # seekpath works in a standardized, possibly rotated, primitive cell: go through Cartesian k.
    rot = np.asarray(res.get("rotation_matrix", np.eye(3)))
    b_std = np.asarray(res["reciprocal_primitive_lattice"])  # rows, 2 pi included, rotated frame
    coords = {}
    for name, frac in res["point_coords"].items():
        k_cart = rot.T @ (np.asarray(frac) @ b_std)  # back to the input frame
        coords[name] = cell @ k_cart / (2.0 * np.pi)  # k_i = a_i . k / 2 pi
    pieces = []
    for a, b in res["path"]:
        ka, kb = coords[a], coords[b]
        if np.any(np.abs(np.stack([ka, kb])[:, ~periodic]) > 1e-8):
            continue
        pieces.append((a, b, ka, kb))
    if not pieces:
        raise DeephError("no in-plane high-symmetry segment found: pass a K_PATH file with --kpath")
    B = reciprocal_lattice(cell)
    lengths = np.asarray([np.linalg.norm((kb - ka) @ B) for _, _, ka, kb in pieces])
    counts = np.maximum(2, np.round(npoints * lengths / lengths.sum()).astype(int))
    return [Segment(int(n), ka, kb, (_pretty(a), _pretty(b))) for n, (a, b, ka, kb) in zip(counts, pieces)]


LATTICE_TOLERANCE = 0.08  # of the shortest lattice vector: measured, a +-2 % in-plane strain needs 8 %


def seekpath_result(structure) -> dict:
    """seekpath's answer for the atoms, or for the bare lattice (one atom per cell, tolerance
    ``LATTICE_TOLERANCE`` of the shortest lattice vector) when that has a higher space group: the atoms
    then only break the lattice's symmetry (a rattle, a defect), and a path through the lattice's
    high-symmetry points is what users compare with the ideal crystal."""
    import seekpath

    import warnings

    cell = np.asarray(structure.cell)
    with warnings.catch_warnings():  # near-90-degree triclinic edge cases of a rattled cell: the lattice decides
        warnings.simplefilter("ignore", seekpath.hpkot.EdgeCaseWarning)
        atoms = seekpath.get_path((cell, structure.frac_positions, structure.numbers), with_time_reversal=True)
    tolerance = LATTICE_TOLERANCE * float(np.linalg.norm(cell, axis=1).min())
    try:
        lattice = seekpath.get_path((cell, [[0.0, 0.0, 0.0]], [1]), with_time_reversal=True, symprec=tolerance)
    except Exception:  # seekpath refuses some degenerate lattices at a loose tolerance; keep the atoms' path
        return atoms
    return lattice if lattice["spacegroup_number"] > atoms["spacegroup_number"] else atoms


def _pretty(label: str) -> str:
    return "Γ" if label.upper() == "GAMMA" else label.replace("_", "")


def format_kpath(segments: list[Segment]) -> str:
    """The DeepH ``K_PATH`` text of ``segments`` (read back by :func:`parse_kpath`)."""
    lines = []
    for s in segments:
        k = "  ".join(f"{x:.10f}" for x in (*s.start, *s.end))
        labels = ["GAMMA" if x == "Γ" else x for x in s.labels]
        lines.append(f"{s.n}  {k}  {labels[0]} {labels[1]}")
    return "\n".join(lines) + "\n"
