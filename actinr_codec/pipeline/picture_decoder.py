"""Rendering a file of pictures (format version 5, representation "latent").

Each picture GOP is one frame. Frame time t between pictures k and k + 1 (slow motion, a
resampled rate) is the linear blend of the two, weighted by where t lies between their
times; pictures are decoded when first needed and the last few kept, so playing forward
decodes each once.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Iterator

import numpy as np
import torch

from bitstream.container import AnrReader
from bitstream.pictures import PictureLayout, PictureRecord, picture_elements

from ..media.timing import model_clock
from ..model.pictures import render_picture
from ..model.render import to_uint8
from ..native.latents import decode_grids
from .decoder import check_memory

# Pictures kept decoded, and renders kept at the size last asked for: a blend needs two.
KEEP_PICTURES = 3
# Floats a render holds per output pixel beside one per grid: native/synthesis.c keeps
# every grid upsampled and a scratch plane of up to three floats a pixel, and its RGB
# output takes three (the hidden activations are per block of pixels).
RENDER_FLOATS_PER_PIXEL = 6
# Whole copies of an output frame alive at once: the renders kept (float RGB), the blend
# and the uint8 frame with a writer's copies.
FRAME_BYTES_PER_PIXEL = 12 * KEEP_PICTURES + 12 + 4 * 3


class PictureDecoder:
    """An open file of pictures: its header at once, pictures on demand. The same
    interface as decoder.AnrDecoder (info, gops, kinds, clock, frames, reader, close)."""

    def __init__(self, reader: AnrReader, max_memory: int, threads: int | None = None):
        self._reader = reader
        self.max_memory = max_memory
        self.info = reader.info
        self.config = dict(reader.config)
        self.layout: PictureLayout = reader.pictures
        self._check_memory(4 * picture_elements(self.layout) * KEEP_PICTURES, "its pictures")
        self.gops = [range(e.start, e.stop) for e in reader.index]
        self.kinds = [e.kind for e in reader.index]
        stamps = reader.timestamps
        self.clock = None if stamps is None else model_clock(stamps)
        self.threads = threads
        self._pictures: OrderedDict[int, PictureRecord] = OrderedDict()
        self._renders: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()
        self._read: set[int] = set()

    def _check_memory(self, needed: int, what: str) -> None:
        check_memory(needed, self.max_memory, what)

    def model(self, k: int) -> PictureRecord:
        """Picture k as decoded."""
        if k not in self._pictures:
            self._read.add(k)
            self._pictures[k] = self._reader.read_gop(k, grid_decoder=decode_grids).picture
            while len(self._pictures) > KEEP_PICTURES:
                self._pictures.popitem(last=False)
        self._pictures.move_to_end(k)
        return self._pictures[k]

    @property
    def decoded(self) -> list[int]:
        """Indices of the pictures read and decoded so far."""
        return sorted(self._read)

    def _render(self, k: int, height: int, width: int) -> np.ndarray:
        key = (k, height, width)
        if key not in self._renders:
            # Clipped as shown, so that a blend mixes two frames as they are seen.
            self._renders[key] = np.clip(render_picture(self.model(k), (height, width),
                                                        self.threads), 0, 1)
            while len(self._renders) > KEEP_PICTURES:
                self._renders.popitem(last=False)
        return self._renders[key]

    def frames(self, times: list[float], height: int, width: int) -> Iterator[np.ndarray]:
        """(height, width, 3) uint8 RGB frames at the given global times, in order."""
        render = 4 * (len(self.layout.grids) + RENDER_FLOATS_PER_PIXEL)
        self._check_memory(height * width * (render + FRAME_BYTES_PER_PIXEL),
                           f"{width}x{height} frames")
        at = [float(g.start) if self.clock is None else self.clock[g.start] for g in self.gops]
        last = at[-1]
        for t in times:
            if not 0.0 <= t <= last:
                raise ValueError(f"time {t} lies outside the video's frames 0..{last:g}")
            k = bisect.bisect_right(at, t) - 1
            share = 0.0 if k + 1 == len(at) else (t - at[k]) / (at[k + 1] - at[k])
            frame = self._render(k, height, width)
            if share > 0:
                frame = (1 - share) * frame + share * self._render(k + 1, height, width)
            yield to_uint8(torch.from_numpy(frame)).numpy()

    @property
    def reader(self) -> AnrReader:
        return self._reader

    def close(self) -> None:
        self._reader.close()
        self._pictures.clear()
        self._renders.clear()
