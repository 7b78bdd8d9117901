"""The encode command's work: fit every GOP, write the .anr file, print a summary."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import click
import numpy as np

from actinr_codec.codec import EncodeSettings, GOPReport, write_video
from actinr_codec.gop import split_gops
from actinr_codec.parallel import encode_gops
from actinr_codec.runtime import resolve_device

from .progress import GOPProgress

MAX_FPS_TERM = 1 << 31


def run_encode(video: np.ndarray, output: Path, settings: EncodeSettings, fps: Fraction,
               device: str, jobs: int) -> list[GOPReport]:
    """Encode (N, H, W, 3) uint8 frames at the given rate into ``output``."""
    n, height, width, _ = video.shape
    fps = fps.limit_denominator(MAX_FPS_TERM - 1)
    gops = split_gops(n, settings.gop_size)
    dev = resolve_device(device)
    progress = GOPProgress(len(gops), settings.fit.iters, settings.fit.seconds)
    click.echo(f"actinr: {width}x{height}, {n} frames at {fps} fps, {len(gops)} GOPs, "
               f"device {dev}, {jobs} job(s)", err=True)

    def on_gop(k: int, report: GOPReport) -> None:
        progress.start_gop(k)
        progress.done_gop(f"frames {report.frames.start}-{report.frames.stop - 1}, "
                          f"{report.psnr:.2f} dB (float {report.psnr_float:.2f}), "
                          f"{report.iters} steps in {report.seconds:.1f}s")
        progress.start_gop(k + 1)

    reports = encode_gops(video, gops, settings, jobs, dev, on_gop, progress.check)
    size = write_video(output, video.shape, (fps.numerator, fps.denominator), settings, reports)
    bpp = size * 8 / (width * height * n)
    mean_psnr = float(np.mean([r.psnr for r in reports]))
    click.echo(f"wrote {output}: {size} bytes, {bpp:.4f} bpp, mean GOP PSNR {mean_psnr:.2f} dB",
               err=True)
    return reports
