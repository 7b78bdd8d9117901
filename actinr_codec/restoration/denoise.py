"""Denoising while encoding: encoder settings that fit the signal under a known noise level.

A fitted network reproduces smooth, shared structure before it reproduces noise, so its
capacity decides how much noise it learns. Measured on carphone (frames 0-7, 3000 steps,
PSNR of the float fit against the clean frames; noisy input in the first column):

| noise RMS (8-bit) | noisy | width 24 | width 16 | width 12 |
|---|---|---|---|---|
| 5.6 | 34.21 | **36.21** | 34.31 | |
| 10.4 | 28.29 | **34.86** | 33.81 | 32.25 |
| 19.6 | 22.47 | 30.94 | **31.76** | 31.13 |
| 27.9 | 19.21 | 27.06 | 28.78 | **28.97** |

So the width the quality level asks for is kept up to FULL_WIDTH_SIGMA and shrunk in
proportion to 1 / sigma above it. A fit that overlearns shows it: its training error
drops below the noise variance (at the best widths above it stays within 0.1 dB of it,
while width 24 at 27.9 reached 0.5 dB below), so fitting also stops once the training
PSNR passes the noise's by STOP_MARGIN_DB.
"""

from __future__ import annotations

import dataclasses

from ..metrics import mse_to_psnr
from ..pipeline.settings import EncodeSettings

# Noise RMS, in [0, 1] units, up to which the quality level's width is kept.
FULL_WIDTH_SIGMA = 13 / 255
MIN_WIDTH = 8
STOP_MARGIN_DB = 0.3
# A denoised fit's error against the clean signal, as a fraction of the noise variance:
# 0.10 at 27.9 levels of noise, 0.12 at 19.6, 0.22 at 10.4 (best widths above).
# Quantization noise is held noise_db below it, as it is held below a clean fit's own
# error; counting from the fit's error against the noisy input instead would let rounding
# add almost the noise variance again. Measured (carphone 0-7, quality 4, noise RMS 27.9,
# clean PSNR of the decoded GOP): from the fit's own error 25.63 dB at 0.246 bpp, from
# 0.15 sigma^2 28.19 dB at 0.337 bpp, from 0.05 sigma^2 28.66 dB at 0.388 bpp.
DENOISED_ERROR = 0.15


def denoise_settings(settings: EncodeSettings, sigma: float) -> EncodeSettings:
    """Settings that fit the signal under additive noise of RMS ``sigma`` (in [0, 1])."""
    if not 0 < sigma < 1:
        raise ValueError(f"noise level must lie in (0, 1), got {sigma}")
    variance = sigma * sigma
    width = settings.model.width
    if sigma > FULL_WIDTH_SIGMA:
        width = max(min(width, MIN_WIDTH), round(width * FULL_WIDTH_SIGMA / sigma))
    return dataclasses.replace(
        settings,
        model=dataclasses.replace(settings.model, width=width),
        fit=dataclasses.replace(settings.fit,
                                target_psnr=mse_to_psnr(variance) + STOP_MARGIN_DB),
        signal_mse=DENOISED_ERROR * variance,
    )
