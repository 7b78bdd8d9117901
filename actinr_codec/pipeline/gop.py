"""Cutting a video into groups of pictures (GOPs) that share their boundary frames.

GOP k covers frames [start_k, stop_k); the last frame of one GOP is the first of the next,
so both models know the boundary and time is continuous across it. Time is global: any
real t in [0, frames - 1] is served by exactly one GOP, the last one starting at or before t.
"""

from __future__ import annotations

import bisect

# Longest GOP the encoder accepts (frames).
MAX_GOP = 1024


def split_gops(n_frames: int, gop_size: int) -> list[range]:
    """Frame ranges of the GOPs of an n-frame video, each at most gop_size frames long."""
    if n_frames < 1:
        raise ValueError("a video needs at least one frame")
    if gop_size < 2:
        raise ValueError("gop_size must be at least 2 (GOPs share their boundary frame)")
    gops, start = [], 0
    while True:
        stop = min(start + gop_size, n_frames)
        gops.append(range(start, stop))
        if stop >= n_frames:
            return gops
        start = stop - 1


def gop_for_time(gops: list[range], t: float) -> int:
    """Index of the GOP that serves global frame time t."""
    last = gops[-1].stop - 1
    if not 0.0 <= t <= last:
        raise ValueError(f"time {t} lies outside the video's frames 0..{last}")
    starts = [g.start for g in gops]
    return bisect.bisect_right(starts, t) - 1
