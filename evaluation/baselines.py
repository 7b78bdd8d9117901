"""Baselines: x264/x265 coding, frame repetition, blending, FFmpeg filters, upscaling.

Every baseline takes and returns (N, H, W, 3) uint8 RGB; the FFmpeg ones run through PyAV
and convert to and from YUV with the same BT.601 matrix and accurate swscale flags as
actinr's own video I/O.
"""

from __future__ import annotations

import time
from fractions import Fraction

import av
import av.filter
import numpy as np
from av.video.reformatter import ColorRange, Interpolation

from actinr_codec.media.videoio import BT601, SWS_FLAGS, yuv_frame

from .quality import Planes, frame_planes

# name -> (FFmpeg encoder, FFmpeg decoder). "x264-444" is x264 on full-resolution chroma,
# the anchor for PSNR-RGB (4:2:0 alone caps a colourful picture's PSNR-RGB).
CODECS = {"x264": ("libx264", "h264"), "x265": ("libx265", "hevc"),
          "x264-444": ("libx264", "h264")}
PRESET = "medium"
PIX_FMT = "yuv420p"
PIX_FMTS = {"x264": PIX_FMT, "x265": PIX_FMT, "x264-444": "yuv444p"}
# x265 would repeat a 2.3 KB text SEI of its version and options at every keyframe
# (info=0 stops it); x264 writes its 0.7 KB one once and has no switch for it.
EXTRA = {"x264": {}, "x265": {"x265-params": "info=0:log-level=error"}, "x264-444": {}}
# With a fixed keyint, scene-cut detection would start extra GOPs: keyint alone then sets
# the GOP length. At the encoders' default keyint their scene-cut detection stays on.
FIXED_KEYINT = {"x264": {"sc_threshold": "0"},
                "x265": {"x265-params": "scenecut=0:info=0:log-level=error"},
                "x264-444": {"sc_threshold": "0"}}
DEFAULT_KEYINT = 250  # x264's and x265's
# FFmpeg's defaults (obmc, bilateral epzs search, 16 px blocks) with motion-compensated
# interpolation; its scene-change detector is off, as it falls back to repeating frames
# whenever a small frame changes a lot, which is motion here, not a cut.
MINTERPOLATE = "mi_mode=mci:scd=none"
# The prefix of a restoration baseline's method name when it starts from actinr's 1x decode
# of the degraded clip instead of the degraded clip itself.
DECODED_INPUT = "actinr 1x"
# The prefix of a restoration baseline's method name when it starts from x264's decode of
# the degraded clip, coded in no more bytes than actinr's file.
EQUAL_BYTES = "x264 same bytes"
UPSCALERS = {"bicubic": Interpolation.BICUBIC, "lanczos": Interpolation.LANCZOS}


def codec_settings(name: str, crf: int, keyint: int | None = None) -> dict:
    """The encoder settings of one baseline point, and an equivalent ffmpeg command line.

    keyint: None for the encoder's own default (250, with its scene-cut detection), else a
    fixed GOP length without scene cuts.
    """
    if name not in CODECS:
        raise ValueError(f"unknown baseline codec {name!r} (use {', '.join(CODECS)})")
    encoder, pix_fmt = CODECS[name][0], PIX_FMTS[name]
    extras = EXTRA[name] if keyint is None else FIXED_KEYINT[name]
    options = {"preset": PRESET, "crf": str(crf), **extras}
    extra = " ".join(f"-{k} {v}" for k, v in extras.items())
    gop = "" if keyint is None else f"-g {keyint} "
    return {
        "codec": name, "encoder": encoder, "crf": crf,
        "keyint": DEFAULT_KEYINT if keyint is None else keyint, "pix_fmt": pix_fmt,
        "options": options, "colour": "BT.601, limited range",
        "ffmpeg": (f"ffmpeg -i SOURCE -c:v {encoder} -preset {PRESET} -crf {crf} {gop}"
                   f"{extra} -pix_fmt {pix_fmt} -colorspace smpte170m -color_range tv "
                   "-sws_flags bicubic+accurate_rnd+full_chroma_int+full_chroma_inp OUT.mkv"),
    }


