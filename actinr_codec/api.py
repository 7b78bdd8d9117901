"""The library's front door: encode a video to an .anr, open an .anr and render it.

In the spirit of CompressAI's compress/decompress: ``encode`` takes a video (a path PyAV
reads, or an (N, H, W, 3) uint8 array) and options, fits and codes it, and returns a
report (with the file's bytes when no output path is given); ``open`` reads an .anr (a
path or bytes) and renders frames at any times and size; ``decode`` writes them to a video
file. The command line (cli/) is a thin shell over these three.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from bitstream.container import AnrReader, assemble_file, write_atomically
from bitstream.errors import BitstreamError
from bitstream.header import VERSION
from bitstream.limits import check_gop_kinds, check_gop_ranges, check_info
from bitstream.pictures import PictureLayout, picture_layout
from bitstream.records import PICTURE, VideoInfo, reference_of

from . import __version__
from .media.carry import carried_streams, filter_streams
from .media.frames import Frames, StreamedFrames
from .media.timing import model_clock
from .media.videoio import MAX_RATE_TERM, VideoWriter, output_extension
from .model.config import ModelConfig
from .model.schema import stream_config
from .parallel.local import encode_gops
from .pipeline.decoder import DEFAULT_MAX_MEMORY, AnrDecoder, decode_memory, stream_model
from .pipeline.encoder import EncodedGOP
from .pipeline.gop import plan_gops
from .pipeline.journal import Journal, JournalMismatch, journal_path
from .pipeline.options import EncodeOptions
from .pipeline.picture_decoder import PictureDecoder
from .pipeline.pictures import (
    MAX_FIT_BYTES,
    PictureSettings,
    encode_pictures,
    fit_memory,
    picture_settings,
)
from .pipeline.pictures import stream_config as picture_stream_config
from .pipeline.presets import settings_for
from .pipeline.ratecontrol import rate_controlled, reach_note, target_bits
from .pipeline.settings import EncodeSettings
from .pipeline.source import Source, array_source, file_source
from .pipeline.times import output_size, output_times
from .restoration.denoise import denoise_settings
from .restoration.masks import mask_from_array, read_mask
from .restoration.noise import estimate_noise, sampled_frames
from .runtime import kernel_threads, resolve_device

# Frame rate of an array of frames given without one.
DEFAULT_FPS = Fraction(25)


@dataclass(frozen=True)
class EncodePlan:
    """What an encode is about to do, known once the source is read."""

    width: int
    height: int
    frames: int
    fps: Fraction
    gops: list[range]
    kinds: list[int]  # bitstream.records.INTRA, PREDICTED or PICTURE, for each GOP
    settings: EncodeSettings | PictureSettings  # the second for pictures
    device: str
    noise_level: float | None  # estimated for denoise=0, in 8-bit levels


@dataclass(frozen=True)
class Progress:
    """One progress event of an encode.

    kind: "start" (plan set), "resume" (GOP ``gop`` taken from an interrupted encode's
    journal, its report attached; all come right after start), "step" (a fitting check:
    step, seconds and running psnr of the GOP being fitted; one local job only), or "gop"
    (GOP ``gop`` finished, its report attached; under parallel jobs GOPs finish out of
    order).
    """

    kind: str
    plan: EncodePlan
    gop: int = 0
    step: int = 0
    seconds: float = 0.0
    psnr: float = math.nan
    report: EncodedGOP | None = None


@dataclass
class EncodeReport:
    """What an encode produced and measured."""

    plan: EncodePlan
    gops: list[EncodedGOP]
    size: int  # bytes of the .anr file
    seconds: float
    path: Path | None = None
    data: bytes | None = field(default=None, repr=False)  # the file, when not written
    variable_rate: bool = False  # each frame's own timestamp kept (media.timing)
    carried: int = 0  # bytes of audio and subtitle streams carried (media.carry)
    notes: list[str] = field(default_factory=list)  # what was left out, and why

    @property
    def bpp(self) -> float:
        return self.size * 8 / (self.plan.width * self.plan.height * self.plan.frames)

    @property
    def bitrate(self) -> float:
        """Bits per second of the file over the video's duration, as x264 reports it."""
        return float(self.size * 8 * self.plan.fps / self.plan.frames)

    @property
    def psnr(self) -> float:
        """Mean over GOPs of each GOP's PSNR as decoded (dB)."""
        return float(np.mean([r.stats.psnr for r in self.gops]))


