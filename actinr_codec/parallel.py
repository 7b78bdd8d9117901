"""Fitting a video's GOPs in parallel processes, as independent warm-start segments.

Warm starts chain each GOP to its predecessor, so the chain is cut into contiguous
segments; each segment runs in its own process and warm-starts only within itself.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Callable

import numpy as np
import torch

from .codec import EncodeSettings, GOPReport, encode_segment


def split_segments(gops: list[range], parts: int) -> list[list[range]]:
    """Cut a GOP list into at most ``parts`` contiguous segments of near-equal length."""
    parts = max(1, min(parts, len(gops)))
    bounds = [round(i * len(gops) / parts) for i in range(parts + 1)]
    return [gops[a:b] for a, b in zip(bounds, bounds[1:])]


def _start_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def encode_gops(
    frames: np.ndarray, gops: list[range], settings: EncodeSettings, jobs: int = 1,
    device: str | torch.device | None = None,
    on_gop: Callable[[int, GOPReport], None] | None = None,
    on_check: Callable[[int, float, float], None] | None = None,
) -> list[GOPReport]:
    """Encode every GOP of (N, H, W, 3) uint8 frames with ``jobs`` processes; reports in order."""
    if jobs <= 1 or len(gops) == 1:
        return encode_segment(frames, gops, settings, device, on_gop, on_check)
    segments = split_segments(gops, jobs)
    threads = max(1, (os.cpu_count() or 1) // len(segments))
    first_index = {id(seg): gops.index(seg[0]) for seg in segments}
    results: dict[int, list[GOPReport]] = {}
    # spawn, not fork: forking a process that already runs torch's thread pools can hang.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(len(segments), mp_context=ctx, initializer=_start_worker,
                             initargs=(threads,)) as pool:
        futures = {}
        for seg in segments:
            part = frames[seg[0].start : seg[-1].stop]
            futures[pool.submit(encode_segment, part, seg, settings, device, None, None,
                                seg[0].start)] = first_index[id(seg)]
        for future in as_completed(futures):
            first = futures[future]
            results[first] = future.result()
            if on_gop is not None:
                for i, report in enumerate(results[first]):
                    on_gop(first + i, report)
    return [r for first in sorted(results) for r in results[first]]