def encode(frames: np.ndarray, settings: dict, fps: Fraction) -> list[av.Packet]:
    """Encode RGB frames with ``codec_settings``: the packets in decode order (the first
    holds the parameter sets and SEI with the first frame)."""
    _, height, width, _ = frames.shape
    pix_fmt = settings["pix_fmt"]
    if pix_fmt == PIX_FMT and (width % 2 or height % 2):
        raise ValueError(f"the {PIX_FMT} baselines need an even width and height, not "
                         f"{width}x{height}")
    enc = av.CodecContext.create(CODECS[settings["codec"]][0], "w")
    enc.width, enc.height, enc.pix_fmt = width, height, pix_fmt
    enc.time_base, enc.framerate, enc.gop_size = 1 / fps, fps, settings["keyint"]
    enc.colorspace, enc.color_range = BT601, ColorRange.MPEG
    enc.options = settings["options"]
    packets = []
    for i, rgb in enumerate(frames):
        frame = yuv_frame(rgb, pix_fmt)
        frame.pts, frame.time_base = i, 1 / fps
        packets += enc.encode(frame)
    return packets + enc.encode(None)


def decode(packets: list[av.Packet], settings: dict, n: int) -> list[av.VideoFrame]:
    """A baseline's n pictures back from its packets (``encode``), in display order."""
    encoder, decoder = CODECS[settings["codec"]]
    dec = av.CodecContext.create(decoder, "r")
    pictures = [f for packet in [*packets, None] for f in dec.decode(packet)]
    if len(pictures) != n:
        raise RuntimeError(f"{encoder} returned {len(pictures)} of {n} frames")
    return pictures


def code(frames: np.ndarray, settings: dict, fps: Fraction
         ) -> tuple[int, np.ndarray, float, float, list[Planes] | None]:
    """Encode RGB frames with ``codec_settings`` and decode them back.

    Returns the coded size in bytes (the sum of the packets' sizes: the elementary stream
    with its parameter sets and SEI, no container), the decoded RGB frames, the encode
    and decode seconds, each including its RGB/YUV conversion, and for a yuv420p codec
    the decoded planes of each frame (for PSNR-YUV420; None for yuv444p).
    """
    start = time.perf_counter()
    packets = encode(frames, settings, fps)
    encode_s = time.perf_counter() - start
    size = sum(p.size for p in packets)

    start = time.perf_counter()
    pictures = decode(packets, settings, len(frames))
    decoded = [f.to_ndarray(format="rgb24", interpolation=SWS_FLAGS) for f in pictures]
    decode_s = time.perf_counter() - start
    planes = [frame_planes(f) for f in pictures] if settings["pix_fmt"] == PIX_FMT else None
    return size, np.stack(decoded), encode_s, decode_s, planes


def code_within(frames: np.ndarray, fps: Fraction, budget: int
                ) -> tuple[int, int, np.ndarray] | None:
    """x264 medium (default keyint) at the lowest crf whose stream takes at most ``budget``
    bytes: the crf, the bytes and the decoded RGB frames; None where even crf 51 takes more,
    or the frames' width or height is odd (yuv420p cannot hold them).

    Found by bisection over the integer crfs, the size falling as the crf rises.
    """
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        return None
    found, low, high = None, 0, 51
    while low <= high:
        crf = (low + high) // 2
        size, decoded, *_ = code(frames, codec_settings("x264", crf), fps)
        if size <= budget:
            found, high = (crf, size, decoded), crf - 1
        else:
            low = crf + 1
    return found


def repeat_frames(frames: np.ndarray, factor: int) -> np.ndarray:
    """``factor`` times the frame rate by holding each frame: (factor * (N - 1) + 1) frames."""
    return np.repeat(frames, factor, axis=0)[: factor * (len(frames) - 1) + 1]


