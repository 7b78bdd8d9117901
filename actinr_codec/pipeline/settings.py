"""What an encode is asked for: the settings that decide the bits."""

from __future__ import annotations

from dataclasses import dataclass

from ..fitting.config import FitConfig
from ..model.config import ModelConfig


@dataclass(frozen=True, kw_only=True)
class EncodeSettings:
    """Everything that decides the bits: model shape, fitting budget, GOP length, precision.
    Built from what an encode asks for by presets.settings_for (the model, fit, GOP and
    keyframe fields have no defaults of their own, so that none can differ from the
    product's, pipeline.options.EncodeOptions).

    noise_db: parameters are rounded so coarsely that the error rounding adds to the output
    lies this many dB below the float fit's own error (6 dB costs about 1 dB of PSNR).
    signal_mse: the error that noise_db counts from instead of the fit's, when the fit's
    error is not the picture's: fitted to a noisy input, it is mostly the noise
    (``restoration.denoise_settings`` sets it).
    keyint: an intra GOP at least every this many frames; the GOPs between predict their
    parameters from the GOP before (1 makes every GOP intra).
    scenecut: start an intra GOP at each detected scene cut.
    rate_weight: how dearly a predicted GOP's fit prices moving a parameter away from its
    reference, in bits per quantization step moved (encoder.rate_weights): a nonzero
    residual among zeros costs several bits, and 8 measured best (docs/design.md).
    intra_rate_weight: the same price for an intra GOP's parameters against zero, from
    ``intra_price_from`` of its fit on, with steps provisionally allocated there
    (encoder.intra_prices); 0 fits for distortion alone.
    target_bpp: average-bitrate rate control (ratecontrol.py): bits per pixel of every
    GOP's frames to aim for, counting a frame shared by two GOPs twice; the two weights
    are then only where the price starts, and each GOP gets the price that spends the
    bits left. None: the weights as they are (constant quality).
    frame_times: each frame's time in the model, for a source whose frame rate varies
    (media.timing.model_clock), so that every frame is fitted at its true time; None:
    frame k at k.
    """

    model: ModelConfig
    fit: FitConfig
    gop_size: int
    noise_db: float = 6.0
    qat_iters: int = 200
    qat_lr_scale: float = 0.1
    signal_mse: float | None = None
    keyint: int
    scenecut: bool
    rate_weight: float = 8.0
    intra_rate_weight: float = 8.0
    intra_price_from: float = 0.2
    target_bpp: float | None = None
    frame_times: tuple[float, ...] | None = None