def encode(source: str | os.PathLike | np.ndarray, output: str | os.PathLike | None = None,
           options: EncodeOptions = EncodeOptions(), *, start: int = 0,
           frames: int | None = None, fps: Fraction | float | None = None,
           mask: str | os.PathLike | np.ndarray | None = None,
           settings: EncodeSettings | None = None,
           progress: Callable[[Progress], None] | None = None) -> EncodeReport:
    """Encode a video into an .anr file (``output``), or into bytes (report.data).

    source: a path PyAV reads (start and frames pick a range), read a GOP at a time after
    one planning pass, or (N, H, W, 3) uint8 RGB. fps: the rate to store (default: the
    source's; 25 for an array). mask: inpainting, an image or video path (white = unknown)
    or an (N, H, W) bool array, True where unknown. settings: encoder settings to use as
    they are instead of the options' quality, preset, GOP and denoising (for experiments).

    With an output path, every finished GOP goes to a journal beside it (OUTPUT.journal),
    deleted once the output is written; ``options.resume`` carries on from the GOPs an
    interrupted encode left there, giving the same bytes as an uninterrupted encode.
    Raises ValueError (VideoIOError, BitstreamError, JournalMismatch) on bad input; nothing
    is written to ``output`` unless the encode completes.
    """
    started = time.perf_counter()
    cut_scenes = options.scenecut if settings is None else settings.scenecut
    src, rate, holes = _source(source, options, start, frames, fps, mask, cut_scenes)
    notes: list[str] = []
    stamps = src.timestamps if fps is None else None
    carried = _carried(source, src, options, start, frames, rate, stamps, fps, notes)
    if _pictures(options, src, holes, settings):
        return _encode_pictures(src, rate, stamps, carried, output, options, progress, notes,
                                started)
    noise_level, target = None, target_bits(options, src.count, rate)
    chosen = settings is not None
    if not chosen:
        settings = settings_for(src.width * src.height, options)
    gops = plan_gops(src.count, settings.gop_size, settings.keyint, src.cuts)
    if not chosen:
        if target is not None:
            settings = rate_controlled(options, src, gops, rate, target)
        if options.denoise is not None:
            noise_level = options.denoise or _noise_level(src, holes)
            settings = denoise_settings(settings, noise_level / 255)
    if stamps is not None:
        settings = dataclasses.replace(settings, frame_times=model_clock(stamps))
    device = (str(resolve_device(options.device)) if options.scheduler is None
              else options.device)
    plan = EncodePlan(src.width, src.height, src.count, rate, gops.gops, gops.kinds, settings,
                      device, noise_level)
    info = VideoInfo(width=src.width, height=src.height, frames=src.count,
                     fps_num=rate.numerator, fps_den=rate.denominator, colour=src.colour)
    _check_writable(info, plan)
    journal, done = _journal(output, options, plan, src, holes)
    on_gop, on_check = _announced(progress, plan, journal, done)
    with _journaled(journal):
        if options.scheduler is None:
            reports = encode_gops(src.frames, gops, settings, options.jobs, device, on_gop,
                                  on_check, options.segment, holes, done, options.threads)
        else:
            from .parallel.cluster import encode_on_cluster

            reports = encode_on_cluster(options.scheduler, src.frames, gops, settings,
                                        options.device, on_gop, options.segment, holes,
                                        options.shared_input, done)
    data = assemble_file(info, stream_config(settings.model, settings.gop_size),
                         [r.coded for r in reports], stamps, carried)
    if target is not None:
        note = reach_note(target, len(data) * 8, [r.stats.rate_weight for r in reports],
                          settings.model.width)
        notes += [] if note is None else [note]
    return _written(output, journal, data, plan, reports, started, stamps, carried, notes)


