"""Reading source videos into RGB arrays and writing RGB frames out as video files, via PyAV."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, Interpolation

SUPPORTED_OUTPUTS: tuple[str, ...] = (".mp4", ".mkv", ".mov", ".y4m", ".png")

_MUXERS = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov", ".y4m": "yuv4mpegpipe",
           ".png": "image2"}
# AVCOL_SPC_SMPTE170M, i.e. BT.601: Y4M readers assume it, so every YUV output uses it, and
# H.264 streams say so, since players otherwise assume BT.709 for HD sizes.
BT601 = 6
# FFmpeg zero-pads %d and %0Nd exactly as Python's % does; other directives differ.
_PATTERN_TOKENS = re.compile(r"(%%|%(?:0\d+)?d)")
_DEFAULT_FPS = Fraction(25)
# The output path that means standard output, and what can be written there: a pipe
# cannot seek back, which mp4 and mov need to finish their index.
STDOUT = "-"
PIPE_FORMATS = ("y4m", "mkv")
# FFmpeg holds frame rates as ratios of 32-bit signed integers.
MAX_RATE_TERM = 2**31 - 1
# swscale's default YUV<->RGB path takes chroma from the nearest sample, which costs up to
# 14 dB on smooth colour; these flags make it filter chroma properly (~8 ms per 1080p frame).
SWS_FLAGS = (Interpolation.BICUBIC | Interpolation.ACCURATE_RND
              | Interpolation.FULL_CHR_H_INT | Interpolation.FULL_CHR_H_INP)


class VideoIOError(ValueError):
    """A video path that cannot be read or written, or whose content is unusable."""


# What a file's colour field (bitstream.records.COLOURS) means for a video written from it:
# the YUV matrix of its YUV outputs (for swscale, and as the AVColorSpace to tag) and the
# AVColorPrimaries and AVColorTransferCharacteristic to tag. "srgb" is the unspecified
# description that files have always carried: BT.601 matrix, primaries and transfer untagged.
OUTPUT_COLOUR = {"srgb": (Colorspace.ITU601, BT601, 2, 2),
                 "bt709": (Colorspace.ITU709, 1, 1, 1),
                 "bt601": (Colorspace.ITU601, BT601, 6, 6),
                 "bt2020": (Colorspace.BT2020, 9, 9, 14)}
_PRIMARIES = {0: "srgb", 2: "srgb", 1: "bt709", 5: "bt601", 6: "bt601", 7: "bt601",
              9: "bt2020"}
_HDR_TRANSFERS = {16: "PQ (SMPTE 2084)", 18: "HLG (ARIB STD-B67)"}


def source_colour(frame: av.VideoFrame, path: str | Path) -> str:
    """The colour field for a source whose frames look like ``frame``: its primaries,
    once the frame's own matrix has turned it into RGB. VideoIOError for what an 8-bit
    RGB codec cannot carry: HDR transfers and primaries other than BT.709, BT.601 and
    BT.2020."""
    transfer = int(frame.color_trc or 0)
    if transfer in _HDR_TRANSFERS:
        raise VideoIOError(f"{path}: HDR video ({_HDR_TRANSFERS[transfer]} transfer) is not "
                           f"supported; actinr codes 8-bit SDR RGB")
    primaries = int(frame.color_primaries or 0)
    if primaries not in _PRIMARIES:
        raise VideoIOError(f"{path}: colour primaries code {primaries} are not supported "
                           f"(BT.709, BT.601 or BT.2020 only)")
    return _PRIMARIES[primaries]


@dataclass(frozen=True)
class SourceInfo:
    """What read_video returned: frame size, frame count and the source's frame rate."""

    width: int
    height: int
    frames: int  # frames returned by read_video
    fps: Fraction


