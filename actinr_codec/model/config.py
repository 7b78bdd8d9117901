"""The shape of a GOP's model, and the types and ranges of each setting.

KEYS is the one source of every setting's type and range: ModelConfig checks itself
against it, the bitstream's model layer (schema.py, docs/bitstream.md) reads and writes
exactly these keys, and the native kernel is built for the deepest model it allows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ACTIVATIONS = ("sine", "gabor", "gaussian")


@dataclass(frozen=True)
class Key:
    """One model setting: its type and its allowed values (numbers: lo <= v <= hi, with
    lo excluded when lo_open), and the first format version that stores it, with the
    value that files of earlier versions, which lack it, mean."""

    name: str
    kind: type
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    choices: tuple[str, ...] = ()
    since: int = 1
    absent: object = None

    def check(self, value: object) -> None:
        """ValueError unless value has this key's type and lies in its range."""
        if self.kind is str:
            if not isinstance(value, str) or value not in self.choices:
                raise ValueError(f"{self.name} must be one of {self.choices}, got {value!r}")
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                self.kind is int and not isinstance(value, int)):
            raise ValueError(f"{self.name} must be {'an integer' if self.kind is int else 'a number'}"
                             f", got {value!r}")
        # NaN fails no comparison, so the range checks below would let it through.
        if not math.isfinite(value):
            raise ValueError(f"{self.name} must be a finite number, got {value!r}")
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            raise ValueError(f"{self.name} must lie in {self.range_text()}, got {value}")
        if self.hi is not None and value > self.hi:
            raise ValueError(f"{self.name} must lie in {self.range_text()}, got {value}")

    def range_text(self) -> str:
        if self.lo_open:
            return f"({self.lo:g}, {self.hi:g}]"
        return f"{self.lo:g}..{self.hi:g}"


# Upper bounds keep a decoder from building absurd models out of a hostile header.
MAX_DEPTH = 8
MIN_SCALE = 1e-30
KEYS = (
    Key("tile", int, 4, 4096),
    Key("overlap", int, 0, 2047),  # and 2 * overlap < tile
    Key("width", int, 1, 256),
    Key("depth", int, 1, MAX_DEPTH),
    Key("activation", str, choices=ACTIVATIONS),
    # The model computes with factors up to 1000 / scale in float32, which overflow below
    # about 3e-36 (torch then refuses to build it); useful scales are near 1-100.
    Key("omega", float, MIN_SCALE, 1000.0),
    Key("gabor_scale", float, MIN_SCALE, 1000.0),
    Key("n_freqs", int, 1, 64),
    Key("max_freq", float, 0.0, 0.5, lo_open=True),
    Key("bias_hidden", int, 1, 512),
    Key("latent_dim", int, 1, 128),
    Key("seed", int, -(2**63), 2**63 - 1),
    Key("motion", int, 0, 1, since=3, absent=0),
)


@dataclass(frozen=True)
class ModelConfig:
    """Shape of one GOP's ActINR model.

    The frame is cut into a grid of tiles of about ``tile`` pixels; each tile has
    its own small coordinate network (``depth`` hidden layers of ``width``) and
    covers ``overlap`` extra source pixels on each side, where neighbours blend.
    The bias network maps ``n_freqs`` Fourier features of time plus a per-tile
    latent of ``latent_dim`` through ``bias_hidden`` units to every bias.
    Tiles of 40 with 4 hidden layers cost 8-14 % fewer bits at equal PSNR than 32 with 3
    (docs/design.md, "Architecture for rate").
    ``motion`` 1 gives the bias network a displacement head: each tile's coordinates move
    by a 2-vector of time, a translation that in-between frames follow instead of
    cross-fading (network.py). On the 48-frame reference clips it cut BD-rate by 9.1 %
    on carphone and 3.2 % on city (docs/design.md, "Motion in the biases").
    """

    tile: int = 40
    overlap: int = 2
    width: int = 24
    depth: int = 4
    activation: str = "sine"
    omega: float = 12.0
    gabor_scale: float = 4.0
    n_freqs: int = 6
    max_freq: float = 0.1
    bias_hidden: int = 32
    latent_dim: int = 8
    seed: int = 0
    motion: int = 1

    def __post_init__(self) -> None:
        for key in KEYS:
            key.check(getattr(self, key.name))
        if 2 * self.overlap >= self.tile:
            raise ValueError("overlap must be smaller than half a tile")
