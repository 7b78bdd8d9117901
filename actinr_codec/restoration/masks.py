"""Reading an inpainting mask: an image for every frame, or a video with one per frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..media.videoio import VideoIOError, read_video

# BT.601 luma; a mask pixel at or above mid-grey is unknown (white = unknown).
LUMA = np.array([0.299, 0.587, 0.114])
WHITE = 128


def read_mask(path: str | Path, start: int, count: int, height: int,
              width: int) -> np.ndarray:
    """The (count, H, W) bool mask of source frames [start, start + count), True = unknown.

    A single image (or one-frame video) masks every frame alike. A longer video is on the
    source's own frame numbering: its frame k masks source frame k, so with --start S it
    must hold at least S + count frames.
    """
    try:
        first, _ = read_video(path, 0, 2)
        static = len(first) == 1
        frames = first if static else read_video(path, start, count)[0]
    except VideoIOError as exc:
        raise VideoIOError(f"mask: {exc}") from None
    if not static and len(frames) != count:
        raise VideoIOError(f"mask {path} has {start + len(frames)} frames; frames "
                           f"{start}-{start + count - 1} need {start + count}")
    if frames.shape[1:3] != (height, width):
        raise VideoIOError(f"mask {path} is {frames.shape[2]}x{frames.shape[1]}, the video "
                           f"{width}x{height}")
    unknown = frames @ LUMA >= WHITE
    if unknown.all():
        raise VideoIOError(f"mask {path} marks every pixel unknown")
    return np.broadcast_to(unknown, (count, height, width))
