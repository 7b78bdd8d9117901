"""Encoding frames as picture GOPs (format version 5): each frame fitted on its own as
latent grids under a context model, its networks quantized, coded as one picture.

This is the representation that codes a still picture below x264 intra's bits
(docs/experiments.md, issue 30's probes); frames are coded independently, as x264 with
keyint 1 codes them, so a video costs what its frames cost alone.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from bitstream.chunk import code_gop
from bitstream.pictures import PictureLayout, check_picture, latent_config
from bitstream.records import PICTURE, GOPRecord

from ..fitting.latents import LatentFitConfig, fit, quantize_networks
from ..media.frames import Frames
from ..metrics import psnr
from ..model.latents import LatentFrame
from ..model.pictures import picture_record, render_picture
from ..model.render import to_uint8
from ..runtime import kernel_threads, torch_threads
from .encoder import EncodedGOP, FitStats
from .options import EncodeOptions
from .presets import PRESETS, QUALITY

# Steps of a picture's fit per preset. medium's are the probes' (10000 at 176x144: 400 s on
# the 2-core reference machine, docs/performance.md).
PICTURE_STEPS = {"fast": 2500, "medium": 10000, "slow": 20000}
# quality q prices a bit at lambda = LAMBDA_4 * 10**((q - 4) / 4): quality 4 is the probes'
# 1e-3 (carphone frame 10: 0.74 bpp, 36.7 dB PSNR-YUV420), and each level about 1.2x the
# bits of the next (docs/experiments.md, "sixth probe").
LAMBDA_4 = 1e-3


# A picture's fit holds the whole frame's activations and their gradients: about this
# many bytes a pixel at the default sizes (peak resident memory of 30-step fits, 380 MB
# at 176x144 and 666 MB at 640x360, torch's own libraries included: 1.46 KB for each
# pixel more; docs/performance.md, "Pictures").
FIT_BYTES_PER_PIXEL = 1500
# Where "auto" leaves pictures to GOP models, whose fit draws a bounded sample of pixels.
MAX_FIT_BYTES = 4 << 30


def fit_memory(height: int, width: int) -> int:
    """Bytes a picture's fit of height x width pixels needs, about."""
    return FIT_BYTES_PER_PIXEL * height * width


# The context network's hidden layers: LatentFrame's is two deep.
CONTEXT_LAYERS = 2


def stream_config(cfg: LatentFitConfig) -> dict[str, object]:
    """What a latent file's configuration says of pictures fitted with cfg."""
    return latent_config(cfg.levels, cfg.hidden, cfg.depth, cfg.refine_layers, cfg.arm_hidden,
                         CONTEXT_LAYERS)


def new_model(cfg: LatentFitConfig, height: int, width: int) -> LatentFrame:
    """An unfitted picture of height x width with cfg's sizes (bicubic upsampling, the
    only kind a file holds)."""
    model = LatentFrame(height, width, cfg.levels, cfg.hidden, cfg.arm_hidden, cfg.depth,
                        cfg.refine_layers)
    model.floor = 2.0 ** -cfg.floor_bits
    return model


@dataclass(frozen=True)
class PictureSettings:
    """How each frame is fitted: the rate's price and the fit (sizes and schedule)."""

    lam: float
    fit: LatentFitConfig
    seed: int = 0


def picture_settings(options: EncodeOptions) -> PictureSettings:
    """The settings an encode's quality, preset, iters and seed give pictures."""
    if options.quality not in QUALITY:
        raise ValueError(f"quality must lie in {min(QUALITY)}..{max(QUALITY)}")
    if options.preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}")
    steps = options.iters or PICTURE_STEPS[options.preset]
    return PictureSettings(LAMBDA_4 * 10 ** ((options.quality - 4) / 4),
                           dataclasses.replace(LatentFitConfig(), iters=steps), options.seed)


def encode_picture(frame: np.ndarray, settings: PictureSettings, layout: PictureLayout,
                   device: str | torch.device = "cpu",
                   on_check: Callable[[int, float, float], None] | None = None
                   ) -> tuple[GOPRecord, FitStats]:
    """One (H, W, 3) uint8 frame as a picture GOP record (frames [0, 1)), checked against
    its file's layout, and what its fit measured (PSNR-RGB of the frame with its networks
    in float, then as it decodes); on_check as fitting.latents.fit's."""
    started = time.perf_counter()
    torch.manual_seed(settings.seed)
    height, width, _ = frame.shape
    cfg = settings.fit
    model = new_model(cfg, height, width)
    target = torch.from_numpy(np.ascontiguousarray(frame)).float() / 255
    # The fit runs on the device; quantization and coding on the CPU, as a decoder runs.
    fit(model.to(device), target.to(device), settings.lam, cfg.iters, cfg, on_check)
    model.cpu()
    with torch.no_grad():
        unquantized = _psnr(model.rgb(model.coded_latents("round")[0]).numpy(), target)
    _, steps = quantize_networks(model, target, settings.lam, cfg.chroma, cfg.tensor_steps,
                                 planes=cfg.planes)
    picture = picture_record(model, steps)
    check_picture(picture, layout)
    decoded = _psnr(render_picture(picture), target)
    params = sum(p.numel() for p in model.parameters())
    stats = FitStats(unquantized, decoded, decoded, time.perf_counter() - started, cfg.iters,
                     params, settings.lam)
    return GOPRecord(0, 1, [], PICTURE, None, picture), stats


def _psnr(rgb: np.ndarray, target: torch.Tensor) -> float:
    """PSNR-RGB of float RGB once rounded to 8 bits as a decoder rounds it."""
    return psnr(to_uint8(torch.from_numpy(rgb)).float() / 255, target)


def encode_pictures(frames: Frames, count: int, settings: PictureSettings,
                    layout: PictureLayout, device: str | torch.device,
                    on_gop: Callable[[int, EncodedGOP], None] | None = None,
                    on_check: Callable[[int, float, float], None] | None = None,
                    threads: int | None = None, done: dict[int, EncodedGOP] | None = None
                    ) -> list[EncodedGOP]:
    """Every frame of a source as a coded picture GOP, in order, but those in done (an
    interrupted encode's, by number), which are taken as they are; on_gop(k, report) after
    each fit, on_check during it (fitting.latents.fit's). The fits run torch on threads
    (runtime.kernel_threads's): they leave the native kernel idle."""
    reports = []
    for k in range(count):
        if done and k in done:
            reports.append(done[k])
            continue
        with torch_threads(kernel_threads(threads)):
            record, stats = encode_picture(frames(k, 1)[0], settings, layout, device, on_check)
        reports.append(EncodedGOP(stats, code_gop(k, dataclasses.replace(record, start=k,
                                                                       stop=k + 1))))
        if on_gop is not None:
            on_gop(k, reports[-1])
    return reports
