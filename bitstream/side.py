"""The side section (format version 4): what a file carries beside the model, in boxes
after the last GOP chunk: each frame's own timestamp (TIME) and the source's other
streams, audio and subtitles, as a Matroska file of copied packets (STRM)."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from .errors import BitstreamError
from .limits import MAX_FPS_TERM
from .wire import VARINT_LIMIT, Cursor, pack_varints

BOX = struct.Struct("<4sQ")   # type, payload length
TIME_HEAD = struct.Struct("<IIq")  # time base numerator, denominator, first timestamp
TIME, STREAMS = b"TIME", b"STRM"
# A reader keeps the TIME box in memory; STRM is read in pieces where it lies.
MAX_STREAMS_BYTES = 1 << 40
CRC_SIZE = 4


@dataclass(frozen=True)
class Timestamps:
    """Each frame's presentation time, ``pts[k] * num / den`` seconds, strictly rising."""

    num: int
    den: int
    pts: tuple[int, ...]

    def seconds(self) -> list[float]:
        """Each frame's time in seconds from the first frame's."""
        return [(p - self.pts[0]) * self.num / self.den for p in self.pts]


@dataclass(frozen=True)
class SideIndex:
    """What a file's side section holds: its timestamps, and where the carried streams'
    Matroska bytes lie in the file (offset, length), if there are any."""

    timestamps: Timestamps | None = None
    streams: tuple[int, int] | None = None


def check_timestamps(stamps: Timestamps, frames: int) -> None:
    if not (1 <= stamps.num <= MAX_FPS_TERM and 1 <= stamps.den <= MAX_FPS_TERM):
        raise BitstreamError(f"invalid timestamp time base {stamps.num}/{stamps.den}")
    if len(stamps.pts) != frames:
        raise BitstreamError(f"{len(stamps.pts)} timestamps for {frames} frames")
    pts = np.asarray(stamps.pts, dtype=np.int64)
    if not -2**62 <= pts[0] < 2**62:
        raise BitstreamError(f"first timestamp {pts[0]} out of range")
    steps = np.diff(pts)
    if steps.size and (steps.min() < 1 or steps.max() >= VARINT_LIMIT):
        raise BitstreamError("timestamps must rise by 1 to 2^28 - 1 ticks a frame")


def encode_side(frames: int, timestamps: Timestamps | None, streams: bytes | None) -> bytes:
    """The side section for a file of ``frames`` frames; empty when there is nothing."""
    boxes = []
    if timestamps is not None:
        check_timestamps(timestamps, frames)
        payload = TIME_HEAD.pack(timestamps.num, timestamps.den, timestamps.pts[0]) + \
            pack_varints(np.diff(np.asarray(timestamps.pts, dtype=np.int64)))
        boxes.append(BOX.pack(TIME, len(payload)) + payload)
    if streams is not None:
        if not 0 < len(streams) <= MAX_STREAMS_BYTES:
            raise BitstreamError(f"carried streams of {len(streams)} bytes")
        boxes.append(BOX.pack(STREAMS, len(streams)) + streams)
    if not boxes:
        return b""
    body = b"".join(boxes)
    return body + struct.pack("<I", zlib.crc32(body))


def decode_side(read, offset: int, length: int, frames: int) -> SideIndex:
    """The side section of ``length`` bytes at ``offset``, through ``read(offset, length,
    what)``: boxes checked and the TIME box decoded; the STRM box's bytes are only located,
    and the whole section's CRC is checked in pieces."""
    if length == 0:
        return SideIndex()
    if length < BOX.size + CRC_SIZE:
        raise BitstreamError("side section too short")
    end = offset + length - CRC_SIZE
    crc, position, seen = 0, offset, {}
    while position < end:
        head = read(position, BOX.size, "side section box")
        kind, size = BOX.unpack(head)
        if kind not in (TIME, STREAMS):
            raise BitstreamError(f"unknown side box type {kind!r}")
        if kind in seen:
            raise BitstreamError(f"side box {kind.decode()} appears twice")
        if size > end - position - BOX.size:
            raise BitstreamError(f"side box {kind.decode()} runs past the section")
        crc = zlib.crc32(head, crc)
        seen[kind] = (position + BOX.size, size)
        if kind == TIME:
            time_box = read(position + BOX.size, size, "TIME box")
            crc = zlib.crc32(time_box, crc)
        else:
            for piece in range(0, size, 1 << 24):
                crc = zlib.crc32(read(position + BOX.size + piece, min(1 << 24, size - piece),
                                      "STRM box"), crc)
        position += BOX.size + size
    if struct.unpack("<I", read(end, CRC_SIZE, "side section CRC"))[0] != crc:
        raise BitstreamError("side section CRC mismatch")
    timestamps = None
    if TIME in seen:
        cursor = Cursor(time_box, "TIME box")
        num, den, first = cursor.unpack(TIME_HEAD.format)
        steps = cursor.varints(frames - 1) if frames > 1 else np.zeros(0, np.int64)
        cursor.finish()
        timestamps = Timestamps(num, den, tuple(int(v) for v in
                                                np.concatenate(([first], first + np.cumsum(steps)))))
        check_timestamps(timestamps, frames)
    streams = seen.get(STREAMS)
    if streams is not None and streams[1] == 0:
        raise BitstreamError("empty STRM box")
    return SideIndex(timestamps, streams)
