"""Named speed presets and the integer quality scale, mapped to encoder settings.

Like x264: ``preset`` trades encoding time for quality at a given size; ``quality`` is a
small crf-like integer where lower means better pictures and bigger files. Quality sets
the network width (parameters per tile) and the quantization precision.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .codec import EncodeSettings
from .config import FitConfig, ModelConfig


@dataclass(frozen=True)
class Preset:
    iters: int  # fitting steps per GOP
    seconds_per_frame: float  # wall-clock cap per GOP, per frame of that GOP
    qat_iters: int


PRESETS = {
    "fast": Preset(iters=1000, seconds_per_frame=2.0, qat_iters=100),
    "medium": Preset(iters=3000, seconds_per_frame=6.0, qat_iters=200),
    "slow": Preset(iters=10000, seconds_per_frame=20.0, qat_iters=400),
}

# quality -> (hidden width, bits per parameter); lower is better, like crf.
QUALITY = {
    0: (32, 10), 1: (32, 9), 2: (28, 8), 3: (24, 8), 4: (24, 7), 5: (20, 7),
    6: (16, 6), 7: (16, 5), 8: (12, 5), 9: (8, 5), 10: (8, 4),
}
DEFAULT_QUALITY = 4
DEFAULT_PRESET = "medium"
DEFAULT_GOP = 8


def settings_for(
    quality: int = DEFAULT_QUALITY, preset: str = DEFAULT_PRESET, gop_size: int = DEFAULT_GOP,
    seed: int = 0, model: ModelConfig = ModelConfig(), iters: int | None = None,
) -> EncodeSettings:
    """Encoder settings for a quality level, a preset name, a GOP length and a seed.

    iters overrides the preset's fitting steps per GOP (its time cap still applies).
    """
    if quality not in QUALITY:
        raise ValueError(f"quality must lie in {min(QUALITY)}..{max(QUALITY)}")
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}")
    width, bits = QUALITY[quality]
    p = PRESETS[preset]
    return EncodeSettings(
        model=dataclasses.replace(model, width=width, seed=seed),
        fit=FitConfig(iters=iters or p.iters, seconds=p.seconds_per_frame * gop_size, seed=seed),
        gop_size=gop_size,
        bits=bits,
        qat_iters=min(p.qat_iters, iters or p.qat_iters),
    )
