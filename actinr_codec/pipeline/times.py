"""Which frames a decode renders: output times and rate from playback options, and the size."""

from __future__ import annotations

import math
from fractions import Fraction


def output_times(frames: int, fps: Fraction, fps_scale: float | None = None,
                 out_fps: Fraction | None = None, start: float | None = None,
                 end: float | None = None) -> tuple[list[float], Fraction]:
    """Source frame times to render, and the output frame rate.

    fps_scale F samples F times as densely and keeps the rate (slow motion); out_fps R
    resamples to rate R (same duration). Output frames sit on a grid anchored at time 0,
    so a cut keeps the source's own frame times; as with ffmpeg's -ss/-to, start is
    inclusive and end (seconds) exclusive.
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
        raise ValueError(f"no output frames between start and end in this "
                         f"{duration:.3f}s video")
    return [float(k * step) for k in range(first, last + 1)], rate


def _exact(value: float) -> Fraction:
    """The decimal the user typed (0.05 is 1/20, not the nearest binary fraction)."""
    return Fraction(str(value))


def output_size(height: int, width: int, scale: float | None,
                size: tuple[int, int] | None) -> tuple[int, int]:
    """(height, width) of the output frames; size is (width, height) like ffmpeg's WxH."""
    if size is not None:
        return size[1], size[0]
    if scale is None:
        return height, width
    return max(1, round(height * scale)), max(1, round(width * scale))
