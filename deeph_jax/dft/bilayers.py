"""Bilayer graphene for the crystal generator: randomly stacked (shifted) bilayers and commensurate twisted cells.

Two named distributions of ``deeph-jax generate crystal`` (issue 19), both built by
:mod:`deeph_jax.builders.twisted_bilayer` (a = 2.467 A, the project's graphene value; layers at
z = c/2 -+ d/2 in a cell of fixed height c = 15 A, recorded: the energy zero depends on it):

- ``bilayer-graphene``: an n1 x n2 supercell of the 4-atom bilayer whose top layer is moved in-plane
  by s1 a1 + s2 a2 of the primitive graphene cell, (s1, s2) uniform in [0, 1)^2 (uniform over the cell:
  AA at (0, 0), AB at (1/3, 1/3), the saddle point SP at (1/6, 1/6), and every stacking between), and
  an interlayer distance d uniform in [3.2, 3.7] A. 2x2: 16 atoms, 3x3: 36 atoms.
- ``twisted-bilayer``: the (m, m + 1) commensurate twisted cell (m = 1: 21.79 degrees, 28 atoms;
  m = 2: 13.17 degrees, 76 atoms), AA-registered at the origin, at d = 3.35 A by default.

Each is then strained and rattled by :class:`deeph_jax.dft.crystals.CrystalSource`'s machinery (strain in
the plane only, so d is kept; Gaussian displacements in 3D). Per structure the RNG seeded by (seed,
index) draws, in this order: the shift (2 uniforms; untwisted only), d (1 uniform), then sigma, the
strain (6 uniforms) and the displacements as for the varied hBN sets. POSCAR order: bottom layer, then
top layer (``layer_sizes`` in info.json).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deeph_jax.builders.twisted_bilayer import (CELL_HEIGHT, GRAPHENE_A, INTERLAYER, shifted_bilayer, twist_angle,
                                                twisted_bilayer)
from deeph_jax.dft.crystals import CrystalSource
from deeph_jax.errors import DeephError
from deeph_jax.io import Structure
from deeph_jax.io.structures import VACUUM_GAP

SHIFTED = "bilayer-graphene"
TWISTED = "twisted-bilayer"
BILAYERS = (SHIFTED, TWISTED)
INTERLAYER_RANGE = (3.2, 3.7)  # Angstrom: AA (~3.6 A) to AB (~3.35 A) equilibria and a margin either side
RATTLE_ROOM = 1.0  # Angstrom of the vacuum gap set aside for displaced atoms when checking the cell height


@dataclass(frozen=True)
class BilayerSource(CrystalSource):
    """Bilayer graphene cells: shifted (``bilayer-graphene``) or twisted (``twisted-bilayer``, ``twist_m``).

    Lengths in Angstrom; ``interlayer`` is the (low, high) range of d (equal ends: one value);
    ``vacuum`` the cell height c; ``supercell`` repeats the 4-atom cell (shifted only; twisted cells are
    (1, 1, 1)). rattle, rattle_max, strain and pristine as :class:`CrystalSource`.
    """

    name: str | None = SHIFTED
    vacuum: float = CELL_HEIGHT
    interlayer: tuple = INTERLAYER_RANGE
    twist_m: int | None = None

    def __post_init__(self):
        if self.name not in BILAYERS:
            raise DeephError(f"unknown bilayer {self.name!r} (known: {', '.join(BILAYERS)})")
        lo, hi = (float(x) for x in self.interlayer)
        if not 0 < lo <= hi:
            raise DeephError(f"interlayer distance range {lo}, {hi}: need 0 < low <= high (Angstrom)")
        # The z direction must stay a vacuum direction (one k-point along it) for every drawn d and rattle.
        if self.vacuum - hi < VACUUM_GAP + RATTLE_ROOM:
            raise DeephError(f"cell height {self.vacuum} A leaves {self.vacuum - hi:.2f} A of vacuum at d = {hi} A; "
                             f"need >= {VACUUM_GAP + RATTLE_ROOM} A")
        if self.name == TWISTED:
            if self.twist_m is None or int(self.twist_m) != self.twist_m or self.twist_m < 1:
                raise DeephError(f"--name {TWISTED} needs --twist-m M, an integer >= 1 (got {self.twist_m})")
            if tuple(self.supercell) != (1, 1, 1):
                raise DeephError(f"--name {TWISTED}: the commensurate cell is the unit; --supercell must be 1,1,1")
        else:
            if self.twist_m is not None:
                raise DeephError(f"--twist-m is for --name {TWISTED}")
            if self.supercell[2] != 1:
                raise DeephError(f"--name {SHIFTED}: --supercell {self.supercell} must have 1 along the vacuum (z)")

    @property
    def twisted(self) -> bool:
        return self.name == TWISTED

    @property
    def is_sheet(self) -> bool:
        return True  # `vacuum` is the recorded cell height

    def _middle(self) -> float:
        return 0.5 * (float(self.interlayer[0]) + float(self.interlayer[1]))

    def base(self) -> Structure:
        """The unit the set repeats: the 4-atom AA bilayer, or the twisted cell (d = the middle of the range)."""
        if self.twisted:
            return twisted_bilayer(int(self.twist_m), interlayer=self._middle(), height=self.vacuum)
        return shifted_bilayer((0.0, 0.0), interlayer=self._middle(), reps=(1, 1), height=self.vacuum)

    def ideal(self) -> Structure:
        # Built directly (not crystals.supercell of base) so the atoms are ordered layer by layer.
        if self.twisted:
            return self.base()
        return shifted_bilayer((0.0, 0.0), interlayer=self._middle(), reps=self.supercell[:2], height=self.vacuum)

    def _start(self, rng: np.random.Generator) -> tuple[Structure, dict]:
        """Draw the stacking (shift, then d) and build the bilayer before strain and rattle."""
        if self.twisted:
            d = float(rng.uniform(*self.interlayer))
            s = twisted_bilayer(int(self.twist_m), interlayer=d, height=self.vacuum)
            record = {"twist_m": int(self.twist_m), "twist_angle_deg": round(twist_angle(int(self.twist_m)), 12)}
        else:
            shift = rng.uniform(0.0, 1.0, 2)
            d = float(rng.uniform(*self.interlayer))
            s = shifted_bilayer(shift, interlayer=d, reps=self.supercell[:2], height=self.vacuum)
            primitive = self.base().cell[:2, :2]
            record = {"stacking_shift_frac": shift.round(12).tolist(),
                      "stacking_shift_A": (shift @ primitive).round(12).tolist()}
        record["interlayer_distance_A"] = round(d, 12)
        record["layer_sizes"] = [s.n_atoms // 2, s.n_atoms // 2]
        return s, record

    def sampling_meta(self) -> dict:
        lo, hi = (float(x) for x in self.interlayer)
        meta = {
            "bilayer": self.name,
            "graphene_a_A": GRAPHENE_A,
            "interlayer_distance_A": [lo, hi],
            "interlayer": "d uniform in the range (equal ends: fixed), layers at z = c/2 -+ d/2 before the rattle; "
                          "info.json interlayer_distance_A",
            "layers": "POSCAR order: bottom layer, then top layer (info.json layer_sizes)",
            "rng_order": ("d" if self.twisted else "shift (2 uniforms), d") +
                         ", then (varied) sigma, strain (6 uniforms), displacements",
            "builder": "deeph_jax.builders.twisted_bilayer."
                       + ("twisted_bilayer" if self.twisted else "shifted_bilayer"),
        }
        if self.twisted:
            meta["twist_m"] = int(self.twist_m)
            meta["twist_angle_deg"] = twist_angle(int(self.twist_m))
            meta["stacking"] = "(m, m + 1) commensurate cell, both layers with an atom at the origin (AA there)"
        else:
            meta["stacking"] = ("top layer moved in-plane by s1 a1 + s2 a2 of the primitive graphene cell, (s1, s2) "
                                "uniform in [0, 1)^2: AA (0, 0), AB (1/3, 1/3), SP (1/6, 1/6); info.json "
                                "stacking_shift_frac and stacking_shift_A (Cartesian, before the strain)")
        return meta


def interlayer_range(text: str) -> tuple[float, float]:
    """``"3.35"`` -> (3.35, 3.35); ``"3.2,3.7"`` -> (3.2, 3.7) (Angstrom); ValueError otherwise."""
    parts = [float(x) for x in text.split(",")]
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2:
        raise ValueError(text)
    return parts[0], parts[1]


DEFAULT_INTERLAYER = {SHIFTED: INTERLAYER_RANGE, TWISTED: (INTERLAYER, INTERLAYER)}

__all__ = ["BilayerSource", "BILAYERS", "DEFAULT_INTERLAYER", "INTERLAYER_RANGE", "SHIFTED", "TWISTED",
           "interlayer_range"]
