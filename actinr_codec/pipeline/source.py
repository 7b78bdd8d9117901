"""The video an encode reads: one decoding pass before fitting finds its frame count, size,
rate, scene cuts and content digest, and leaves a reader that hands frames out as the
GOPs need them.

The pass keeps nothing but a small luma grid per frame, so a file of any length is
planned in constant memory; fitting then decodes it once more, GOP by GOP. The digest (a
SHA-256 of every frame's RGB samples) identifies the content for resuming an encode.
"""

from __future__ import annotations

import array
import hashlib
import os
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from bitstream.side import Timestamps

from ..media.frames import ArrayFrames, Frames, StreamedFrames, TimestampsOutOfOrder, decoded_frames
from ..media.timing import average_rate, variable_timestamps
from ..media.videoio import VideoIOError, frame_rate, read_video, rgb, source_colour
from .scenecut import scene_cuts


@dataclass(frozen=True)
class Source:
    """Frames to encode (a reader counted from the first one encoded) and what the
    planning pass learnt of them."""

    frames: Frames
    count: int
    height: int
    width: int
    fps: Fraction | None  # None for an array, which carries no rate
    cuts: list[int]
    digest: str
    colour: str = "srgb"  # the source's colour description (bitstream.records.COLOURS)
    # Each frame's own timestamp when the source's frame rate varies (media.timing).
    timestamps: Timestamps | None = None
    origin: float | None = None  # the first encoded frame's time in the file, seconds


def _scan(frames, cut_scenes: bool) -> tuple[int, list[int], str]:
    """Count, scene cuts and digest of an iterable of (H, W, 3) uint8 frames."""
    digest, count = hashlib.sha256(), 0

    def seen():
        nonlocal count
        for frame in frames:
            digest.update(np.ascontiguousarray(frame).data)
            count += 1
            yield frame

    if cut_scenes:
        cuts = scene_cuts(seen())
    else:
        cuts = []
        for _ in seen():
            pass
    return count, cuts, digest.hexdigest()


def array_source(video: np.ndarray, cut_scenes: bool) -> Source:
    """A source held in memory: (N, H, W, 3) uint8."""
    count, cuts, digest = _scan(video, cut_scenes)
    return Source(ArrayFrames(video), count, video.shape[1], video.shape[2], None, cuts, digest)


def file_source(path: str | os.PathLike, start: int, count: int | None,
                cut_scenes: bool) -> Source:
    """Frames [start, start + count) of a file PyAV reads (all from start when count is
    None), planned in one streaming pass.

    A file whose decoder does not output frames in display order is read whole into memory
    instead, the one way to sort it.
    """
    if start < 0 or (count is not None and count < 1):
        raise ValueError(f"bad frame range: start={start}, count={count}")
    size: list[int] = []
    # Eight bytes a frame; a frame without a timestamp leaves the source without any.
    total, colour, pts, time_base, timed = 0, "srgb", array.array("q"), None, True

    def frames():
        nonlocal total, colour, time_base, timed
        for i, frame in enumerate(decoded_frames(path)):
            total = i + 1
            if count is not None and i >= start + count:
                return
            if i >= start:
                if not size:
                    size[:] = [frame.width, frame.height]
                    colour = source_colour(frame, path)
                    time_base = frame.time_base and Fraction(frame.time_base)
                timed = timed and frame.pts is not None
                pts.append(frame.pts if timed else 0)
                yield rgb(frame, *size)

    try:
        found, cuts, digest = _scan(frames(), cut_scenes)
    except TimestampsOutOfOrder:
        video, info = read_video(path, start, count)
        found, cuts, digest = _scan(video, cut_scenes)
        return Source(ArrayFrames(video), found, info.height, info.width, info.fps, cuts,
                      digest, colour)
    if total == 0:
        raise VideoIOError(f"{path}: no frames could be decoded")
    if found == 0:
        raise VideoIOError(f"{path}: start frame {start} is past the end ({total} frames)")
    width, height = size
    stamps = variable_timestamps(list(pts), time_base) if timed else None
    fps = frame_rate(path) if stamps is None else average_rate(stamps)
    origin = float(pts[0] * time_base) if timed and time_base else None
    return Source(StreamedFrames(path, start, height, width), found, height, width,
                  fps, cuts, digest, colour, stamps, origin)
