"""The demo command: a generated clip, encoded and decoded at 2x scale and 2x slow motion."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import click
import numpy as np
import torch

import actinr_codec as actinr
from actinr_codec.media.videoio import VideoWriter
from actinr_codec.metrics import psnr

from .errors import refuse_overwrite
from .progress import EncodeProgress

SOURCE = "testsrc2=size=96x64:rate=25"
FRAMES = 15


def generated_clip(frames: int) -> np.ndarray:
    """A short clip from FFmpeg's testsrc2 generator, as (N, H, W, 3) uint8."""
    with av.open(SOURCE, format="lavfi") as container:
        out = [f.to_ndarray(format="rgb24") for _, f in zip(range(frames), container.decode(video=0))]
    return np.stack(out)


OUTPUTS = ("source.mkv", "demo.anr", "scale2.mp4", "slowmo2.mp4")


def run_demo(outdir: Path, preset: str, iters: int | None = None,
             overwrite: bool = False) -> None:
    """Write the demo's files (OUTPUTS) into outdir; files already there are replaced
    only with ``overwrite``, as every other output of the command."""
    for name in OUTPUTS:
        refuse_overwrite(outdir / name, overwrite)
    outdir.mkdir(parents=True, exist_ok=True)
    clip = generated_clip(FRAMES)
    n, h, w, _ = clip.shape
    source = outdir / "source.mkv"
    with VideoWriter(source, w, h, Fraction(25), lossless=True) as writer:
        for frame in clip:
            writer.write(frame)
    anr = outdir / "demo.anr"
    progress = EncodeProgress()
    actinr.encode(clip, anr, actinr.EncodeOptions(preset=preset, iters=iters), fps=25,
                  progress=progress)
    progress.finish()
    with actinr.open(anr) as video:
        decoded = video.render()
    quality = psnr(torch.from_numpy(decoded).float() / 255, torch.from_numpy(clip).float() / 255)
    big, slow = outdir / "scale2.mp4", outdir / "slowmo2.mp4"
    actinr.decode(anr, big, scale=2.0)
    actinr.decode(anr, slow, fps_scale=2.0)
    bpp = anr.stat().st_size * 8 / (w * h * n)
    click.echo(f"demo: {n} frames {w}x{h} ({SOURCE})")
    click.echo(f"  source      {source}")
    click.echo(f"  encoded     {anr}: {anr.stat().st_size} bytes, {bpp:.3f} bpp, PSNR {quality:.2f} dB")
    click.echo(f"  2x scale    {big}")
    click.echo(f"  2x slow-mo  {slow}")
