"""Whole .anr files: encoding to bytes, atomic writing, and random-access reading."""

from __future__ import annotations

import bisect
import contextlib
import io
import os
import secrets
from collections.abc import Iterable

from .chunk import CodedGOP, decode_chunk, encode_chunk
from .errors import BitstreamError
from .header import PREFIX, VERSION, ConfigValue, decode_header, encode_header, header_size, pack_config
from .limits import check_gop_kinds, check_gop_ranges, check_info
from .pictures import GridDecoder, PictureLayout, check_kinds, is_latent, picture_layout
from .records import GopIndexEntry, GOPRecord, GopSpan, VideoInfo
from .side import SideIndex, Timestamps, decode_side, encode_side


def encode_file(info: VideoInfo, config: dict[str, ConfigValue],
                gops: Iterable[GOPRecord], timestamps: Timestamps | None = None,
                streams: bytes | None = None) -> bytes:
    """The complete .anr file for a video; raises BitstreamError on invalid input."""
    gops = [CodedGOP(k, GopSpan(g.start, g.stop, g.kind, g.reference), encode_chunk(k, g))
            for k, g in enumerate(gops)]
    return assemble_file(info, config, gops, timestamps, streams)


def assemble_file(info: VideoInfo, config: dict[str, ConfigValue],
                  gops: list[CodedGOP], timestamps: Timestamps | None = None,
                  streams: bytes | None = None) -> bytes:
    """The complete .anr file from its GOPs, already coded (code_gop), in order, with each
    frame's own timestamps (None: every frame on the frame rate's grid) and carried
    streams (a Matroska file of audio and subtitle packets, or None); raises
    BitstreamError on invalid input."""
    check_info(info)
    if [g.index for g in gops] != list(range(len(gops))):
        raise BitstreamError("GOPs are not numbered in order from 0")
    spans = [g.span for g in gops]
    ranges = [(s.start, s.stop) for s in spans]
    kinds = [(s.kind, s.reference) for s in spans]
    check_gop_ranges(ranges, info.frames, VERSION)
    check_gop_kinds(kinds, VERSION)
    check_kinds(config, [kind for kind, _ in kinds])
    if is_latent(config):
        picture_layout(config, info)
    side = encode_side(info.frames, timestamps, streams)
    header = encode_header(info, pack_config(config), ranges, kinds, [len(g.chunk) for g in gops],
                           len(side))
    return b"".join([header, *(g.chunk for g in gops), side])


def write_anr(path: str | os.PathLike, info: VideoInfo, config: dict[str, ConfigValue],
              gops: Iterable[GOPRecord]) -> int:
    """Write the file atomically and return the number of bytes written."""
    data = encode_file(info, config, gops)
    write_atomically(path, data)
    return len(data)


def write_atomically(path: str | os.PathLike, data: bytes) -> None:
    """Write a file that appears only once complete: a temporary file in the same
    directory, then os.replace. On any failure, path is left untouched."""
    path = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
    try:
        with open(temporary, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        # KeyboardInterrupt included: a stray temporary file is never wanted.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


class AnrReader:
    """Reads a .anr file (a path, or the file's bytes) one GOP at a time.

    Opening reads and checks the header and the side section (whose carried streams are
    only located, and checked against its CRC); read_gop(k) seeks to chunk k, and
    read_streams() reads the carried streams' bytes.
    """

    info: VideoInfo
    config: dict[str, ConfigValue]
    index: list[GopIndexEntry]
    version: int
    side: SideIndex

    def __init__(self, source: str | os.PathLike | bytes | bytearray | memoryview):
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._file = io.BytesIO(bytes(source))
        else:
            # Unbuffered: reads are few and large, and a file changing under the reader
            # is then noticed instead of being served from a stale buffer.
            self._file = open(source, "rb", buffering=0)  # noqa: SIM115 (closed by close())
        try:
            self._size = self._file.seek(0, io.SEEK_END)
            size, self.version = header_size(
                self._read(0, min(PREFIX.size, self._size), "header"), self._size)
            self.info, self.config, self.index, side_length = decode_header(
                self._read(0, size, "header"), self._size, self.version)
            self.side = decode_side(self._read, self._size - side_length, side_length,
                                    self.info.frames)
            check_kinds(self.config, [e.kind for e in self.index])
            # A latent file's pictures are laid out by its configuration alone.
            self.pictures: PictureLayout | None = (
                picture_layout(self.config, self.info) if is_latent(self.config) else None)
        except BaseException:
            self._file.close()
            raise
        self._starts = [entry.start for entry in self.index]

    def _read(self, offset: int, length: int, what: str) -> bytes:
        self._file.seek(offset)
        parts, missing = [], length
        while missing:
            # One raw read can return less than asked for, e.g. beyond 2 GiB on Linux.
            part = self._file.read(missing)
            if not part:
                raise BitstreamError(f"truncated: {what} ends past end of file")
            parts.append(part)
            missing -= len(part)
        return b"".join(parts)

    def read_gop(self, k: int, layout: list[tuple[str, tuple[int, ...]]] | None = None,
                 grid_decoder: GridDecoder | None = None) -> GOPRecord:
        """GOP k's record; with ``layout`` (name, shape of each tensor), its tensor table is
        checked against it before the symbols are decoded. A picture's latents are
        decoded with grid_decoder (by default bitstream.latents')."""
        if not 0 <= k < len(self.index):
            raise IndexError(f"GOP {k} out of range (the file has {len(self.index)})")
        entry = self.index[k]
        return decode_chunk(self._read(entry.offset, entry.length, f"GOP {k} chunk"), k, entry.span,
                            self.version, self.pictures or layout, grid_decoder)

    @property
    def timestamps(self) -> Timestamps | None:
        """Each frame's own time (version 4, variable frame rate), or None: frame k at
        k / fps seconds."""
        return self.side.timestamps

    @property
    def streams_size(self) -> int:
        """Bytes of carried streams (0: none)."""
        return 0 if self.side.streams is None else self.side.streams[1]

    def read_streams(self) -> bytes:
        """The carried streams: a Matroska file of the source's audio and subtitle packets,
        timed from the first frame; BitstreamError if the file has none."""
        if self.side.streams is None:
            raise BitstreamError("the file carries no streams")
        return self._read(*self.side.streams, "STRM box")

    def gops_for_range(self, t0: float, t1: float) -> list[int]:
        """Indices of the GOPs serving frame times in [t0, t1], in order.

        As in actinr_codec.pipeline.gop, time t is served by the last GOP starting at or before t,
        so a boundary frame belongs to the later GOP.
        """
        last = self.info.frames - 1
        if not 0 <= t0 <= t1 <= last:
            raise ValueError(f"time range [{t0}, {t1}] is not within frames 0..{last}")
        first = bisect.bisect_right(self._starts, t0) - 1
        return list(range(first, bisect.bisect_right(self._starts, t1)))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> AnrReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def decode_file(data: bytes) -> tuple[VideoInfo, dict[str, ConfigValue], list[GOPRecord]]:
    """Everything in an in-memory .anr file."""
    with AnrReader(data) as reader:
        return reader.info, reader.config, [reader.read_gop(k)
                                            for k in range(len(reader.index))]