def _pictures(options: EncodeOptions, src: Source, holes: Frames | None,
              settings: EncodeSettings | None) -> bool:
    """Whether the encode codes pictures (options.representation): "auto" takes them for
    a single frame unless it asks for what only GOP models do; ValueError where "latent"
    asks for that."""
    if options.representation not in ("auto", "latent", "mlp"):
        raise ValueError(f"representation must be auto, latent or mlp, not "
                         f"{options.representation!r}")
    asked = [what for what, given in (
        ("a mask", holes is not None), ("denoising", options.denoise is not None),
        ("a bitrate or size", options.bitrate is not None or options.target_size is not None),
        ("a scheduler", options.scheduler is not None), ("parallel jobs", options.jobs > 1),
        ("encoder settings", settings is not None)) if given]
    large = fit_memory(src.height, src.width) > MAX_FIT_BYTES
    if options.representation == "auto":
        return src.count == 1 and not asked and not large
    if options.representation == "latent" and asked:
        raise ValueError(f"pictures (representation latent) do not take {asked[0]} yet")
    if options.representation == "latent" and large:
        warnings.warn(f"fitting {src.width}x{src.height} pictures will need about "
                      f"{fit_memory(src.height, src.width) >> 20} MiB", stacklevel=3)
    return options.representation == "latent"


def _encode_pictures(src: Source, rate: Fraction, stamps, carried: bytes | None, output,
                     options: EncodeOptions, progress: Callable[[Progress], None] | None,
                     notes: list[str], started: float) -> EncodeReport:
    """Every frame coded as a picture (pipeline/pictures.py), into a file of pictures."""
    settings = picture_settings(options)
    info = VideoInfo(width=src.width, height=src.height, frames=src.count,
                     fps_num=rate.numerator, fps_den=rate.denominator, colour=src.colour)
    config = picture_stream_config(settings.fit)
    check_info(info)
    layout = picture_layout(config, info)
    device = str(resolve_device(options.device))
    plan = EncodePlan(src.width, src.height, src.count, rate,
                      [range(k, k + 1) for k in range(src.count)], [PICTURE] * src.count,
                      settings, device, None)
    journal, done = _journal(output, options, plan, src, None, layout)
    on_gop, on_check = _announced(progress, plan, journal, done)
    with _journaled(journal):
        reports = encode_pictures(src.frames, src.count, settings, layout, device, on_gop,
                                  on_check, options.threads, done)
    data = assemble_file(info, config, [r.coded for r in reports], stamps, carried)
    return _written(output, journal, data, plan, reports, started, stamps, carried, notes)


def _written(output, journal: Journal | None, data: bytes, plan: EncodePlan,
             reports: list[EncodedGOP], started: float, stamps, carried: bytes | None,
             notes: list[str]) -> EncodeReport:
    """A finished encode's file written to ``output`` (its journal then discarded), or its
    bytes kept in the report."""
    if output is not None:
        write_atomically(output, data)
        journal.discard()
    return EncodeReport(plan, reports, len(data), time.perf_counter() - started,
                        path=None if output is None else Path(output),
                        data=data if output is None else None,
                        variable_rate=stamps is not None,
                        carried=0 if carried is None else len(carried), notes=notes)


def _announced(progress: Callable[[Progress], None] | None, plan: EncodePlan,
               journal: Journal | None, done: dict[int, EncodedGOP]
               ) -> tuple[Callable[[int, EncodedGOP], None], Callable[[int, float, float], None]]:
    """Announce an encode's start and the GOPs it resumes; returns the callbacks that
    journal each finished GOP and announce it (on_gop) and a fit's checks (on_check)."""
    notify = progress or (lambda event: None)
    notify(Progress("start", plan))
    for k in sorted(done):
        stats = done[k].stats
        notify(Progress("resume", plan, gop=k, step=stats.iters, seconds=stats.seconds,
                        psnr=stats.psnr, report=done[k]))
    current = [0]

    def on_gop(k: int, report: EncodedGOP) -> None:
        current[0] = k + 1
        if journal is not None:
            journal.add(report)
        stats = report.stats
        notify(Progress("gop", plan, gop=k, step=stats.iters, seconds=stats.seconds,
                        psnr=stats.psnr, report=report))

    def on_check(step: int, seconds: float, psnr: float) -> None:
        notify(Progress("step", plan, gop=current[0], step=step, seconds=seconds, psnr=psnr))

    return on_gop, on_check


