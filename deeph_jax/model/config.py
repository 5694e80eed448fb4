"""Model hyper-parameters: one frozen dataclass, a default (< 1 M parameters) and a larger preset."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import e3nn_jax as e3nn
import numpy as np

SPIN_MODES = ("none", "soc", "collinear")
# Angstrom between the nodes of the radial scale table (ModelConfig.radial_scale): hBN's neighbour shells
# lie 0.4-1.5 A apart, and |H| falls by ~10x per 2 A.
RADIAL_SCALE_STEP = 0.5


def hidden_irreps(channels: tuple[int, ...]) -> e3nn.Irreps:
    """Irreps with ``channels[l]`` copies of l, both parities for l >= 1 (blocks such as p x p
    hold 1e and p x d hold 2o, so the hidden features need both), e.g. (32, 8) -> 32x0e+8x1o+8x1e."""
    out = [(channels[0], (0, 1))]
    for l, c in enumerate(channels[1:], start=1):
        if c:
            out += [(c, (l, (-1) ** l)), (c, (l, -((-1) ** l)))]
    return e3nn.Irreps(out)


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of :class:`deeph_jax.model.network.HamiltonianNet`.

    Attributes:
        cutoff: Angstrom; radial envelope reaches zero here. Use >= the graph's cutoff.
        message_cutoff: Angstrom, or None for ``cutoff``: only edges shorter than this send
            messages to nodes (with a smooth envelope); longer edges still get their block from
            both endpoints. A short one keeps node features local: trained on small periodic
            cells, they cannot learn the cells' own images, and the receptive field (what a
            prediction chunk's halo must hold) is cutoff + num_layers * message_cutoff.
        num_radial: Bessel basis size.
        lmax: spherical harmonics degree of the edge direction (4 for s, p, d; 6 with f).
        node_channels: copies of each l in node features, index l (both parities for l >= 1).
        edge_channels: same for edge features; the output head reads the last edge features.
        tp_channels: channels per l fed into each tensor product (cost per edge scales with these).
        num_layers: interaction blocks.
        radial_hidden: width of the MLPs of edge scalars that weight tensor-product paths.
        avg_num_neighbors: divides the sum of messages (keeps activations O(1)).
        species_embed: width of the species embedding.
        long_range_alpha: 1/Angstrom, or None (off): the Ewald splitting parameter of the long-range
            electrostatic channel (:mod:`deeph_jax.model.long_range`); the network learns one charge per
            element and the erf part of their potential shifts the blocks. ~0.3 leaves 1/alpha ~ 3 A to
            the local network.
        long_range_charges: with ``long_range_alpha``, add environment-dependent charges to the per-element
            ones: a charge transfer dq_i read from atom i's neighbours within the message cutoff
            (:class:`deeph_jax.model.long_range.ChargeNet`), neutral per structure, whose long-range potential
            joins the per-element one. Off by default; bundles without it load unchanged.
        offsite_shift: let the output heads' learned constant shift act on off-site blocks too, as in
            bundles made before 2026-12-07 (:func:`deeph_jax.predict.bundle.load_bundle` sets it for them):
            the same at every distance, it biases every far block (:class:`deeph_jax.model.network.BlockHead`).
        spin: ``"none"`` (spinless H), ``"soc"`` (spin-orbit coupled H, complex (2a, 2b) blocks H0 x 1 +
            i sum_a Ha x sigma_a, time-reversal symmetric) or ``"collinear"`` (H-up and H-down for a
            magnetic configuration given as a signed moment per atom); see
            :mod:`deeph_jax.model.spin_blocks`.
    """

    cutoff: float = 8.0
    message_cutoff: float | None = None
    num_radial: int = 8
    lmax: int = 4
    node_channels: tuple[int, ...] = (48, 16, 8, 4, 4)
    edge_channels: tuple[int, ...] = (48, 16, 8, 8, 4)
    tp_channels: tuple[int, ...] = (16, 8, 4, 4, 2)
    num_layers: int = 3
    radial_hidden: int = 32
    avg_num_neighbors: float = 20.0
    species_embed: int = 16
    long_range_alpha: float | None = None
    radial_scale: bool = False
    spin: str = "none"
    long_range_charges: bool = False
    offsite_shift: bool = False

    def __post_init__(self):
        for name in ("node_channels", "edge_channels", "tp_channels"):
            object.__setattr__(self, name, tuple(int(c) for c in getattr(self, name)))
            if len(getattr(self, name)) != self.lmax + 1:
                raise ValueError(f"{name} needs lmax + 1 = {self.lmax + 1} entries, got {getattr(self, name)}")
        if self.message_cutoff is not None and not 0 < self.message_cutoff <= self.cutoff:
            raise ValueError(f"message_cutoff must lie in (0, cutoff = {self.cutoff}], got {self.message_cutoff}")
        if self.long_range_alpha is not None and not 0.05 <= self.long_range_alpha <= 2.0:
            raise ValueError(f"long_range_alpha must lie in [0.05, 2] 1/A (or null for none), got {self.long_range_alpha}")
        if self.long_range_charges and self.long_range_alpha is None:
            raise ValueError("long_range_charges needs the long-range channel: set long_range_alpha too")
        if self.num_radial < 2:
            raise ValueError(f"num_radial must be at least 2, got {self.num_radial}")
        if self.spin not in SPIN_MODES:
            raise ValueError(f"spin = {self.spin!r}: must be one of {', '.join(SPIN_MODES)}")

    @property
    def radial_scale_nodes(self) -> np.ndarray | None:
        """Edge lengths (Angstrom) of the radial scale table's nodes, RADIAL_SCALE_STEP apart from 0 past
        the cutoff; None without ``radial_scale``."""
        if not self.radial_scale:
            return None
        return RADIAL_SCALE_STEP * np.arange(int(np.ceil(self.cutoff / RADIAL_SCALE_STEP)) + 2)

    @property
    def receptive_field(self) -> float:
        """Angstrom from an edge's sender within which atoms can change its block."""
        return self.cutoff + self.num_layers * (self.message_cutoff or self.cutoff)

    @property
    def node_irreps(self) -> e3nn.Irreps:
        return hidden_irreps(self.node_channels)

    @property
    def edge_irreps(self) -> e3nn.Irreps:
        return hidden_irreps(self.edge_channels)

    @property
    def tp_irreps(self) -> e3nn.Irreps:
        return hidden_irreps(self.tp_channels)

    @property
    def sh_irreps(self) -> e3nn.Irreps:
        return e3nn.Irreps.spherical_harmonics(self.lmax)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def replace(self, **kw) -> "ModelConfig":
        return replace(self, **kw)


def larger() -> ModelConfig:
    """More channels and a 4th layer: a few M parameters, about 3-4x the cost per edge."""
    return ModelConfig(node_channels=(96, 32, 16, 8, 8), edge_channels=(96, 32, 16, 16, 8),
                       tp_channels=(32, 16, 8, 8, 4), num_layers=4, radial_hidden=64)


def tiny() -> ModelConfig:
    """A very small config for fast CPU tests."""
    return ModelConfig(num_radial=6, node_channels=(8, 4, 2, 0, 0), edge_channels=(8, 4, 2, 2, 2),
                       tp_channels=(4, 2, 2, 0, 0), num_layers=2, radial_hidden=8, species_embed=4)


PRESETS = {"default": ModelConfig, "larger": larger, "tiny": tiny}
