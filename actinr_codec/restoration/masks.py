"""Reading an inpainting mask: an image for every frame, or a video with one per frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..media.frames import ArrayFrames, StreamedFrames, decoded_frames
from ..media.videoio import VideoIOError, rgb

# BT.601 luma; a mask pixel at or above mid-grey is unknown (white = unknown).
LUMA = np.array([0.299, 0.587, 0.114])
WHITE = 128


def unknown_pixels(frames: np.ndarray) -> np.ndarray:
    """(..., H, W) bool: True where an (..., H, W, 3) uint8 mask frame is white."""
    return frames @ LUMA >= WHITE


class MaskFrames:
    """A mask as a frame reader (media.frames): ``reader(first, count)`` gives the
    (count, H, W) bool mask of encoded frames [first, first + count), True = unknown."""

    def __init__(self, still: np.ndarray | None = None, video: StreamedFrames | None = None):
        self.still, self.video = still, video

    def __call__(self, first: int, count: int) -> np.ndarray:
        if self.still is not None:
            return np.broadcast_to(self.still, (count, *self.still.shape))
        return unknown_pixels(self.video(first, count))

    def part(self, first: int, stop: int) -> MaskFrames:
        return self if self.video is None else MaskFrames(video=self.video.part(first, stop))


def mask_from_array(mask: np.ndarray) -> ArrayFrames:
    """A reader of an (N, H, W) bool mask held in memory."""
    return ArrayFrames(mask.astype(bool, copy=False))


def read_mask(path: str | Path, start: int, count: int, height: int,
              width: int) -> MaskFrames:
    """A reader of the mask of source frames [start, start + count), True = unknown.

    A single image (or one-frame video) masks every frame alike. A longer video is on the
    source's own frame numbering: its frame k masks source frame k, so with --start S it
    must hold at least S + count frames. A mask video is checked in one pass here and read
    again as the GOPs need it.
    """
    frames, known, size = 0, False, None
    try:
        for i, frame in enumerate(decoded_frames(path)):
            frames = i + 1
            size = size or (frame.height, frame.width)
            if start <= i < start + count:
                known = known or not unknown_pixels(rgb(frame, size[1], size[0])).all()
            if i >= start + count:
                break
    except VideoIOError as exc:
        raise VideoIOError(f"mask: {exc}") from None
    if frames == 0:
        raise VideoIOError(f"mask: {path}: no frames could be decoded")
    if size != (height, width):
        raise VideoIOError(f"mask {path} is {size[1]}x{size[0]}, the video {width}x{height}")
    if frames == 1:
        still = unknown_pixels(rgb(next(decoded_frames(path)), width, height))
        if still.all():
            raise VideoIOError(f"mask {path} marks every pixel unknown")
        return MaskFrames(still=still)
    if frames < start + count:
        raise VideoIOError(f"mask {path} has {frames} frames; frames "
                           f"{start}-{start + count - 1} need {start + count}")
    if not known:
        raise VideoIOError(f"mask {path} marks every pixel unknown")
    return MaskFrames(video=StreamedFrames(path, start, height, width))
