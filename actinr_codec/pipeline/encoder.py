"""From frames to GOP records and an .anr file: fit each GOP, quantize it, hand it to the bitstream.

Encoding one GOP: fit in float, pick one quantization step per tensor, fine-tune briefly
with the rounding in the loop (quantization-aware), keep whichever of plain or fine-tuned
rounding reconstructs better, and store the integer symbols. Decoding (decoder.py)
rebuilds the models from symbols and steps alone, so a decoder computes exactly what the
encoder measured.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from bitstream.records import GOPRecord, TensorRecord

from ..fitting.fit import fit_gop, reconstruction_psnr, warm_start_config
from ..model.network import GOPModel
from ..model.schema import load_tensors, model_tensors
from ..quantization.quantize import allocate_steps, dequantize, quantize
from ..quantization.sensitivity import output_sensitivity
from .settings import EncodeSettings


@dataclass
class GOPReport:
    """What encoding one GOP measured (PSNR in dB over its frames)."""

    frames: range
    psnr_float: float
    psnr_quantized: float  # plain rounding of the float fit
    psnr: float  # what the stream decodes to
    seconds: float
    iters: int
    params: int
    record: GOPRecord = field(repr=False)


def encode_gop(
    clip: torch.Tensor, settings: EncodeSettings, init: dict[str, torch.Tensor] | None = None,
    device: str | torch.device | None = None,
    on_check: Callable[[int, float, float], None] | None = None,
    weight: torch.Tensor | None = None,
) -> tuple[GOPReport, GOPModel]:
    """Fit and quantize one GOP of frames (F, H, W, 3) in [0, 1], warm-started from init.

    weight: optional (F, H, W) loss weights, 0 for unknown pixels, which the model fills;
    the PSNRs reported and compared are then over the known pixels. The rounding is still
    allocated by the output's sensitivity over every pixel, since filled pixels are
    decoded too.
    """
    fit_cfg = settings.fit if init is None else warm_start_config(settings.fit)
    fitted = fit_gop(clip, settings.model, fit_cfg, init=init, pixel_weight=weight,
                     device=device, on_check=on_check)
    state = model_tensors(fitted.model)
    reference_mse = 10 ** (-fitted.psnr / 10)
    if settings.signal_mse is not None:
        reference_mse = min(reference_mse, settings.signal_mse)
    noise_mse = reference_mse * 10 ** (-settings.noise_db / 10)
    steps = allocate_steps(state, output_sensitivity(fitted.model, clip), noise_mse)
    rounded = GOPModel(settings.model, clip.shape[1], clip.shape[2]).to(fitted.model.weights[0].device)
    load_tensors(rounded, dequantize(quantize(state, steps), steps))
    psnr_quantized = reconstruction_psnr(rounded, clip, weight)
    best, best_psnr, seconds, iters = rounded, psnr_quantized, fitted.seconds, fitted.iters
    if settings.qat_iters > 0:
        qat_cfg = dataclasses.replace(
            settings.fit, iters=settings.qat_iters, seconds=None, target_psnr=None,
            lr=settings.fit.lr * settings.qat_lr_scale,
        )
        tuned = fit_gop(clip, settings.model, qat_cfg, init=state, pixel_weight=weight,
                        device=device, quant_steps=steps)
        seconds, iters = seconds + tuned.seconds, iters + tuned.iters
        if tuned.psnr > best_psnr:
            best, best_psnr = tuned.model, tuned.psnr
    symbols = quantize(model_tensors(best), steps)
    report = GOPReport(
        frames=range(0), psnr_float=fitted.psnr, psnr_quantized=psnr_quantized, psnr=best_psnr,
        seconds=seconds, iters=iters, params=sum(s.size for s in symbols.values()),
        record=GOPRecord(0, 0, [TensorRecord(n, tuple(x.shape), steps[n], x) for n, x in symbols.items()]),
    )
    return report, best


def encode_segment(
    frames: np.ndarray, gops: list[range], settings: EncodeSettings,
    device: str | torch.device | None = None,
    on_gop: Callable[[int, GOPReport], None] | None = None,
    on_check: Callable[[int, float, float], None] | None = None,
    offset: int = 0,
    mask: np.ndarray | None = None,
) -> list[GOPReport]:
    """Encode consecutive GOPs of a video, each warm-starting the next.

    frames: (N, H, W, 3) uint8 holding video frames offset, offset + 1, ...
    mask: optional (N, H, W) bool of the same frames, True where a pixel is unknown.
    """
    reports, prev = [], None
    for k, gop in enumerate(gops):
        part = slice(gop.start - offset, gop.stop - offset)
        clip = torch.from_numpy(np.ascontiguousarray(frames[part])).float() / 255
        weight = None if mask is None else torch.from_numpy(~mask[part]).float()
        init = model_tensors(prev) if settings.fit.warm_start and prev is not None else None
        report, prev = encode_gop(clip, settings, init=init, device=device, on_check=on_check,
                                  weight=weight)
        report.frames = gop
        report.record.start, report.record.stop = gop.start, gop.stop
        reports.append(report)
        if on_gop is not None:
            on_gop(k, report)
    return reports
