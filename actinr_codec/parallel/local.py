"""Fitting a video's warm-start segments in local processes (or in this one, for one job)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np
import torch

from ..pipeline.encoder import GOPReport, encode_segment
from ..pipeline.gop import GOPPlan
from ..pipeline.settings import EncodeSettings
from .segments import SegmentResults, fit_segment, plan_segments, segment_frames


def _shifted(on_gop: Callable[[int, GOPReport], None] | None, first: int):
    """on_gop for a segment whose first GOP is video GOP ``first``."""
    if on_gop is None:
        return None
    return lambda k, report: on_gop(first + k, report)


def encode_gops(
    frames: np.ndarray, plan: GOPPlan, settings: EncodeSettings, jobs: int = 1,
    device: str | torch.device | None = None,
    on_gop: Callable[[int, GOPReport], None] | None = None,
    on_check: Callable[[int, float, float], None] | None = None,
    segment: int | None = None,
    mask: np.ndarray | None = None,
) -> list[GOPReport]:
    """Encode every GOP of (N, H, W, 3) uint8 frames with ``jobs`` processes; reports in order.

    segment: GOPs per segment (cut at intra GOPs); by default the GOPs are split evenly
    over the jobs.
    mask: optional (N, H, W) bool, True where a pixel is unknown.
    """
    segments = plan_segments(plan, jobs, segment)
    workers = min(jobs, len(segments))
    if workers <= 1:
        # In this process, so that on_check can show live progress.
        reports: list[GOPReport] = []
        for seg in segments:
            reports += encode_segment(frames, seg.gops, settings, device,
                                      _shifted(on_gop, len(reports)), on_check, mask=mask,
                                      kinds=seg.kinds)
        return reports
    threads = max(1, (os.cpu_count() or 1) // workers)
    results = SegmentResults(segments, on_gop)
    # spawn, not fork: forking a process that already runs torch's thread pools can hang.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        futures = {pool.submit(fit_segment, segment_frames(frames, seg), seg, settings, device,
                               threads, None if mask is None else segment_frames(mask, seg)): i
                   for i, seg in enumerate(segments)}
        for future in as_completed(futures):
            results.add(futures[future], future.result())
    return results.in_order()