@contextlib.contextmanager
def _journaled(journal: Journal | None) -> Iterator[None]:
    """The fits of an encode: its journal closed after them, and discarded if they fail
    before any GOP is finished (nothing worth resuming); a complete journal is kept until
    the output is in place."""
    try:
        yield
    except BaseException:
        if journal is not None:
            journal.close()
            if not journal.entries:
                journal.discard()
        raise
    if journal is not None:
        journal.close()


def _carried(source, src: Source, options: EncodeOptions, start: int, frames: int | None,
             rate: Fraction, stamps, fps, notes: list[str]) -> bytes | None:
    """The source's audio and subtitle streams to carry (media.carry), cut to the frames
    encoded, or None; what is left out is said in ``notes``."""
    kinds = tuple(k for k, keep in (("audio", options.audio), ("subtitle", options.subtitles))
                  if keep)
    if isinstance(source, np.ndarray) or not kinds:
        return None
    origin = src.origin if src.origin is not None else start / rate
    if start == 0 and frames is None:
        end = None  # the whole file: every packet, priming and tail included
    elif stamps is not None:
        end = origin + float(Fraction((stamps.pts[-1] - stamps.pts[0]) * stamps.num,
                                      stamps.den) + 1 / rate)
    else:
        end = origin + float(src.count / rate)
    streams = carried_streams(source, origin, end, kinds)
    if streams is not None and fps is not None and rate != src.fps:
        notes.append(f"audio and subtitles dropped: --fps {fps} retimes the video, so they "
                     f"would drift")
        return None
    return streams


def _check_writable(info: VideoInfo, plan: EncodePlan) -> None:
    """Before any fitting: the file this encode will write passes the reader's checks of
    its header and model (the format's limits, docs/bitstream.md), so that no encode runs
    for an hour to a file that cannot be written or read."""
    check_info(info)
    check_gop_ranges([(g.start, g.stop) for g in plan.gops], info.frames, VERSION)
    check_gop_kinds([(kind, reference_of(k, kind)) for k, kind in enumerate(plan.kinds)], VERSION)
    _, layout = stream_model(stream_config(plan.settings.model, plan.settings.gop_size), info,
                             VERSION)
    needed = decode_memory(layout, info.height, info.width)
    if needed > DEFAULT_MAX_MEMORY:
        warnings.warn(f"decoding this file will need about {needed >> 20} MiB, more than the "
                      f"decoder allows by default: decode it with --max-memory", stacklevel=3)


def _source(source, options: EncodeOptions, start: int, frames: int | None, fps, mask,
            cut_scenes: bool) -> tuple[Source, Fraction, Frames | None]:
    """The frames to encode, their rate, and a reader of the unknown-pixel mask over them."""
    if isinstance(source, np.ndarray):
        if source.ndim != 4 or source.shape[3] != 3 or source.dtype != np.uint8:
            raise ValueError(f"frames must be an (N, H, W, 3) uint8 array, got "
                             f"{source.dtype} {source.shape}")
        video = source[start: None if frames is None else start + frames]
        if len(video) == 0:
            raise ValueError(f"no frames from frame {start}")
        src, rate = array_source(video, cut_scenes), DEFAULT_FPS
    else:
        if options.shared_input and options.scheduler is None:
            raise ValueError("shared_input needs a scheduler")
        # Workers of a cluster resolve the path in their own working directory.
        path = os.path.abspath(source) if options.shared_input else source
        src = file_source(path, start, frames, cut_scenes)
        rate = src.fps
    if options.shared_input and not isinstance(src.frames, StreamedFrames):
        raise ValueError("shared_input needs a source path whose frames stream in order")
    if fps is not None:
        rate = Fraction(fps) if not isinstance(fps, float) else Fraction(str(fps))
    if rate <= 0:
        raise ValueError(f"frame rate must be positive, got {rate}")
    # A rate FFmpeg cannot hold could be stored but never decoded to a video file.
    rate = rate.limit_denominator(MAX_RATE_TERM)
    if rate.numerator > MAX_RATE_TERM:
        raise ValueError(f"frame rate {float(rate):g} is too high (at most {MAX_RATE_TERM})")
    n, height, width = src.count, src.height, src.width
    if mask is None:
        return src, rate, None
    if isinstance(mask, np.ndarray):
        if mask.shape != (n, height, width):
            raise ValueError(f"mask must be ({n}, {height}, {width}) bool, got {mask.shape}")
        return src, rate, mask_from_array(mask)
    return src, rate, read_mask(mask, start, n, height, width)


