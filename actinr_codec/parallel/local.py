"""Fitting a video's warm-start segments in local processes (or in this one, for one job)."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import queue
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

import torch

from ..media.frames import Frames
from ..pipeline.encoder import EncodedGOP, encode_segment
from ..pipeline.gop import GOPPlan
from ..pipeline.settings import EncodeSettings
from .segments import done_within, fit_segment, plan_segments

# How often the parent looks for finished GOPs while segments are fitted (seconds).
POLL_SECONDS = 0.5


def _shifted(on_gop: Callable[[int, EncodedGOP], None] | None, first: int):
    """on_gop for a segment whose first GOP is video GOP ``first``."""
    if on_gop is None:
        return None
    return lambda k, report: on_gop(first + k, report)


def _fit_and_send(frames: Frames, segment: GOPPlan, settings: EncodeSettings, device,
                  threads: int, mask: Frames | None, done: dict[int, EncodedGOP], sink,
                  first: int) -> None:
    """A pool task: fit a segment, sending each GOP to the parent as soon as it is done."""
    fit_segment(frames, segment, settings, device, threads, mask, done, first,
                on_gop=lambda k, report: sink.put((first + k, report)))


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel a pool's queued tasks and end its running ones."""
    # The executor has no public way to end a running task (terminate_workers() came in
    # Python 3.14): its worker processes are ended directly, taken before shutdown, which
    # forgets them.
    processes = list((pool._processes or {}).values())
    for process in processes:
        process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.join()


def encode_gops(
    frames: Frames, plan: GOPPlan, settings: EncodeSettings, jobs: int = 1,
    device: str | torch.device | None = None,
    on_gop: Callable[[int, EncodedGOP], None] | None = None,
    on_check: Callable[[int, float, float], None] | None = None,
    segment: int | None = None,
    mask: Frames | None = None,
    done: dict[int, EncodedGOP] | None = None,
    threads: int | None = None,
) -> list[EncodedGOP]:
    """Encode every GOP of a video with ``jobs`` processes, on ``threads`` cores in all
    (runtime.kernel_threads; the processes share them); reports in order.

    frames, mask: readers (media.frames) of the video and of its optional (N, H, W) bool
    mask, True where a pixel is unknown. segment: GOPs per segment (cut at intra GOPs); by
    default the GOPs are split evenly over the jobs. done: GOPs an interrupted run encoded
    (by video GOP number), carried on from instead of fitted again. on_gop hears of every
    other GOP as it finishes, in any order under several jobs.
    """
    done = done or {}
    segments = plan_segments(plan, jobs, segment)
    firsts = list(itertools.accumulate((len(s.gops) for s in segments), initial=0))
    workers = min(jobs, len(segments))
    if workers <= 1:
        # In this process, so that on_check can show live progress.
        reports: list[EncodedGOP] = []
        for seg, first in zip(segments, firsts):
            reports += encode_segment(frames, seg.gops, settings, device,
                                      _shifted(on_gop, first), on_check, mask=mask,
                                      kinds=seg.kinds, done=done_within(done, first, len(seg.gops)),
                                      first=first, threads=threads)
        return reports
    threads = max(1, (threads or os.cpu_count() or 1) // workers)
    finished = dict(done)

    def collect(sink) -> None:
        while True:
            try:
                k, report = sink.get_nowait()
            except queue.Empty:
                return
            finished[k] = report
            if on_gop is not None:
                on_gop(k, report)

    # spawn, not fork: forking a process that already runs torch's thread pools can hang.
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        sink = manager.Queue()
        running = set()
        for seg, first in zip(segments, firsts):
            a, b = seg.gops[0].start, seg.gops[-1].stop
            running.add(pool.submit(
                _fit_and_send, frames.part(a, b), seg, settings, device, threads,
                None if mask is None else mask.part(a, b),
                done_within(done, first, len(seg.gops)), sink, first))
        while running:
            ended, running = wait(running, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
            collect(sink)
            failed = [f for f in ended if f.exception() is not None]
            if failed:
                # The first failure ends the encode now: the other segments' work would be
                # thrown away, so they are stopped rather than waited for. GOPs already
                # finished have reached on_gop (and so the journal).
                _stop(pool)
                raise failed[0].exception()
        collect(sink)
    return [finished[k] for k in range(len(plan.gops))]