def _frame_rate(stream) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate:
        return _DEFAULT_FPS
    rate = Fraction(rate)
    if not stream.time_base or (1 / (rate * stream.time_base)).denominator == 1:
        return rate
    # The container's clock cannot hold this frame period (Matroska counts whole ns), so
    # the demuxer gives an approximation, e.g. 19001/317 for 60000/1001: snap it back.
    whole = Fraction(round(rate))
    ntsc = Fraction(round(rate * Fraction(1001, 1000)) * 1000, 1001)
    nearest = min((whole, ntsc), key=lambda r: abs(r - rate))
    return nearest if abs(nearest - rate) < rate / 10**6 else rate


@contextlib.contextmanager
def open_input(path: str | Path):
    """An input file, or an image-sequence pattern such as frames/%04d.png, opened for
    reading: yields (container, its first video stream). VideoIOError if there is no such
    file or no video stream; FFmpeg's own errors pass through as av.FFmpegError."""
    path = Path(path)
    image2 = "%" in path.name and not path.is_file()
    if not image2 and not path.is_file():
        raise VideoIOError(f"{path}: no such file")
    with av.open(str(path), format="image2" if image2 else None) as container:
        if not container.streams.video:
            raise VideoIOError(f"{path}: no video stream")
        yield container, container.streams.video[0]


def rgb(frame: av.VideoFrame, width: int, height: int) -> np.ndarray:
    """A decoded frame as (height, width, 3) uint8 RGB, scaled to that size if it differs
    (a stream may change resolution midway; read_video keeps the first size too)."""
    # PyAV converts with the frame's own matrix and range (tests/test_videoio.py checks
    # BT.709 and full range).
    return frame.to_ndarray(format="rgb24", width=width, height=height,
                            interpolation=SWS_FLAGS)


def frame_rate(path: str | Path) -> Fraction:
    """The frame rate read_video gives for ``path`` (25 for an image sequence)."""
    try:
        with open_input(path) as (_, stream):
            return _frame_rate(stream)
    except av.FFmpegError as exc:
        raise VideoIOError(f"cannot read {path}: {exc.strerror}") from exc


def _decode(path: Path, wanted,
            stop: int | None = None) -> tuple[dict[int, np.ndarray], list, Fraction]:
    """Decode frames, converting to RGB only those whose decode index is in ``wanted``.

    Returns those frames by decode index, the pts of every frame decoded, and the frame
    rate. With ``stop``, decoding ends after frame ``stop - 1`` if no timestamp went back.
    """
    with open_input(path) as (container, stream):
        stream.thread_type = "AUTO"
        arrays, pts, size, backwards = {}, [], None, False
        for i, frame in enumerate(container.decode(stream)):
            if pts and None not in (pts[-1], frame.pts) and frame.pts < pts[-1]:
                backwards = True
            pts.append(frame.pts)
            if i in wanted:
                # A stream may change resolution midway; keep the first size throughout.
                size = size or (frame.width, frame.height)
                arrays[i] = rgb(frame, *size)
            # Timestamps in order so far are trusted to stay so: reading a few frames off the
            # front of a long file must not decode all of it.
            if stop is not None and i + 1 >= stop and not backwards:
                break
        return arrays, pts, _frame_rate(stream)


def read_video(path: str | Path, start: int = 0,
               count: int | None = None) -> tuple[np.ndarray, SourceInfo]:
    """Frames [start, start + count) of ``path`` as (N, H, W, 3) uint8 RGB, in display order.

    ``path`` is a file FFmpeg can demux, or an image-sequence pattern such as
    ``frames/%04d.png`` (numbered from 0 to 4 onward, read at 25 fps). Frames come in the
    decoder's output order, sorted by timestamp if the timestamps go backwards; fewer than
    ``count`` come back if the video ends first.
    """
    path = Path(path)
    if start < 0 or (count is not None and count < 1):
        raise ValueError(f"bad frame range: start={start}, count={count}")
    stop = None if count is None else start + count
    try:
        arrays, pts, fps = _decode(path, range(start, stop or sys.maxsize), stop)
        if not pts:
            raise VideoIOError(f"{path}: no frames could be decoded")
        if start >= len(pts):
            raise VideoIOError(f"{path}: start frame {start} is past the end ({len(pts)} frames)")
        order = list(range(len(pts)))
        if None not in pts:
            order.sort(key=pts.__getitem__)
        order = order[start:stop]
        if any(i not in arrays for i in order):
            # Sorting moved other frames into the window: fetch those.
            arrays = _decode(path, set(order))[0]
    except av.FFmpegError as exc:
        raise VideoIOError(f"cannot read {path}: {exc.strerror}") from exc
    video = np.stack([arrays[i] for i in order])
    n, h, w, _ = video.shape
    return video, SourceInfo(width=w, height=h, frames=n, fps=fps)


