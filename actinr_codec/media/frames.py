"""Frames of the video being encoded, handed out as the GOPs ask for them.

An encode asks for frames by number (0 is the first frame encoded), GOP by GOP in
increasing order, each GOP sharing at most its first frame with the one before. A reader
answers from an array already in memory, or by decoding a file as it goes, so that a long
video never has to fit in memory: only the GOP being fitted is held.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import av
import numpy as np

from .videoio import VideoIOError, open_input, rgb


class Frames(Protocol):
    """A reader: ``reader(first, count)`` gives (count, H, W, ...) frames; ``part(first,
    stop)`` a reader of frames [first, stop) alone, cheap to send to another process."""

    def __call__(self, first: int, count: int) -> np.ndarray: ...

    def part(self, first: int, stop: int) -> Frames: ...


class ArrayFrames:
    """Frames held in an array, whose first row is frame ``offset``."""

    def __init__(self, array: np.ndarray, offset: int = 0):
        self.array, self.offset = array, offset

    def __call__(self, first: int, count: int) -> np.ndarray:
        block = self.array[first - self.offset: first - self.offset + count]
        if first < self.offset or len(block) != count:
            raise ValueError(f"frames {first}-{first + count - 1} lie outside frames "
                             f"{self.offset}-{self.offset + len(self.array) - 1}")
        return block

    def part(self, first: int, stop: int) -> ArrayFrames:
        return ArrayFrames(self.array[first - self.offset: stop - self.offset], first)


class TimestampsOutOfOrder(VideoIOError):
    """A file whose frames do not come out of its decoder in display order."""


def decoded_frames(path: str | Path, first: int = 0) -> Iterator[av.VideoFrame]:
    """The video frames of ``path`` (a file or an image2 pattern) from frame ``first`` on,
    not yet converted to RGB, in display order; raises TimestampsOutOfOrder if the decoder's
    output order is not display order (read_video sorts such files in memory)."""
    try:
        with open_input(path) as (container, stream):
            stream.thread_type = "AUTO"
            last = None
            for i, frame in enumerate(container.decode(stream)):
                if None not in (last, frame.pts) and frame.pts < last:
                    raise TimestampsOutOfOrder(f"{path}: frame timestamps go backwards at "
                                               f"frame {i}")
                last = frame.pts if frame.pts is not None else last
                if i >= first:
                    yield frame
    except av.FFmpegError as exc:
        raise VideoIOError(f"cannot read {path}: {exc.strerror}") from exc


class StreamedFrames:
    """Frames of a file from source frame ``start`` on, decoded in one pass as they are
    asked for; asking for an earlier frame than the last one handed out decodes afresh.

    Only the last frame handed out is kept, for the next GOP's shared first frame. Every
    frame is checked against the size the encode planned for. Pickles as its path alone,
    so a worker process or cluster node opens the file itself.
    """

    def __init__(self, path: str | Path, start: int, height: int, width: int):
        self.path, self.start, self.height, self.width = str(path), start, height, width
        self._reset()

    def _reset(self) -> None:
        self._decoder: Iterator[av.VideoFrame] | None = None
        self._next = 0  # the frame the decoder yields next
        self._last: tuple[int, np.ndarray] | None = None

    def __getstate__(self) -> dict:
        return {"path": self.path, "start": self.start, "height": self.height,
                "width": self.width}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset()

    def __call__(self, first: int, count: int) -> np.ndarray:
        out = np.empty((count, self.height, self.width, 3), np.uint8)
        for i in range(count):
            out[i] = self._frame(first + i)
        return out

    def part(self, first: int, stop: int) -> StreamedFrames:
        return StreamedFrames(self.path, self.start, self.height, self.width)

    def close(self) -> None:
        if self._decoder is not None:
            self._decoder.close()
        self._reset()

    def _frame(self, index: int) -> np.ndarray:
        if self._last is not None and self._last[0] == index:
            return self._last[1]
        if self._decoder is None or index < self._next:
            self.close()
            self._decoder = decoded_frames(self.path, self.start + index)
            self._next = index
        while True:
            frame = next(self._decoder, None)
            if frame is None:
                raise VideoIOError(f"{self.path} ended before frame {self.start + index}")
            self._next += 1
            if self._next - 1 == index:
                break
        picture = rgb(frame, self.width, self.height)
        self._last = (index, picture)
        return picture
