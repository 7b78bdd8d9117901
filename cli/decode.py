"""The decode command's work: choose output times and size, render GOP by GOP, stream out."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import click
import numpy as np
import torch

from actinr_codec.codec import load_video
from actinr_codec.render import render_gop, to_uint8
from actinr_codec.runtime import resolve_device
from actinr_codec.video import VideoModel
from bitstream.container import AnrReader

from .videoio import VideoWriter

# Output frames rendered together, bounded by this many bytes of float RGB.
BATCH_BYTES = 32 << 20


def output_times(frames: int, fps: Fraction, fps_scale: float | None = None,
                 out_fps: Fraction | None = None, start: float | None = None,
                 end: float | None = None) -> tuple[list[float], Fraction]:
    """Source frame times to render, and the output frame rate.

    --fps-scale F samples F times as densely and keeps the rate (slow motion); --fps R
    resamples to rate R (same duration). Output frames sit on a grid anchored at time 0,
    so a cut keeps the source's own frame times; as with ffmpeg's -ss/-to, --start is
    inclusive and --end (seconds) exclusive.
    """
    if fps_scale is not None:
        step, rate = 1 / _exact(fps_scale), fps
    elif out_fps is not None:
        step, rate = fps / out_fps, out_fps
    else:
        step, rate = Fraction(1), fps
    first = 0 if start is None else math.ceil(_exact(start) * fps / step)
    last = math.floor((frames - 1) / step)
    if end is not None:
        last = min(last, math.ceil(_exact(end) * fps / step) - 1)
    if first > last:
        duration = float(frames / fps)
        raise ValueError(f"no output frames between --start and --end in this "
                         f"{duration:.3f}s video")
    return [float(k * step) for k in range(first, last + 1)], rate


def _exact(value: float) -> Fraction:
    """The decimal the user typed (0.05 is 1/20, not the nearest binary fraction)."""
    return Fraction(str(value))


def output_size(height: int, width: int, scale: float | None,
                size: tuple[int, int] | None) -> tuple[int, int]:
    """(height, width) of the output frames."""
    if size is not None:
        return size[1], size[0]
    if scale is None:
        return height, width
    return max(1, round(height * scale)), max(1, round(width * scale))


def render_frames(video: VideoModel, times: list[float], height: int, width: int,
                  device: torch.device) -> Iterator[np.ndarray]:
    """(height, width, 3) uint8 RGB frames at the given global times, in order.

    Consecutive times of one GOP render together, in batches of bounded memory.
    """
    batch = max(1, BATCH_BYTES // (height * width * 12))
    groups: list[tuple[int, list[float]]] = []
    for t in times:
        k, local = video.locate(t)
        if groups and groups[-1][0] == k and len(groups[-1][1]) < batch:
            groups[-1][1].append(local)
        else:
            groups.append((k, [local]))
    for k, locals_ in groups:
        model = video.models[k].to(device)
        yield from to_uint8(render_gop(model, torch.tensor(locals_), height, width)).numpy()


def run_decode(source: Path, output: str, scale: float | None, size: tuple[int, int] | None,
               fps_scale: float | None, fps: Fraction | None, start: float | None,
               end: float | None, lossless: bool, device: str) -> int:
    """Decode ``source`` into ``output``; returns the number of frames written."""
    with AnrReader(source) as reader:
        info = reader.info
        rate = Fraction(info.fps_num, info.fps_den)
        times, out_rate = output_times(info.frames, rate, fps_scale, fps, start, end)
        needed = reader.gops_for_range(times[0], times[-1])
    height, width = output_size(info.height, info.width, scale, size)
    _, video = load_video(source, gops=needed)
    start_time = time.perf_counter()
    with VideoWriter(output, width, height, out_rate, lossless=lossless) as writer:
        for frame in render_frames(video, times, height, width, resolve_device(device)):
            writer.write(frame)
    seconds = time.perf_counter() - start_time
    click.echo(f"wrote {output}: {len(times)} frames, {width}x{height} at {out_rate} fps "
               f"in {seconds:.2f}s ({len(times) / seconds:.1f} frames/s)", err=True)
    return len(times)
