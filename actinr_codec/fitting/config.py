"""Budget and optimiser settings for fitting one GOP."""

from __future__ import annotations

from dataclasses import dataclass

# The fewest frames one fitting step takes while a GOP has more (FitConfig.groups).
MIN_STEP_FRAMES = 6


@dataclass(frozen=True)
class FitConfig:
    """Budget and optimiser settings for fitting one GOP.

    Fitting stops at whichever comes first: ``iters`` steps, ``seconds`` of wall
    time, or a running PSNR estimate reaching ``target_psnr``. Each step draws ``points``
    pixels in every tile, used in every frame of one of ``groups(n)`` interleaved groups
    of the GOP's n frames (frames g, g + groups, ...), the groups taken in turn: tiles are
    independent networks, so each one then learns at the same pace whatever the frame
    size, and a step count means the same fit at any resolution (a step's cost grows with
    the tile count).
    ``native`` computes each step's tile networks with the C kernel of native/kernel.py
    where it applies (CPU, sine activation, a working C compiler); otherwise ``compile``
    runs them through torch.compile: faster steps after a one-off compile of some seconds,
    worth it for whole videos, not for tiny fits.
    A cold fit's displacement head (ModelConfig.motion) learns only after the first
    ``motion_from`` of the steps: moving the coordinates of tile networks that do not yet
    draw the picture shook the early fit, and once the price starts (at a running PSNR
    that set too high a price) it could stay there: carphone at a quarter size (17 frames
    of 44x36, quality 4) fitted 24.8 dB with the head learning from the start, 30.9 held
    back to 0.2, 31.0 without a head (docs/design.md, "Motion in the biases").
    """

    iters: int = 2000
    seconds: float | None = None
    target_psnr: float | None = None
    lr: float = 5e-3
    lr_final: float = 0.05
    # About one pixel in 20 of a default (40 px) tile per step, and three whole blocks of
    # the native kernel (32 points): 100 points cost 6 % more time for a fourth, padded block.
    points: int = 96
    # Neighbouring frames at the same points give nearly the same gradient: four times the
    # steps on a quarter of the frames each fit better for the same work (carphone, 48
    # frames, quality 4: 34.44 dB / 0.199 bpp against 34.03 / 0.217; docs/design.md).
    frame_groups: int = 4
    seed: int = 0
    warm_start: bool = True
    warm_lr_scale: float = 1 / 3
    check_every: int = 50
    compile: bool = False
    native: bool = True
    motion_from: float = 0.2  # a fraction of iters

    def groups(self, n_frames: int) -> int:
        """Interleaved frame groups a GOP of n_frames is fitted in: frame_groups, as long
        as each keeps MIN_STEP_FRAMES frames. Fewer frames a step tear the shared weights
        between frames: on carphone's 24-25-frame GOPs six groups (4 frames a step) fell to
        32.80 dB / 0.149 bpp from four groups' 34.44 / 0.199, and a 5-frame GOP (city,
        every 4th of 17 frames) fitted 25.1 dB / 0.273 bpp in four groups of one or two
        frames, 27.8 / 0.358 in one (docs/design.md)."""
        return max(1, min(self.frame_groups, n_frames // MIN_STEP_FRAMES))