def yuv_frame(rgb: np.ndarray, pix_fmt: str,
              matrix: Colorspace = Colorspace.ITU601) -> av.VideoFrame:
    """An (H, W, 3) uint8 RGB array as a limited-range frame in ``pix_fmt`` under the YUV
    matrix ``matrix`` (BT.601 by default)."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    return frame.reformat(format=pix_fmt, dst_colorspace=matrix,
                          dst_color_range=ColorRange.MPEG, interpolation=SWS_FLAGS)


def _pattern_regex(name: str) -> re.Pattern:
    """File names that FFmpeg's image2 demuxer would read as part of this pattern."""
    out = []
    for i, piece in enumerate(_PATTERN_TOKENS.split(name)):
        if i % 2 == 0:
            out.append(re.escape(piece))
        elif piece == "%%":
            out.append("%")
        else:
            # %04d writes 12 as 0012 and 12345 as 12345, never as 00012.
            digits = int(piece[1:-1] or 1)
            out.append(rf"(?:\d{{{digits}}}|[1-9]\d{{{digits},}})")
    return re.compile("".join(out))


def existing_outputs(path: str | Path) -> list[Path]:
    """The files that writing ``path`` would replace or delete: the file itself or, for a
    PNG pattern such as out/%04d.png, every file of the folder the pattern matches (a
    finished sequence replaces them all, see VideoWriter)."""
    if str(path) == STDOUT:
        return []
    path = Path(path)
    if path.suffix.lower() == ".png" and _PATTERN_TOKENS.search(path.name):
        if not path.parent.is_dir():
            return []
        matcher = _pattern_regex(path.name)
        return sorted(p for p in path.parent.iterdir() if matcher.fullmatch(p.name))
    return [path] if path.exists() else []


def output_extension(path: str | Path, format: str | None = None) -> str:  # noqa: A002
    """What a VideoWriter to ``path`` writes, as an extension (".mkv"): ``format`` if
    given, y4m for standard output, else the path's own."""
    chosen = format or (PIPE_FORMATS[0] if str(path) == STDOUT else None)
    return f".{chosen.lower()}" if chosen else Path(path).suffix.lower()


