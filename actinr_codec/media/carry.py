"""The source's other streams, audio and subtitles, carried through a file as they are.

As ``ffmpeg -c:a copy`` does, packets are copied, never decoded: at encode they go into a
Matroska file held in the .anr (bitstream.side, STRM), timed so that the first encoded
video frame is at 0; at decode they are muxed beside the rendered video, cut along with
it. What cannot go where it is asked (slow motion changes the timing; y4m and PNG hold no
audio; MP4 holds only some codecs) is dropped with one line of notice.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from .videoio import VideoIOError

KINDS = ("audio", "subtitle")
# Codecs the MP4 and QuickTime muxers take; anything else stays in Matroska only.
MP4_CODECS = frozenset({"aac", "mp3", "opus", "flac", "alac", "ac3", "eac3", "mov_text"})


def carried_streams(path: str | Path | io.BytesIO, begin: float, end: float | None,
                    kinds: tuple[str, ...] = KINDS) -> bytes | None:
    """The audio and subtitle streams (those of ``kinds``) of ``path`` as a Matroska
    file, each packet's time moved back by ``begin`` seconds (the first encoded frame's);
    with ``end`` (seconds, None for the whole file), only packets that start in
    [begin, end); None when the file has no such stream."""
    try:
        with av.open(path if isinstance(path, io.BytesIO) else str(path)) as source:
            streams = [s for s in source.streams if s.type in kinds]
            if not streams:
                return None
            buffer = io.BytesIO()
            with av.open(buffer, "w", format="matroska") as out:
                copies = {s.index: out.add_stream_from_template(s) for s in streams}
                for packet in source.demux(streams):
                    if packet.pts is None or packet.size == 0:
                        continue  # a demuxer's flush packet
                    start = packet.pts * packet.time_base
                    if end is not None and not begin <= start < end:
                        continue
                    shift = round(Fraction(begin) / packet.time_base)
                    packet.pts -= shift
                    if packet.dts is not None:
                        packet.dts -= shift
                    packet.stream = copies[packet.stream.index]
                    out.mux(packet)
            return buffer.getvalue()
    except av.FFmpegError as exc:
        raise VideoIOError(f"cannot copy the audio and subtitles of {path}: {exc.strerror}; "
                           f"--no-audio and --no-subtitles leave them out") from exc


def filter_streams(data: bytes, kinds: tuple[str, ...]) -> bytes | None:
    """Carried streams (a Matroska file from carried_streams) with only those of
    ``kinds``; None if none is left."""
    buffer = io.BytesIO(data)
    try:
        return carried_streams(buffer, 0.0, None, kinds)
    finally:
        buffer.close()


@dataclass(frozen=True)
class CarriedStream:
    """One carried stream as ``actinr info`` lists it."""

    kind: str
    codec: str
    language: str | None
    seconds: float | None


def describe_streams(data: bytes) -> list[CarriedStream]:
    with av.open(io.BytesIO(data), format="matroska") as blob:
        out = []
        for s in blob.streams:
            seconds = None if s.duration is None else float(s.duration * s.time_base)
            if seconds is None and blob.duration is not None:
                seconds = blob.duration / av.time_base
            out.append(CarriedStream(s.type, s.codec_context.name,
                                     s.metadata.get("language"), seconds))
        return out


class StreamMuxer:
    """Carried packets muxed into an output container beside its video, in time order.

    ``window`` (start, end) in seconds of the carried streams' time cuts them as the
    video is cut; ``until(t)`` muxes every packet starting before t seconds of the output,
    so audio interleaves with the frames, and ``finish()`` the rest. Streams the
    container cannot hold are dropped, and said so in ``notes``.
    """

    def __init__(self, data: bytes, container, extension: str,
                 window: tuple[float, float]):
        self.notes: list[str] = []
        self._blob = av.open(io.BytesIO(data), format="matroska")
        self._container = container
        self._start, self._end = window
        self._copies = {}
        for s in self._blob.streams:
            name = s.codec_context.name
            if extension in (".mp4", ".mov") and name not in MP4_CODECS:
                self.notes.append(f"{s.type} stream {s.index} ({name}) dropped: "
                                  f"{extension[1:]} cannot hold it (mkv can)")
                continue
            self._copies[s.index] = container.add_stream_from_template(s)
        self._packets = self._wanted() if self._copies else iter(())
        self._pending = next(self._packets, None)

    def _wanted(self) -> Iterator:
        shift_seconds = Fraction(self._start)
        for packet in self._blob.demux([self._blob.streams[i] for i in self._copies]):
            if packet.pts is None or packet.size == 0:
                continue
            start = packet.pts * packet.time_base
            # Uncut, the priming packets before the first frame stay, as they came.
            if self._start > 0 and start < self._start or start >= self._end:
                continue
            shift = round(shift_seconds / packet.time_base)
            packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            packet.stream = self._copies[packet.stream.index]
            yield packet

    def until(self, seconds: float) -> None:
        while self._pending is not None and \
                self._pending.pts * self._pending.time_base < seconds:
            self._container.mux(self._pending)
            self._pending = next(self._packets, None)

    def finish(self) -> None:
        self.until(math.inf)
        self.close()

    def close(self) -> None:
        self._blob.close()
