"""From frames to an .anr file and back: fit each GOP, quantize it, hand it to the bitstream.

Encoding one GOP: fit in float, pick one quantization step per tensor, fine-tune briefly
with the rounding in the loop (quantization-aware), keep whichever of plain or fine-tuned
rounding reconstructs better, and store the integer symbols. Decoding rebuilds the models
from symbols and steps alone, so a decoder computes exactly what the encoder measured.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from bitstream.container import AnrReader, write_anr
from bitstream.errors import BitstreamError
from bitstream.records import GOPRecord, TensorRecord, VideoInfo

from .config import FitConfig, ModelConfig
from .fit import fit_gop, reconstruction_psnr, warm_start_config
from .model import GOPModel
from .quantize import allocate_steps, dequantize, quantize
from .sensitivity import output_sensitivity
from .video import VideoModel

# Most tiles a decoder will build for one frame size, whatever a header claims.
MAX_TILES = 1 << 16


@dataclass(frozen=True)
class EncodeSettings:
    """Everything that decides the bits: model shape, fitting budget, GOP length, precision.

    noise_db: parameters are rounded so coarsely that the error rounding adds to the output
    lies this many dB below the float fit's own error (6 dB costs about 1 dB of PSNR).
    signal_mse: the error that noise_db counts from instead of the fit's, when the fit's
    error is not the picture's: fitted to a noisy input, it is mostly the noise
    (``restoration.denoise_settings`` sets it).
    """

    model: ModelConfig = ModelConfig()
    fit: FitConfig = FitConfig()
    gop_size: int = 8
    noise_db: float = 6.0
    qat_iters: int = 200
    qat_lr_scale: float = 0.1
    signal_mse: float | None = None


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


def _config_dict(settings: EncodeSettings) -> dict[str, int | float | str]:
    return {**dataclasses.asdict(settings.model), "gop_size": settings.gop_size}


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
    state = fitted.model.state_dict()
    reference_mse = 10 ** (-fitted.psnr / 10)
    if settings.signal_mse is not None:
        reference_mse = min(reference_mse, settings.signal_mse)
    noise_mse = reference_mse * 10 ** (-settings.noise_db / 10)
    steps = allocate_steps(state, output_sensitivity(fitted.model, clip), noise_mse)
    rounded = GOPModel(settings.model, clip.shape[1], clip.shape[2]).to(fitted.model.weights[0].device)
    rounded.load_state_dict(dequantize(quantize(state, steps), steps))
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
    symbols = quantize(best.state_dict(), steps)
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
        init = prev.state_dict() if settings.fit.warm_start and prev is not None else None
        report, prev = encode_gop(clip, settings, init=init, device=device, on_check=on_check,
                                  weight=weight)
        report.frames = gop
        report.record.start, report.record.stop = gop.start, gop.stop
        reports.append(report)
        if on_gop is not None:
            on_gop(k, report)
    return reports


def write_video(path: str | Path, frames_shape: tuple[int, ...], fps: tuple[int, int],
                settings: EncodeSettings, reports: list[GOPReport]) -> int:
    """Write encoded GOPs into an .anr file; returns its size in bytes."""
    n, height, width = frames_shape[:3]
    info = VideoInfo(width=width, height=height, frames=n, fps_num=fps[0], fps_den=fps[1])
    return write_anr(path, info, _config_dict(settings), [r.record for r in reports])


def model_config_from(config: dict) -> tuple[ModelConfig, int]:
    """The model configuration and GOP length a stream declares; BitstreamError if invalid."""
    fields = {f.name: f.type for f in dataclasses.fields(ModelConfig)}
    try:
        kwargs = {name: config[name] for name in fields}
        cfg = ModelConfig(**kwargs)
        gop_size = int(config["gop_size"])
    except KeyError as exc:
        raise BitstreamError(f"model configuration lacks {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise BitstreamError(f"invalid model configuration: {exc}") from None
    return cfg, gop_size


def expected_shapes(cfg: ModelConfig, height: int, width: int) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of a GOP model, found without allocating its parameters."""
    with torch.device("meta"):
        model = GOPModel(cfg, height, width)
    if model.tiling.count > MAX_TILES:
        raise BitstreamError(f"{model.tiling.count} tiles exceeds the limit of {MAX_TILES}")
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def decode_gop(record: GOPRecord, cfg: ModelConfig, height: int, width: int,
               shapes: dict[str, tuple[int, ...]]) -> GOPModel:
    """Rebuild one GOP model from its record, checking it against the declared configuration."""
    got = {t.name: t for t in record.tensors}
    if set(got) != set(shapes):
        raise BitstreamError(f"GOP at frame {record.start}: tensors do not match the model")
    for name, shape in shapes.items():
        if tuple(got[name].shape) != shape:
            raise BitstreamError(f"GOP at frame {record.start}: tensor {name} has shape "
                                 f"{tuple(got[name].shape)}, expected {shape}")
    state = dequantize({n: t.symbols for n, t in got.items()}, {n: t.step for n, t in got.items()})
    model = GOPModel(cfg, height, width)
    model.load_state_dict(state)
    return model.eval()


def load_video(path: str | Path, gops: list[int] | None = None) -> tuple[VideoInfo, VideoModel]:
    """Read an .anr file into a renderable VideoModel (only the listed GOPs, if given)."""
    with AnrReader(path) as reader:
        info = reader.info
        cfg, _ = model_config_from(reader.config)
        shapes = expected_shapes(cfg, info.height, info.width)
        wanted = range(len(reader.index)) if gops is None else gops
        ranges = [range(e.start, e.stop) for e in reader.index]
        models = [None] * len(ranges)
        for k in wanted:
            models[k] = decode_gop(reader.read_gop(k), cfg, info.height, info.width, shapes)
    return info, VideoModel(info.height, info.width, info.frames, ranges, models)
