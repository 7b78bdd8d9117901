"""The encode command's work: fit every GOP, write the .anr file, print a summary."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import click
import numpy as np

from actinr_codec.codec import EncodeSettings, GOPReport, write_video
from actinr_codec.gop import split_gops
from actinr_codec.noise import estimate_noise
from actinr_codec.parallel import encode_gops
from actinr_codec.restoration import denoise_settings
from actinr_codec.runtime import resolve_device

from .progress import GOPProgress
from .videoio import VideoIOError, read_video

MAX_FPS_TERM = 1 << 31


@dataclass(frozen=True)
class SharedInput:
    """Frames of the source read where a cluster task runs; every worker sees ``path``.

    Called as (first, count) with frame numbers counted from ``start`` in the source, the
    first frame encoded, and checked against the frame size the client read.
    """

    path: str
    start: int
    height: int
    width: int

    def __call__(self, first: int, count: int) -> np.ndarray:
        frames, _ = read_video(self.path, self.start + first, count)
        if frames.shape[:3] != (count, self.height, self.width):
            raise VideoIOError(f"{self.path} on this worker gave {frames.shape[0]} frames of "
                               f"{frames.shape[2]}x{frames.shape[1]} from frame "
                               f"{self.start + first}, not {count} of {self.width}x{self.height}")
        return frames


def denoising(settings: EncodeSettings, video: np.ndarray, level: float,
              mask: np.ndarray | None = None) -> EncodeSettings:
    """Settings for --denoise ``level`` (8-bit levels); 0 estimates it from the frames to
    encode, leaving out a mask's unknown pixels."""
    if level == 0:
        level = float(np.sqrt(np.mean(estimate_noise(video, mask) ** 2))) * 255
        click.echo(f"actinr: estimated noise {level:.2f} (8-bit levels); "
                   f"--denoise {level:.2f} gives the same", err=True)
    return denoise_settings(settings, level / 255)


def run_encode(video: np.ndarray, output: Path, settings: EncodeSettings, fps: Fraction,
               device: str, jobs: int = 1, segment: int | None = None,
               scheduler: str | None = None, shared: SharedInput | None = None,
               mask: np.ndarray | None = None) -> list[GOPReport]:
    """Encode (N, H, W, 3) uint8 frames at the given rate into ``output``.

    segment: GOPs per warm-start segment. scheduler: a Dask scheduler address to fit the
    segments on instead of ``jobs`` local processes; shared: there, let workers read the
    frames themselves instead of receiving them. mask: (N, H, W) bool, True where a pixel
    is unknown (the fit ignores it and the decoded video fills it).
    """
    n, height, width, _ = video.shape
    fps = fps.limit_denominator(MAX_FPS_TERM - 1)
    gops = split_gops(n, settings.gop_size)
    progress = GOPProgress(len(gops), settings.fit.iters, settings.fit.seconds)
    if scheduler is None:
        dev = resolve_device(device)
        where = f"device {dev}, {jobs} job(s)"
    else:
        where = f"device {device} on the Dask cluster at {scheduler}"
    click.echo(f"actinr: {width}x{height}, {n} frames at {fps} fps, {len(gops)} GOPs, {where}",
               err=True)

    def on_gop(k: int, report: GOPReport) -> None:
        progress.start_gop(k)
        progress.done_gop(f"frames {report.frames.start}-{report.frames.stop - 1}, "
                          f"{report.psnr:.2f} dB (float {report.psnr_float:.2f}), "
                          f"{report.iters} steps in {report.seconds:.1f}s")
        progress.start_gop(k + 1)

    if scheduler is None:
        reports = encode_gops(video, gops, settings, jobs, dev, on_gop, progress.check, segment,
                              mask)
    else:
        from actinr_codec.cluster import encode_on_cluster

        reports = encode_on_cluster(scheduler, video if shared is None else shared, gops, settings,
                                    device, on_gop, segment, mask)
    size = write_video(output, video.shape, (fps.numerator, fps.denominator), settings, reports)
    bpp = size * 8 / (width * height * n)
    mean_psnr = float(np.mean([r.psnr for r in reports]))
    click.echo(f"wrote {output}: {size} bytes, {bpp:.4f} bpp, mean GOP PSNR {mean_psnr:.2f} dB",
               err=True)
    return reports
