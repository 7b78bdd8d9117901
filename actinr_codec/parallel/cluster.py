"""Fitting a video's warm-start segments as tasks on a Dask distributed cluster.

Each segment is one task. Its frames travel inside the task (or, for an input every worker
can read, a reader of the file does), so the scheduler can rerun it elsewhere when a
worker dies. Tasks return EncodedGOPs, each holding its GOP's chunk exactly as the file
will: the client writes them into the file, in order, once every segment is in. Without a
shared input the client reads each segment's frames as it submits the segment, so the
cluster holds the frames of every segment not yet fitted.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..media.frames import ArrayFrames, Frames
from ..pipeline.encoder import EncodedGOP
from ..pipeline.gop import GOPPlan
from ..pipeline.settings import EncodeSettings
from .segments import SegmentResults, done_within, fit_segment, plan_segments

MISSING = "--scheduler needs the optional dependency: pip install 'actinr[dask]'"
# Reruns of a task that raised; a worker that dies counts against the scheduler's own
# distributed.scheduler.allowed-failures (3 by default) instead.
RETRIES = 2
CONNECT_SECONDS = 30.0
# Every task fits with one torch thread, whatever its worker's cores, so that results do
# not depend on which worker ran it (a worker is best started with --nthreads 1).
TASK_THREADS = 1


def _distributed():
    try:
        import dask
        import distributed
    except ImportError:
        raise RuntimeError(MISSING) from None
    return dask, distributed


def encode_on_cluster(
    address: str, frames: Frames, plan: GOPPlan, settings: EncodeSettings,
    device: str | torch.device | None = None,
    on_gop: Callable[[int, EncodedGOP], None] | None = None,
    segment: int | None = None,
    mask: Frames | None = None,
    shared: bool = False,
    done: dict[int, EncodedGOP] | None = None,
) -> list[EncodedGOP]:
    """Encode every GOP on the cluster whose scheduler listens at ``address``; reports in order.

    frames, mask: readers (media.frames) of the video and of its optional (N, H, W) bool
    mask, True where a pixel is unknown. shared: workers read the frames themselves
    (frames is a file every worker sees); else each task carries its frames and mask.
    segment: GOPs per warm-start segment; by default the GOPs are split evenly over the
    worker threads present when the encode starts. done: GOPs an interrupted run encoded
    (by video GOP number), carried on from; on_gop hears of the others, a segment at a
    time.
    Raises RuntimeError when the cluster cannot be reached or a segment keeps failing.
    """
    dask, distributed = _distributed()
    try:
        client = distributed.Client(address, timeout=CONNECT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise RuntimeError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    with client:
        try:
            client.wait_for_workers(1, timeout=CONNECT_SECONDS)
        except TimeoutError:
            raise RuntimeError(f"no Dask worker joined {address} within "
                               f"{CONNECT_SECONDS:.0f}s") from None
        segments = plan_segments(plan, sum(client.nthreads().values()), segment)
        done = done or {}
        results = SegmentResults(segments, None if on_gop is None else (
            lambda k, report: None if k in done else on_gop(k, report)))
        # The frames ride in the task on purpose (see the module docstring), which trips
        # distributed's advice to scatter big graphs.
        futures = {}
        with dask.config.set({"distributed.admin.large-graph-warning-threshold": "1TB"}):
            for i, seg in enumerate(segments):
                a, b = seg.gops[0].start, seg.gops[-1].stop
                part = frames.part(a, b) if shared else ArrayFrames(frames(a, b - a), a)
                holes = None if mask is None else ArrayFrames(mask(a, b - a), a)
                mine = done_within(done, results.first[i], len(seg.gops))
                futures[client.submit(fit_segment, part, seg, settings, device, TASK_THREADS,
                                      holes, mine, results.first[i], retries=RETRIES,
                                      pure=False)] = i
        try:
            for future in distributed.as_completed(futures, loop=client.loop):
                i = futures[future]
                results.add(i, _result(future, segments[i], distributed.KilledWorker))
        finally:
            client.cancel(list(futures))
    return results.in_order()


def _result(future, segment: GOPPlan, killed_worker: type[Exception]) -> list[EncodedGOP]:
    """A finished task's reports, or a RuntimeError that names the segment and the cause."""
    frames = f"{segment.gops[0].start}-{segment.gops[-1].stop - 1}"
    try:
        return future.result()
    except killed_worker:
        raise RuntimeError(f"GOPs of frames {frames}: the workers running them kept dying; "
                           f"giving up") from None
    except Exception as exc:  # anything a task raised, after its retries
        cause = " ".join(str(exc).split()) or type(exc).__name__
        raise RuntimeError(f"GOPs of frames {frames} failed {RETRIES + 1} times on the "
                           f"cluster: {cause}") from None
