"""Cutting a video into groups of pictures (GOPs), and which are intra or predicted.

GOP k covers frames [start_k, stop_k). Within a scene the last frame of one GOP is the
first of the next, so both models know the boundary and time is continuous across it; at
a scene cut the next GOP starts on the cut's first frame instead. Time is global: any real
t in [0, frames - 1] is served by exactly one GOP, the last one starting at or before t.

A predicted GOP codes its parameters as residuals against the GOP before it; an intra GOP
starts a scene, and starts anew so that intra GOPs are never more than ``keyint`` frames
apart (x264's --keyint, a maximum), so that seeking never decodes more than that.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from bitstream.records import INTRA, PREDICTED

# Longest GOP the encoder accepts (frames).
MAX_GOP = 1024


def locate(gops: list[range], t: float,
           clock: tuple[float, ...] | None = None) -> tuple[int, float]:
    """The GOP serving global frame time t, and t relative to that GOP's first frame.
    clock: each frame's time, for a variable frame rate (media.timing.model_clock);
    without one frame k is at time k."""
    k = gop_for_time(gops, t, clock)
    return k, t - (gops[k].start if clock is None else clock[gops[k].start])


def gop_for_time(gops: list[range], t: float, clock: tuple[float, ...] | None = None) -> int:
    """Index of the GOP that serves global frame time t (frame k at clock[k], or k)."""
    last = gops[-1].stop - 1
    if not 0.0 <= t <= last:
        raise ValueError(f"time {t} lies outside the video's frames 0..{last}")
    starts = [g.start if clock is None else clock[g.start] for g in gops]
    return bisect.bisect_right(starts, t) - 1


@dataclass(frozen=True)
class GOPPlan:
    """Which frames each GOP covers and whether it is intra or predicted."""

    gops: list[range]
    kinds: list[int]

    def intra_runs(self) -> list[list[int]]:
        """GOP indices grouped into runs that each start at an intra GOP."""
        runs: list[list[int]] = []
        for k, kind in enumerate(self.kinds):
            if kind == INTRA:
                runs.append([])
            runs[-1].append(k)
        return runs


def split_scene(start: int, stop: int, gop_size: int) -> list[range]:
    """GOPs of at most gop_size frames covering [start, stop), sharing boundary frames, as
    equal in length as whole frames allow (no short tail GOP)."""
    frames = stop - start
    if frames < 1:
        raise ValueError("a video needs at least one frame")
    if gop_size < 2:
        raise ValueError("gop_size must be at least 2 (GOPs share their boundary frame)")
    if frames <= gop_size:
        return [range(start, stop)]
    count = math.ceil((frames - 1) / (gop_size - 1))
    bounds = [start + round(i * (frames - 1) / count) for i in range(count + 1)]
    return [range(a, b + 1) for a, b in zip(bounds, bounds[1:])]


def plan_gops(n_frames: int, gop_size: int, keyint: int, cuts: list[int] = ()) -> GOPPlan:
    """GOPs of an n-frame video: scenes split at ``cuts`` (each the first frame of a new
    scene), each scene into GOPs of at most gop_size frames; intra at each scene's start
    and at every GOP that would otherwise reach more than keyint frames past the last
    intra GOP's start.

    keyint is a maximum, as x264's: consecutive intra GOPs start at most keyint frames
    apart and the last one lies within keyint of the end, unless one GOP alone is longer
    (then every GOP is intra: keyint 1 means all intra; GOPs are not cut for it).
    """
    if keyint < 1:
        raise ValueError("keyint must be at least 1")
    edges = [0, *sorted(c for c in set(cuts) if 0 < c < n_frames), n_frames]
    gops, kinds, last_intra = [], [], None
    for a, b in zip(edges, edges[1:]):
        for k, gop in enumerate(split_scene(a, b, gop_size)):
            # A GOP starts on the one before's last frame, which still lay within keyint.
            intra = k == 0 or gop.stop - 1 - last_intra > keyint
            if intra:
                last_intra = gop.start
            gops.append(gop)
            kinds.append(INTRA if intra else PREDICTED)
    return GOPPlan(gops, kinds)
