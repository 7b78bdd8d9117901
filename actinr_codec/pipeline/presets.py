"""Named speed presets and the integer quality scale, mapped to encoder settings.

Like x264: ``preset`` trades encoding time for quality at a given size; ``quality`` is a
small crf-like integer where lower means better pictures and bigger files. Quality sets
the network width (parameters per tile) and the price of a bit in the fit.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..fitting.config import FitConfig
from .options import EncodeOptions
from .settings import EncodeSettings


@dataclass(frozen=True)
class Preset:
    """Fitting steps per GOP (each draws FitConfig.points pixels per tile in a quarter of
    its frames, or all of a short GOP's, FitConfig.groups), and a wall-clock cap per GOP
    in seconds per megapixel of its frames.

    Steps mean the same fit at any frame size; the cap only guards against a slow machine
    (on the 2-core reference machine medium's steps take about a third of its cap). Small
    frames get at least MIN_CAP_SECONDS, since a step also has a fixed cost.
    """

    iters: int
    seconds_per_mpixel: float
    qat_iters: int


PRESETS = {
    "fast": Preset(iters=2500, seconds_per_mpixel=100.0, qat_iters=100),
    "medium": Preset(iters=8000, seconds_per_mpixel=300.0, qat_iters=200),
    "slow": Preset(iters=25000, seconds_per_mpixel=1000.0, qat_iters=400),
}

# quality -> (hidden width, rate weight); lower is better, like crf. The rate weight is
# the bits' price in the fit (EncodeSettings.rate_weight): with it the fit itself decides
# which parameters are worth their bits, so it, not the rounding, sets the size within a
# width, and each width has a range of weights where it is the most efficient (about 8-32;
# below, a wider network pays better, above, a narrower one). docs/design.md, "Quality
# scale", has the measurements; each level costs about 1.3x the bits of the next.
QUALITY = {
    0: (40, 4.0), 1: (32, 4.0), 2: (32, 8.0), 3: (24, 8.0), 4: (24, 16.0), 5: (20, 16.0),
    6: (16, 16.0), 7: (16, 32.0), 8: (12, 32.0), 9: (8, 32.0), 10: (8, 128.0),
}
MIN_QUALITY, MAX_QUALITY = min(QUALITY), max(QUALITY)
# Networks wider than this fit at WIDE_LR_SCALE of the learning rate: on carphone (48
# frames, medium, price 4) width 40 at the usual rate reached less PSNR than width 32 and
# collapsed when given 6000 steps, and at half the rate fitted past it; since steps fit a
# quarter of the frames, width 32 also fell 5 dB after its first 600 steps at the usual
# rate (quality 2: 31.0 dB / 0.214 bpp), and at half the rate fitted to 36.6 / 0.383
# (docs/design.md).
WIDE = 24
WIDE_LR_SCALE = 0.5
MIN_CAP_SECONDS = 30.0
# Pixel evaluations in one GOP's fit (steps x points per tile x tiles x frames) from which
# torch.compile pays for itself: its one-off compile takes 10-25 s and saves about a third
# of every step, and this many evaluations take about 40 s eagerly on the reference machine.
COMPILE_MIN_EVALUATIONS = 100_000_000
# Time frequencies per frame of a long GOP (temporal_frequencies), and the most used.
FRAMES_PER_FREQ = 4
MAX_FREQS = 16
def temporal_frequencies(n_freqs: int, gop_size: int) -> int:
    """Time frequencies for GOPs of gop_size frames: the model's own for short GOPs, one per
    FRAMES_PER_FREQ frames for long ones (at most MAX_FREQS), so that a long GOP's biases
    can follow about as many changes per frame as a short one's."""
    return min(max(n_freqs, math.ceil(gop_size / FRAMES_PER_FREQ)), MAX_FREQS)


def settings_for(frame_pixels: int, options: EncodeOptions = EncodeOptions()) -> EncodeSettings:
    """Encoder settings for frames of frame_pixels (width * height) pixels and what an
    encode asks for (quality, preset, GOP length, seed, keyint and scenecut as x264's,
    model, iters, native, compile): the one builder of settings.

    The preset's time cap scales with frame_pixels; iters overrides its fitting steps
    per GOP (the time cap still applies). native: fit with the C kernel where it applies.
    compile: otherwise fit through torch.compile; by default when a GOP's fit is long
    enough to repay the compile time.
    """
    quality, preset, gop_size, iters = options.quality, options.preset, options.gop, options.iters
    if quality not in QUALITY:
        raise ValueError(f"quality must lie in {min(QUALITY)}..{max(QUALITY)}")
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}")
    width, rate_weight = QUALITY[quality]
    p = PRESETS[preset]
    steps = iters or p.iters
    model, compile = options.model, options.compile
    if compile is None:
        step_frames = math.ceil(gop_size / FitConfig().groups(gop_size))
        evaluations = steps * FitConfig.points * step_frames * frame_pixels / model.tile**2
        compile = evaluations >= COMPILE_MIN_EVALUATIONS
    return EncodeSettings(
        model=dataclasses.replace(model, width=width, seed=options.seed,
                                  n_freqs=temporal_frequencies(model.n_freqs, gop_size)),
        fit=FitConfig(iters=steps, seed=options.seed, compile=compile, native=options.native,
                      lr=FitConfig.lr * (WIDE_LR_SCALE if width > WIDE else 1.0),
                      seconds=max(MIN_CAP_SECONDS,
                                  p.seconds_per_mpixel * gop_size * frame_pixels / 1e6)),
        gop_size=gop_size,
        rate_weight=rate_weight,
        intra_rate_weight=rate_weight,
        qat_iters=min(p.qat_iters, iters or p.qat_iters),
        keyint=options.keyint,
        scenecut=options.scenecut,
    )