def _noise_level(src: Source, holes: Frames | None) -> float:
    """The source's estimated noise in 8-bit levels, from a sample of its frames."""
    picked = sampled_frames(src.count)
    sample = np.concatenate([src.frames(int(i), 1) for i in picked])
    unknown = None if holes is None else np.concatenate([holes(int(i), 1) for i in picked])
    return float(np.sqrt(np.mean(estimate_noise(sample, unknown) ** 2))) * 255


def _journal(output, options: EncodeOptions, plan: EncodePlan, src: Source,
             holes: Frames | None, layout: PictureLayout | None = None
             ) -> tuple[Journal | None, dict[int, EncodedGOP]]:
    """The journal of an encode to ``output`` (none for bytes), and the GOPs it already
    holds when resuming (layout: the pictures', for an encode of pictures)."""
    if output is None:
        return None, {}
    path = journal_path(output)
    identity = _identity(options, plan, src, holes)
    if options.resume and path.exists():
        journal, done = Journal.resume(path, identity, layout)
        for k, report in done.items():
            if not (0 <= k < len(plan.gops) and report.frames == plan.gops[k]
                    and report.kind == plan.kinds[k]):
                journal.close()
                raise JournalMismatch(f"{path} holds a GOP {k} that is not this encode's; run "
                                      f"without --resume to start over")
        return journal, done
    return Journal.create(path, identity), {}


def _identity(options: EncodeOptions, plan: EncodePlan, src: Source,
              holes: Frames | None) -> dict:
    """What decides an encode's bytes, for telling its journal from another encode's."""
    unknown = None
    if holes is not None:
        digest = hashlib.sha256()
        for gop in plan.gops:
            digest.update(np.ascontiguousarray(holes(gop.start, len(gop))).data)
        unknown = digest.hexdigest()
    return {
        "actinr": __version__, "source": src.digest, "colour": src.colour,
        "frames": plan.frames,
        "size": [plan.width, plan.height], "fps": str(plan.fps), "mask": unknown,
        "quality": options.quality, "preset": options.preset,
        # A picture's settings have no GOP length or keyint: its GOPs are single frames.
        **({"gop": plan.settings.gop_size, "keyint": plan.settings.keyint}
           if isinstance(plan.settings, EncodeSettings) else {}),
        "seed": options.seed,
        "settings": repr(plan.settings), "plan": [[g.start, g.stop] for g in plan.gops],
        "kinds": plan.kinds, "device": plan.device, "jobs": options.jobs,
        "segment": options.segment, "scheduler": options.scheduler,
        "threads": kernel_threads(options.threads), "torch_threads": torch.get_num_threads(),
    }


