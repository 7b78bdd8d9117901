"""Fitting a video's warm-start segments as tasks on a Dask distributed cluster.

Each segment is one task. Its frames travel inside the task (or, for an input every worker
can read, a loader does), so the scheduler can rerun it elsewhere when a worker dies. Tasks
return GOPReports, whose records are the GOPs' integer symbols: the encoded GOP chunks that
the client writes into the file, in order, once every segment is in.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..pipeline.encoder import GOPReport
from ..pipeline.gop import GOPPlan
from ..pipeline.settings import EncodeSettings
from .segments import SegmentFrames, SegmentResults, fit_segment, plan_segments, segment_frames

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
    address: str, frames: SegmentFrames, plan: GOPPlan, settings: EncodeSettings,
    device: str | torch.device | None = None,
    on_gop: Callable[[int, GOPReport], None] | None = None,
    segment: int | None = None,
    mask: np.ndarray | None = None,
) -> list[GOPReport]:
    """Encode every GOP on the cluster whose scheduler listens at ``address``; reports in order.

    frames: the (N, H, W, 3) uint8 video, or a loader(first, count) that workers call.
    mask: optional (N, H, W) bool, True where a pixel is unknown; sliced into every task.
    segment: GOPs per warm-start segment; by default the GOPs are split evenly over the
    worker threads present when the encode starts.
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
        results = SegmentResults(segments, on_gop)
        # The frames ride in the task on purpose (see the module docstring), which trips
        # distributed's advice to scatter big graphs.
        futures = {}
        with dask.config.set({"distributed.admin.large-graph-warning-threshold": "1TB"}):
            for i, seg in enumerate(segments):
                part = frames if callable(frames) else segment_frames(frames, seg)
                holes = None if mask is None else segment_frames(mask, seg)
                futures[client.submit(fit_segment, part, seg, settings, device, TASK_THREADS,
                                      holes, retries=RETRIES, pure=False)] = i
        try:
            for future in distributed.as_completed(futures, loop=client.loop):
                i = futures[future]
                results.add(i, _result(future, segments[i], distributed.KilledWorker))
        finally:
            client.cancel(list(futures))
    return results.in_order()


def _result(future, segment: GOPPlan, killed_worker: type[Exception]) -> list[GOPReport]:
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
