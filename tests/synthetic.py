"""Tiny synthetic clips for tests: smooth, textured content moving at sub-pixel speeds."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def moving_pattern(frames: int = 8, height: int = 64, width: int = 64, speed: float = 1.0,
                   times: np.ndarray | None = None) -> np.ndarray:
    """(frames, H, W, 3) uint8 clip of blobs and stripes drifting ``speed`` pixels per frame.

    times: optional real frame times to sample instead of 0..frames-1 (for ground-truth
    in-between frames).
    """
    t = np.arange(frames, dtype=np.float64) if times is None else np.asarray(times, np.float64)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    out = np.empty((len(t), height, width, 3), np.float64)
    for i, ti in enumerate(t):
        xs, ys = x - speed * ti, y - 0.5 * speed * ti
        r = 0.5 + 0.35 * np.sin(2 * np.pi * (xs / 23.0 + ys / 31.0))
        g = 0.5 + 0.35 * np.exp(-((xs - width * 0.4) ** 2 + (ys - height * 0.5) ** 2) / (2 * 9.0**2))
        g -= 0.25 * np.cos(2 * np.pi * ys / 17.0)
        b = 0.3 + 0.4 * (xs % 29.0 > 14.5) * 0.5 + 0.3 * np.cos(2 * np.pi * (xs - ys) / 41.0)
        out[i] = np.stack([r, g, b], axis=-1)
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)


def write_clip(path: Path, frames: np.ndarray, codec: str, pix_fmt: str, rate=Fraction(25)) -> Path:
    """Write frames with PyAV directly, independently of the code under test."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_av_clip(path: Path, frames: np.ndarray, times: list[Fraction],
                  audio: str | None = "aac") -> Path:
    """Write frames at their own times (seconds; uneven for a variable frame rate), with a
    440 Hz tone in ``audio`` (aac, libopus or None) over the same span, with PyAV
    directly; the video's clock counts 90 kHz."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        video.codec_context.time_base = Fraction(1, 90000)
        sound = None
        if audio is not None:
            sound = container.add_stream(audio, rate=48000)
            sound.layout = "mono"
        for f, t in zip(frames, times):
            picture = av.VideoFrame.from_ndarray(f, format="rgb24")
            picture.pts, picture.time_base = int(t * 90000), Fraction(1, 90000)
            for packet in video.encode(picture):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if sound is not None:
            rate, step = 48000, 1024 if audio == "aac" else 960
            samples = int(rate * (times[-1] + times[1] - times[0]))
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / rate)).astype(np.float32)
            for i in range(0, samples, step):
                block = av.AudioFrame.from_ndarray(tone[None, i:i + step].copy(), format="fltp",
                                                   layout="mono")
                block.sample_rate, block.pts = rate, i
                for packet in sound.encode(block):
                    container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)
    return path


class FailingFrames:
    """A frame reader (media.frames) over an array that raises for any read reaching frame
    ``broken``: a segment that fails in its worker. Module level, so spawned workers can
    unpickle it."""

    def __init__(self, array: np.ndarray, broken: int, offset: int = 0):
        self.array, self.broken, self.offset = array, broken, offset

    def __call__(self, first: int, count: int) -> np.ndarray:
        if first <= self.broken < first + count:
            raise ValueError(f"frame {self.broken} cannot be read")
        return self.array[first - self.offset: first - self.offset + count]

    def part(self, first: int, stop: int) -> FailingFrames:
        return FailingFrames(self.array[first - self.offset: stop - self.offset], self.broken,
                             first)