class AnrVideo:
    """An open .anr file: its header, and frames rendered at any times and size.

    Frame times are in source frames (0 is the first frame, 2.5 lies halfway between the
    third and fourth); only the GOPs serving the times asked for are read and decoded.
    """

    def __init__(self, source: str | os.PathLike | bytes, device: str = "auto",
                 max_memory: int = DEFAULT_MAX_MEMORY, threads: int | None = None):
        reader = AnrReader(source)
        try:
            self._decoder = (PictureDecoder(reader, max_memory, threads)
                             if reader.pictures is not None else
                             AnrDecoder(reader, resolve_device(device), max_memory, threads))
        except BaseException:
            reader.close()
            raise
        self.info: VideoInfo = self._decoder.info

    @property
    def fps(self) -> Fraction:
        return Fraction(self.info.fps_num, self.info.fps_den)

    @property
    def model_config(self) -> ModelConfig | None:
        """The GOP models' configuration; None for a file of pictures."""
        return getattr(self._decoder, "model_config", None)

    @property
    def gops(self) -> list[range]:
        return self._decoder.gops

    @property
    def kinds(self) -> list[int]:
        """Each GOP's kind, bitstream.records.INTRA, PREDICTED or PICTURE."""
        return self._decoder.kinds

    @property
    def timestamps(self):
        """Each frame's own timestamp (bitstream.side.Timestamps) for a variable frame
        rate, or None: frame k at k / fps seconds."""
        return self._decoder.reader.timestamps

    @property
    def carried_size(self) -> int:
        """Bytes of carried audio and subtitle streams (0: none)."""
        return self._decoder.reader.streams_size

    def carried(self) -> bytes:
        """The carried streams: a Matroska file of the source's audio and subtitle
        packets, timed from the first frame."""
        return self._decoder.reader.read_streams()

    def source_times(self, start: float | None = None, end: float | None = None
                     ) -> tuple[list[float], list[int], Fraction]:
        """A variable-rate file's own frames within [start, end) seconds: their model
        times, their timestamps counted from the first of them, and the time base those
        count in."""
        stamps = self.timestamps
        seconds = stamps.seconds()
        keep = [k for k, s in enumerate(seconds)
                if (start is None or s >= start - 1e-9) and (end is None or s < end)]
        if not keep:
            raise ValueError(f"no frames between start and end in this {seconds[-1]:.3f}s "
                             f"video")
        clock = self._decoder.clock
        return ([clock[k] for k in keep], [stamps.pts[k] - stamps.pts[keep[0]] for k in keep],
                Fraction(stamps.num, stamps.den))

    def gop_model(self, k: int):
        """GOP k's decoded model: a torch module, or for a picture its
        bitstream.pictures.PictureRecord."""
        return self._decoder.model(k)

    def times(self, fps_scale: float | None = None, fps: Fraction | None = None,
              start: float | None = None, end: float | None = None
              ) -> tuple[list[float], Fraction]:
        """Frame times and output rate for playback options, as ``actinr decode`` has them:
        fps_scale F renders F times as many frames (slow motion), fps R resamples to R;
        start (inclusive) and end (exclusive) are in seconds."""
        return output_times(self.info.frames, self.fps, fps_scale, fps, start, end)

    def size(self, scale: float | None = None,
             size: tuple[int, int] | None = None) -> tuple[int, int]:
        """(height, width) of frames at ``scale`` times the source size, or of size
        (width, height)."""
        return output_size(self.info.height, self.info.width, scale, size)

    def frames(self, times: list[float] | None = None, *, scale: float | None = None,
               size: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
        """(H, W, 3) uint8 RGB frames at the given times (default: every source frame),
        rendered a few at a time."""
        times = [float(t) for t in range(self.info.frames)] if times is None else times
        height, width = self.size(scale, size)
        return self._decoder.frames(times, height, width)

    def render(self, times: list[float] | None = None, *, scale: float | None = None,
               size: tuple[int, int] | None = None) -> np.ndarray:
        """The frames of ``frames`` stacked into one (N, H, W, 3) uint8 array."""
        return np.stack(list(self.frames(times, scale=scale, size=size)))

    def frame(self, t: float, *, scale: float | None = None,
              size: tuple[int, int] | None = None) -> np.ndarray:
        """The (H, W, 3) uint8 frame at time t."""
        return next(self.frames([float(t)], scale=scale, size=size))

    def close(self) -> None:
        self._decoder.close()

    def __enter__(self) -> AnrVideo:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open(source: str | os.PathLike | bytes, device: str = "auto",  # noqa: A001
         max_memory: int = DEFAULT_MAX_MEMORY, threads: int | None = None) -> AnrVideo:
    """Open an .anr file (a path or its bytes) for rendering; BitstreamError if invalid,
    or if its models, or later the frames asked for, would need more than max_memory
    bytes. threads: the CPU render pool's size (runtime.kernel_threads)."""
    return AnrVideo(source, device, max_memory, threads)


@dataclass(frozen=True)
class DecodeReport:
    """What a decode wrote."""

    path: str
    frames: int
    width: int
    height: int
    fps: Fraction
    seconds: float  # rendering and writing, after the file was opened
    notes: list[str] = field(default_factory=list)  # what was dropped or changed, and why


def decode(source: str | os.PathLike | bytes, output: str | os.PathLike, *,
           scale: float | None = None, size: tuple[int, int] | None = None,
           fps_scale: float | None = None, fps: Fraction | None = None,
           start: float | None = None, end: float | None = None, lossless: bool = False,
           device: str = "auto", max_memory: int = DEFAULT_MAX_MEMORY,
           threads: int | None = None, format: str | None = None,  # noqa: A002
           audio: bool = True, subtitles: bool = True) -> DecodeReport:
    """Render an .anr into a video file (mp4, mkv, mov, y4m or a %d PNG pattern), or with
    output "-" to standard output (y4m, or mkv), with the playback options of
    ``AnrVideo.times`` and ``AnrVideo.size``; ``format`` overrides the output's extension.

    A variable-frame-rate file plays each frame at its own timestamp (y4m and PNG, which
    have no timestamps, get a constant rate instead: its average, rendered at exact
    instants). Carried audio and subtitles (unless ``audio``/``subtitles`` say no) are
    muxed in, cut as the video is; slow motion drops them. What is dropped is said in the
    report's notes. Refused before anything is allocated or written if it would need more
    than max_memory bytes."""
    notes: list[str] = []
    with AnrVideo(source, device, max_memory, threads) as video:
        extension = output_extension(output, format)
        stamps = video.timestamps
        pts, time_base = None, None
        if stamps is not None and fps_scale is None and fps is None:
            if extension in (".y4m", ".png"):
                fps = video.fps
                notes.append(f"{extension[1:]} has no timestamps: the variable frame rate "
                             f"becomes a constant {float(fps):.6g} fps (--fps R to choose)")
            else:
                times, pts, time_base = video.source_times(start, end)
                rate = video.fps
        if pts is None:
            times, rate = video.times(fps_scale, fps, start, end)
        height, width = video.size(scale, size)
        first_second = times[0] / video.fps
        carried = _carried_for_decode(video, fps_scale, audio, subtitles, max_memory, notes)
        began = time.perf_counter()
        frames = video.frames(times, size=(width, height))
        # The first frame before the writer: a file whose first GOP cannot be decoded
        # fails before an encoder sized by its header is set up.
        first = next(frames)
        window = (float(first_second), float(end) if end is not None else math.inf)
        with VideoWriter(output, width, height, rate, lossless=lossless, format=format,
                         colour=video.info.colour, time_base=time_base, carried=carried,
                         window=window) as writer:
            notes += writer.notes
            for k, frame in enumerate(itertools.chain([first], frames)):
                writer.write(frame, None if pts is None else pts[k])
    return DecodeReport(str(output), len(times), width, height, rate,
                        time.perf_counter() - began, notes)


def _carried_for_decode(video: AnrVideo, fps_scale: float | None, audio: bool,
                        subtitles: bool, max_memory: int, notes: list[str]) -> bytes | None:
    """The carried streams a decode muxes, or None (with the reason in notes)."""
    size = video.carried_size
    if size == 0 or not (audio or subtitles):
        return None
    if fps_scale is not None and fps_scale != 1:
        notes.append(f"audio and subtitles dropped: {fps_scale:g}x slow motion changes the "
                     f"timing")
        return None
    if size > max_memory:
        raise BitstreamError(f"the carried streams take {size >> 20} MiB, more than "
                             f"--max-memory allows")
    data = video.carried()
    if audio and subtitles:
        return data
    return filter_streams(data, ("audio",) if audio else ("subtitle",))


__all__ = ["AnrVideo", "DecodeReport", "EncodeOptions", "EncodePlan", "EncodeReport",
           "Progress", "decode", "encode", "open"]
