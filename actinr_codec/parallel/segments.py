"""Warm-start segments: cutting a video's GOP chain into runs fitted as independent tasks.

Warm starts and predicted GOPs chain each GOP to its predecessor, so the chain is cut at
intra GOPs into contiguous segments that depend only on themselves; a segment is then a self-contained task
for a local process pool (``parallel``) or a Dask cluster (``cluster``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch

from ..media.frames import Frames
from ..pipeline.encoder import EncodedGOP, encode_segment
from ..pipeline.gop import GOPPlan
from ..pipeline.settings import EncodeSettings
from ..process import freeze_long_lived, kernel_cores, tune_allocator


def split_segments(plan: GOPPlan, parts: int) -> list[GOPPlan]:
    """Cut a GOP plan at intra GOPs into at most ``parts`` contiguous segments of near-equal
    frame counts.

    A GOP's fitting time grows with its frames, and the last GOP of a video is often
    short, so balancing GOP counts instead would leave one worker idle.
    """
    runs = plan.intra_runs()
    parts = max(1, min(parts, len(runs)))
    ends = list(itertools.accumulate(sum(len(plan.gops[k]) for k in run) for run in runs))
    cuts = [0]
    for i in range(1, parts):
        target = ends[-1] * i / parts
        nearest = min(range(len(ends)), key=lambda k: abs(ends[k] - target)) + 1
        # Every segment keeps at least one run.
        cuts.append(min(max(nearest, cuts[-1] + 1), len(runs) - (parts - i)))
    cuts.append(len(runs))
    return [_subplan(plan, [k for run in runs[a:b] for k in run])
            for a, b in zip(cuts, cuts[1:])]


def _subplan(plan: GOPPlan, indices: list[int]) -> GOPPlan:
    return GOPPlan([plan.gops[k] for k in indices], [plan.kinds[k] for k in indices])


def plan_segments(plan: GOPPlan, parts: int, length: int | None = None) -> list[GOPPlan]:
    """Segments of at least ``length`` GOPs each, cut at the first intra GOP from there on
    (the last may be shorter), or else ``parts`` even ones. A predicted GOP needs the GOP
    before it, so a segment always starts at an intra GOP."""
    if length is None:
        return split_segments(plan, parts)
    if length < 1:
        raise ValueError("a segment needs at least one GOP")
    segments: list[list[int]] = []
    for run in plan.intra_runs():
        if segments and len(segments[-1]) < length:
            segments[-1] += run
        else:
            segments.append(list(run))
    return [_subplan(plan, indices) for indices in segments]


def done_within(done: dict[int, EncodedGOP], first: int, count: int) -> dict[int, EncodedGOP]:
    """The already encoded GOPs of a segment of ``count`` GOPs from video GOP ``first``,
    numbered within the segment."""
    return {k - first: r for k, r in done.items() if first <= k < first + count}


def fit_segment(frames: Frames, segment: GOPPlan, settings: EncodeSettings,
                device: str | torch.device | None = None, threads: int | None = None,
                mask: Frames | None = None, done: dict[int, EncodedGOP] | None = None,
                first: int = 0, on_gop: Callable[[int, EncodedGOP], None] | None = None
                ) -> list[EncodedGOP]:
    """Encode one segment as a task; ``threads`` pins it to that many cores first.

    frames, mask: readers (media.frames) of the segment's frames and unknown-pixel mask,
    as ``part`` gives them, read where the task runs. done: the segment's GOPs already
    encoded by an interrupted run (by position in the segment), to carry on from. first:
    the video's number for the segment's first GOP.

    Pinning the cores makes the result independent of how many the process happens to
    see, so the same segment gives the same bits in a local pool and on a cluster worker.
    """
    # The task owns its worker process: it tunes it as the actinr command does its own.
    tune_allocator()
    freeze_long_lived()
    if threads is not None:
        threads = kernel_cores(device, threads)
    return encode_segment(frames, segment.gops, settings, device, on_gop=on_gop, mask=mask,
                          kinds=segment.kinds, done=done, first=first, threads=threads)


class SegmentResults:
    """Segment results arriving in any order: reported per GOP on arrival, returned in order."""

    def __init__(self, segments: list[GOPPlan],
                 on_gop: Callable[[int, EncodedGOP], None] | None = None):
        self.first = list(itertools.accumulate((len(s.gops) for s in segments), initial=0))
        self.on_gop = on_gop
        self.done: dict[int, list[EncodedGOP]] = {}

    def add(self, index: int, reports: list[EncodedGOP]) -> None:
        """Record segment ``index``'s reports, calling on_gop with video-wide GOP numbers."""
        self.done[index] = reports
        if self.on_gop is not None:
            for k, report in enumerate(reports):
                self.on_gop(self.first[index] + k, report)

    def in_order(self) -> list[EncodedGOP]:
        """Every GOP's report in video order; fails unless every segment was added."""
        if len(self.done) != len(self.first) - 1:
            raise RuntimeError(f"only {len(self.done)} of {len(self.first) - 1} segments finished")
        return [r for i in sorted(self.done) for r in self.done[i]]