def blend_frames(frames: np.ndarray, factor: int) -> np.ndarray:
    """``factor`` times the frame rate by linear blending of the two neighbouring frames."""
    j = np.arange(factor * (len(frames) - 1) + 1)
    before, after = j // factor, np.minimum(j // factor + 1, len(frames) - 1)
    a = (j % factor / factor)[:, None, None, None]
    mixed = (1 - a) * frames[before] + a * frames[after].astype(np.float64)
    return np.round(mixed).astype(np.uint8)


def filter_frames(frames: list[np.ndarray], fps: Fraction, spec: str,
                  pix_fmt: str = "yuv444p") -> list[tuple[Fraction, np.ndarray]]:
    """RGB frames through an FFmpeg filter chain ``spec`` in a PyAV graph, at ``fps``.

    Frames enter as ``pix_fmt`` (YUV ones in BT.601, limited range, as actinr writes
    video); returns every output frame as (time in seconds, RGB array), in output order.
    """
    height, width = frames[0].shape[:2]
    graph = av.filter.Graph()
    source = graph.add_buffer(width=width, height=height, format=pix_fmt, time_base=1 / fps)
    graph.link_nodes(source, *(graph.add(*f.split("=", 1)) for f in spec.split(",")),
                     graph.add("buffersink")).configure()
    out = []

    def drain() -> None:
        while True:
            try:
                frame = graph.vpull()
            except (av.BlockingIOError, av.EOFError):
                return
            out.append((frame.pts * frame.time_base,
                        frame.to_ndarray(format="rgb24", interpolation=SWS_FLAGS)))

    for i, rgb in enumerate(frames):
        if pix_fmt.startswith("yuv"):
            frame = yuv_frame(rgb, pix_fmt)
        else:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame = frame.reformat(format=pix_fmt)
        frame.pts, frame.time_base = i, 1 / fps
        graph.vpush(frame)
        drain()
    graph.vpush(None)
    drain()
    return out


def filter_video(frames: np.ndarray, fps: Fraction, spec: str,
                 pix_fmt: str = "yuv444p") -> np.ndarray:
    """A frame-for-frame FFmpeg filter (a denoiser, removelogo) applied to RGB frames."""
    out = filter_frames(list(frames), fps, spec, pix_fmt)
    if len(out) != len(frames):
        raise RuntimeError(f"{spec} returned {len(out)} frames, not {len(frames)}")
    return np.stack([rgb for _, rgb in out])


def minterpolate(frames: np.ndarray, factor: int, fps: Fraction) -> np.ndarray:
    """FFmpeg's motion-compensated interpolation to ``factor`` times the frame rate.

    Returns (factor * (N - 1) + 1) frames: output j is at input time j / factor. The
    filter converts to yuv444p, BT.601 limited range, and back.
    """
    n = len(frames)
    if n < 2 or factor < 2:
        raise ValueError("minterpolate needs two frames or more and a factor of 2 or more")
    # The filter holds back the last interval until it sees a frame beyond it: repeat the
    # last frame once and drop what it interpolates towards that copy.
    out = {round(t * fps * factor): rgb for t, rgb in
           filter_frames([*frames, frames[-1]], fps,
                         f"minterpolate=fps={fps * factor}:{MINTERPOLATE}")}
    wanted = range(factor * (n - 1) + 1)
    if any(j not in out for j in wanted):
        raise RuntimeError(f"minterpolate returned {len(out)} frames, not {len(wanted)}")
    return np.stack([out[j] for j in wanted])


def upscale(frames: np.ndarray, height: int, width: int, method: str) -> np.ndarray:
    """Frames resized to height x width by swscale's bicubic or lanczos filter, in RGB."""
    flags = UPSCALERS[method] | Interpolation.ACCURATE_RND
    return np.stack([av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
                     .reformat(width=width, height=height, interpolation=flags).to_ndarray()
                     for f in frames])
