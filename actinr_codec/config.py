"""Model and fitting settings: plain dataclasses, so they can be stored in a bitstream."""

from __future__ import annotations

from dataclasses import dataclass

ACTIVATIONS = ("sine", "gabor", "gaussian")


@dataclass(frozen=True)
class ModelConfig:
    """Shape of one GOP's ActINR model.

    The frame is cut into a grid of tiles of about ``tile`` pixels; each tile has
    its own small coordinate network (``depth`` hidden layers of ``width``) and
    covers ``overlap`` extra source pixels on each side, where neighbours blend.
    The bias network maps ``n_freqs`` Fourier features of time plus a per-tile
    latent of ``latent_dim`` through ``bias_hidden`` units to every bias.
    """

    tile: int = 32
    overlap: int = 2
    width: int = 24
    depth: int = 3
    activation: str = "sine"
    omega: float = 12.0
    gabor_scale: float = 4.0
    n_freqs: int = 6
    max_freq: float = 0.1
    bias_hidden: int = 32
    latent_dim: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        # Upper bounds keep a decoder from building absurd models out of a hostile header.
        limits = {"tile": (4, 4096), "width": (1, 256), "depth": (1, 8), "n_freqs": (1, 64),
                  "bias_hidden": (1, 512), "latent_dim": (1, 128)}
        for name, (lo, hi) in limits.items():
            if not lo <= getattr(self, name) <= hi:
                raise ValueError(f"{name} must lie in {lo}..{hi}, got {getattr(self, name)}")
        for name in ("omega", "gabor_scale"):
            if not 0.0 < getattr(self, name) <= 1000.0:
                raise ValueError(f"{name} must lie in (0, 1000]")
        if self.overlap < 0 or 2 * self.overlap >= self.tile:
            raise ValueError("overlap must be >= 0 and smaller than half a tile")
        if not 0.0 < self.max_freq <= 0.5:
            raise ValueError("max_freq is in cycles per frame and must lie in (0, 0.5]")


@dataclass(frozen=True)
class FitConfig:
    """Budget and optimiser settings for fitting one GOP.

    Fitting stops at whichever comes first: ``iters`` steps, ``seconds`` of wall
    time, or a running PSNR estimate reaching ``target_psnr``. Each step draws ``points``
    pixels in every tile, used in every frame of the GOP: tiles are independent networks,
    so each one then learns at the same pace whatever the frame size, and a step count
    means the same fit at any resolution (a step's cost grows with the tile count).
    ``native`` computes each step's tile networks with the C kernel of kernel.py where it
    applies (CPU, sine activation, a working C compiler); otherwise ``compile`` runs them
    through torch.compile: faster steps after a one-off compile of some seconds, worth it
    for whole videos, not for tiny fits.
    """

    iters: int = 2000
    seconds: float | None = None
    target_psnr: float | None = None
    lr: float = 5e-3
    lr_final: float = 0.05
    points: int = 64
    seed: int = 0
    warm_start: bool = True
    warm_lr_scale: float = 1 / 3
    check_every: int = 50
    compile: bool = False
    native: bool = True