class VideoWriter:
    """Streams RGB frames into a video that appears at ``path`` only once complete.

    Output by extension (odd sizes get 4:4:4 chroma, as 4:2:0 needs even ones):

    - .mp4 .mov .mkv: H.264 (libx264 at ``crf``) in yuv420p, or yuv444p for odd sizes;
      ``lossless`` switches to libx264rgb at qp 0 on the RGB planes, bit exact.
    - .y4m: raw yuv420p (yuv444p for odd sizes); Y4M holds only YUV, so never lossless.
    - a pattern such as ``out/%04d.png``: one RGB PNG per frame, bit exact, numbered from 1
      like FFmpeg. Older files matching the pattern are deleted on close, so the folder
      holds exactly this sequence.

    Frames go to a hidden temporary file (a folder, for PNGs) beside the target, which
    replaces the target on a clean close and is deleted on any exception, so a failed or
    interrupted write leaves an existing target untouched. The frame rate is kept exactly.
    ``colour`` (a file's colour field) picks the YUV matrix of H.264 outputs and the
    primaries and transfer they are tagged with (OUTPUT_COLOUR); y4m keeps BT.601, which
    its readers assume.

    ``path`` "-" streams to standard output, in ``format`` (one of PIPE_FORMATS, y4m by
    default), as x264 and FFmpeg pipe; frames then leave as they are written. ``format``
    (an extension without its dot) otherwise overrides the path's extension.

    ``time_base``: what ``write``'s pts count (default a frame period, and frame k at k),
    for variable-rate output. ``carried``: a Matroska file of audio and subtitle packets
    (media.carry) to mux beside the video, its time ``window`` (start, end seconds) cut to
    the output's; what the output cannot hold is dropped and listed in ``notes``.
    """

    def __init__(self, path: str | Path, width: int, height: int, fps: Fraction,
                 lossless: bool = False, crf: int = 18, colour: str = "srgb",
                 format: str | None = None,  # noqa: A002 - ffmpeg's name for it
                 time_base: Fraction | None = None, carried: bytes | None = None,
                 window: tuple[float, float] = (0.0, float("inf"))):
        self._pipe = str(path) == STDOUT
        self.path = Path(path)
        if colour not in OUTPUT_COLOUR:
            raise ValueError(f"unknown colour description {colour!r}")
        self.colour = colour
        self.width, self.height, self.fps = width, height, Fraction(fps)
        # FFmpeg keeps rates as int32 ratios: a float such as 29.97 becomes a huge fraction.
        exact_rate = self.fps > 0 and max(self.fps.numerator, self.fps.denominator) <= MAX_RATE_TERM
        if width < 1 or height < 1 or not exact_rate or not 0 <= crf <= 51:
            raise ValueError(f"bad writer settings: {width}x{height}, fps {fps!r}, crf {crf}")
        ext = output_extension(path, format)
        self._sequence = ext == ".png"
        if ext not in _MUXERS:
            raise VideoIOError(f"unsupported output format '{ext}' (use mp4, mkv, mov, y4m "
                               "or a %d PNG pattern)")
        if self._pipe and ext[1:] not in PIPE_FORMATS:
            raise VideoIOError(f"cannot stream {ext[1:]} to standard output, which cannot "
                               f"seek (use {' or '.join(PIPE_FORMATS)})")
        pieces = _PATTERN_TOKENS.split(self.path.name)
        if self._sequence and ("%" in "".join(pieces[::2])
                               or sum(p != "%%" for p in pieces[1::2]) != 1):
            raise VideoIOError(f"{self.path}: PNG output needs a pattern with one %d or %0Nd, "
                               "such as out/%04d.png")
        if ext == ".y4m" and lossless:
            raise VideoIOError(f"{self.path}: y4m stores YUV, so lossless output needs mkv, "
                               "mp4, mov or a PNG pattern")
        if not self._pipe and not self.path.parent.is_dir():
            raise VideoIOError(f"{self.path}: folder {self.path.parent} does not exist")
        if not self._pipe and self.path.is_dir():
            raise VideoIOError(f"{self.path} is a folder")

        self._container = None
        self._carry = None
        self.notes: list[str] = []
        self._written = 0
        self.time_base = Fraction(time_base) if time_base is not None else 1 / self.fps
        # No '%' in the temporary name: the image2 muxer would expand it in the folder too.
        hidden = f".{self.path.name.replace('%', '')}.{secrets.token_hex(4)}.tmp"
        self._tmp = None if self._pipe else self.path.parent / hidden
        with self._discarding_on_failure():
            if self._sequence:
                self._tmp.mkdir()
            target = (sys.stdout.buffer if self._pipe else
                      str(self._tmp / self.path.name if self._sequence else self._tmp))
            self._container = av.open(target, "w", format=_MUXERS[ext])
            self._stream = self._add_stream(ext, lossless, crf)
            if carried is not None and ext in (".y4m", ".png"):
                self.notes.append(f"audio and subtitles dropped: {ext[1:]} cannot hold them "
                                  f"(mkv, mp4 and mov can)")
            elif carried is not None:
                from .carry import StreamMuxer

                self._carry = StreamMuxer(carried, self._container, ext, window)
                self.notes += self._carry.notes

    @contextlib.contextmanager
    def _discarding_on_failure(self):
        """On any failure inside, delete the temporary output; FFmpeg and OS errors are
        re-raised as one-line VideoIOErrors."""
        try:
            yield
        except (av.FFmpegError, OSError) as exc:
            self._discard()
            raise VideoIOError(f"cannot write {self.path}: {exc.strerror}") from exc
        except BaseException:
            self._discard()
            raise

    def _add_stream(self, ext: str, lossless: bool, crf: int):
        yuv = "yuv420p" if self.width % 2 == 0 and self.height % 2 == 0 else "yuv444p"
        if ext == ".png":
            codec, self._pix_fmt, options = "png", "rgb24", {}
        elif ext == ".y4m":
            codec, self._pix_fmt, options = "rawvideo", yuv, {}
        elif lossless:
            codec, self._pix_fmt, options = "libx264rgb", "rgb24", {"qp": "0"}
        else:
            codec, self._pix_fmt, options = "libx264", yuv, {"crf": str(crf)}
        stream = self._container.add_stream(codec, rate=self.fps, options=options)
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, self._pix_fmt
        context = stream.codec_context
        # Timestamps counted in frame periods keep rates like 30000/1001 exact.
        context.time_base = self.time_base
        matrix, space, primaries, transfer = OUTPUT_COLOUR[self.colour if ext != ".y4m"
                                                           else "srgb"]
        self._matrix = matrix
        if ext in (".mp4", ".mkv", ".mov"):
            context.color_primaries, context.color_trc = primaries, transfer
        if self._pix_fmt != "rgb24":
            context.colorspace = space
            context.color_range = ColorRange.MPEG
        return stream

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._discard()

    def write(self, frame: np.ndarray, pts: int | None = None) -> None:
        """Append one (height, width, 3) uint8 RGB frame, at ``pts`` (in time_base; by
        default the next frame period)."""
        if self._container is None:
            raise ValueError(f"{self.path}: writer is closed")
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"expected a ({self.height}, {self.width}, 3) uint8 frame, "
                             f"got {frame.shape} {frame.dtype}")
        if self._pix_fmt == "rgb24":
            out = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        else:
            out = yuv_frame(frame, self._pix_fmt, self._matrix)
        out.pts, out.time_base = self._written if pts is None else pts, self.time_base
        try:
            if self._carry is not None:
                self._carry.until(float(out.pts * self.time_base))
            self._container.mux(self._stream.encode(out))
        except av.FFmpegError as exc:
            raise VideoIOError(f"cannot write {self.path}: {exc.strerror}") from exc
        self._written += 1

    def close(self) -> None:
        """Finish the output and move it into place; on failure nothing is left behind."""
        if self._container is None:
            return
        with self._discarding_on_failure():
            if not self._written:
                raise VideoIOError(f"{self.path}: no frames were written")
            self._container.mux(self._stream.encode())
            if self._carry is not None:
                self._carry.finish()
            self._container.close()
            self._container = None
            if self._pipe:
                sys.stdout.buffer.flush()
            elif self._sequence:
                self._publish_sequence()
            else:
                os.replace(self._tmp, self.path)

    def _publish_sequence(self) -> None:
        fresh = {p.name for p in self._tmp.iterdir()}
        for name in sorted(fresh):
            os.replace(self._tmp / name, self.path.parent / name)
        self._tmp.rmdir()
        # Leftover frames of an older, longer sequence would be read back as part of this one.
        matcher = _pattern_regex(self.path.name)
        for old in self.path.parent.iterdir():
            if old.name not in fresh and matcher.fullmatch(old.name) and old.is_file():
                old.unlink()

    def _discard(self) -> None:
        if self._carry is not None:
            self._carry.close()
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None
        if self._tmp is None:
            return
        if self._tmp.is_dir():
            shutil.rmtree(self._tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                self._tmp.unlink()
