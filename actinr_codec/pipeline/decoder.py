"""From an .anr file back to renderable GOP models: the model layer of the format, read.

The container (bitstream/) hands over each GOP's integer symbols and steps; this module
checks them against the tensor layout that the stored configuration implies
(model/schema.py, docs/bitstream.md) and rebuilds the models. GOPs are decoded when first
needed, so seeking reads only the chunks it renders.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Iterator

import numpy as np
import torch

from bitstream.container import AnrReader
from bitstream.errors import BitstreamError
from bitstream.limits import MAX_GOP_ELEMENTS, MAX_TILES, check_shape
from bitstream.records import INTRA, PREDICTED, GOPRecord, VideoInfo

from ..media.timing import model_clock
from ..model.config import ModelConfig
from ..model.network import GOPModel
from ..model.render import render_gop, to_uint8
from ..model.schema import load_tensors, parse_config, tensor_layout, tile_count
from ..quantization.quantize import dequantize
from .gop import locate

# Output frames rendered together, bounded by this many bytes of float RGB; a render's
# working memory is a small multiple of it (its pixel grid, model/render.py, holds 24
# bytes a pixel).
BATCH_BYTES = 32 << 20
RENDER_BYTES_PER_PIXEL = 12
# A frame larger than this in float RGB (11 megapixels) renders in bands of rows of
# BATCH_BYTES each. Smaller ones render whole, a frame a batch: two bands of 4x 360p
# rendered 15 % slower than one (city, 16 frames: 5.8 s against 5.0, medians of three).
BANDED_FRAME_BYTES = 128 << 20
# GOPs whose decoded tensors and models are kept: playing forward needs the GOP before.
KEEP_GOPS = 3
# The decoder's memory limit unless told otherwise (AnrDecoder max_memory, actinr decode
# --max-memory), checked against what a file and an output size need before allocating.
DEFAULT_MAX_MEMORY = 2 << 30
# Bytes a model parameter costs a decoder: KEEP_GOPS decoded tensors and as many models
# (float32 each), and while a GOP is rebuilt its symbols and a fresh model's own values.
BYTES_PER_PARAMETER = 4 * (2 * KEEP_GOPS + 2)
# Whole copies of an output frame (uint8 RGB) alive at once: the decoder's, and a video
# writer's RGB and YUV frames and its encoder's input.
FRAME_COPIES = 4
# A render's working memory as a multiple of what it renders at once (a batch, a whole
# frame or a band) in float RGB: the float frames, the pixel grid
# (twice, cached), the tiles' outputs in flight and the uint8 conversion.
RENDER_BATCHES = 8


def check_memory(needed: int, limit: int, what: str) -> None:
    """Refuse, before allocating, what a decode would need beyond its memory limit."""
    if needed > limit:
        raise BitstreamError(f"decoding needs about {needed >> 20} MiB for {what}, over "
                             f"the limit of {limit >> 20} MiB (--max-memory)")


def stream_model(config: dict, info: VideoInfo, version: int
                 ) -> tuple[ModelConfig, list[tuple[str, tuple]]]:
    """The model configuration a file of that format version declares and its GOPs'
    tensor layout; BitstreamError if either is invalid."""
    try:
        cfg, _ = parse_config(config, version)
    except ValueError as exc:
        raise BitstreamError(f"invalid model configuration: {exc}") from None
    tiles = tile_count(cfg, info.height, info.width)
    if tiles > MAX_TILES:
        raise BitstreamError(f"{tiles} tiles exceeds the limit of {MAX_TILES}")
    layout = tensor_layout(cfg, tiles)
    for name, shape in layout:
        check_shape(name, shape)
    elements = parameter_count(layout)
    if elements > MAX_GOP_ELEMENTS:
        raise BitstreamError(f"the model has {elements} parameters per GOP "
                             f"(limit {MAX_GOP_ELEMENTS})")
    return cfg, layout


def parameter_count(layout: list[tuple[str, tuple]]) -> int:
    """Parameters of one GOP's model with this tensor layout."""
    return sum(math.prod(shape) for _, shape in layout)


def model_memory(layout: list[tuple[str, tuple]]) -> int:
    """Bytes a decoder holds for the models of a file with this tensor layout."""
    return parameter_count(layout) * BYTES_PER_PARAMETER


def decode_memory(layout: list[tuple[str, tuple]], height: int, width: int) -> int:
    """Bytes a decoder may hold while rendering height x width frames of such a file: its
    models, a render's working memory and the output frame's copies."""
    rows = render_rows(height, width)
    return (model_memory(layout)
            + RENDER_BATCHES * max(BATCH_BYTES, rows * width * RENDER_BYTES_PER_PIXEL)
            + FRAME_COPIES * height * width * 3)


def render_rows(height: int, width: int) -> int:
    """Rows of a height x width frame rendered at once: all of them, or a band of
    BATCH_BYTES for a frame over BANDED_FRAME_BYTES."""
    row_bytes = width * RENDER_BYTES_PER_PIXEL
    if height * row_bytes <= BANDED_FRAME_BYTES:
        return height
    return max(1, BATCH_BYTES // row_bytes)


def gop_tensors(record: GOPRecord, reference: dict[str, torch.Tensor] | None = None
                ) -> dict[str, torch.Tensor]:
    """One GOP's tensors from its record (read against the declared layout): symbols times
    steps, added to the reference's tensors for a predicted GOP."""
    return dequantize({t.name: t.symbols for t in record.tensors},
                      {t.name: t.step for t in record.tensors}, reference)


class AnrDecoder:
    """An open .anr file (a path or its bytes): its header at once, GOP models on demand.

    A GOP is read, checked and rebuilt when a frame it serves is rendered. A predicted
    GOP needs its reference's tensors, and so on back to the last intra GOP: seeking reads
    and entropy-decodes that chain (additions, no rendering). The last few GOPs' tensors
    and models are kept, so playing forward decodes each GOP once.
    """

    def __init__(self, source: str | os.PathLike | bytes | AnrReader,
                 device: torch.device | str = "cpu",
                 max_memory: int = DEFAULT_MAX_MEMORY, threads: int | None = None):
        # An open reader is taken as it is (AnrVideo reads the header once for both kinds
        # of file).
        self._reader = source if isinstance(source, AnrReader) else AnrReader(source)
        self.max_memory = max_memory
        try:
            self.info: VideoInfo = self._reader.info
            self.config = dict(self._reader.config)
            self.model_config, self._layout = stream_model(self.config, self.info,
                                                             self._reader.version)
            self._check_memory(model_memory(self._layout),
                               f"its models ({parameter_count(self._layout)} parameters a GOP)")
        except BaseException:
            self._reader.close()
            raise
        self.gops = [range(e.start, e.stop) for e in self._reader.index]
        self.kinds = [e.kind for e in self._reader.index]
        stamps = self._reader.timestamps
        # Each frame's model time when the frame rate varies; frame k is at k otherwise.
        self.clock = None if stamps is None else model_clock(stamps)
        self.device = torch.device(device)
        self.threads = threads  # the CPU render pool's size (runtime.kernel_threads)
        self._tensors: OrderedDict[int, dict[str, torch.Tensor]] = OrderedDict()
        self._models: OrderedDict[int, GOPModel] = OrderedDict()
        self._read: set[int] = set()

    def _check_memory(self, needed: int, what: str) -> None:
        check_memory(needed, self.max_memory, what)

    def _remember(self, cache: OrderedDict, k: int, value) -> None:
        cache[k] = value
        while len(cache) > KEEP_GOPS:
            cache.popitem(last=False)

    def tensors(self, k: int) -> dict[str, torch.Tensor]:
        """GOP k's tensors as decoded, decoding its chain of references first if needed."""
        chain = [k]
        while chain[-1] not in self._tensors and self.kinds[chain[-1]] == PREDICTED:
            chain.append(chain[-1] - 1)
        for j in reversed(chain):
            if j in self._tensors:
                continue
            reference = None if self.kinds[j] == INTRA else self._tensors[j - 1]
            try:
                self._read.add(j)
                values = gop_tensors(self._reader.read_gop(j, self._layout), reference)
            except BitstreamError as exc:
                if j == k:
                    raise
                raise BitstreamError(f"GOP {k} depends on GOP {j}, which cannot be "
                                     f"decoded: {exc}") from None
            self._remember(self._tensors, j, values)
        self._tensors.move_to_end(k)
        return self._tensors[k]

    def model(self, k: int) -> GOPModel:
        """GOP k's model, on the decoder's device."""
        if k not in self._models:
            # Tensors first: a GOP that does not decode fails before its model is allocated.
            tensors = self.tensors(k)
            model = GOPModel(self.model_config, self.info.height, self.info.width)
            self._remember(self._models, k, load_tensors(model, tensors).eval().to(self.device))
        self._models.move_to_end(k)
        return self._models[k]

    @property
    def decoded(self) -> list[int]:
        """Indices of the GOPs whose chunks have been read and decoded so far."""
        return sorted(self._read)

    def frames(self, times: list[float], height: int, width: int) -> Iterator[np.ndarray]:
        """(height, width, 3) uint8 RGB frames at the given global times, in order.

        Consecutive times of one GOP render together, in batches of bounded memory; a
        frame over BANDED_FRAME_BYTES renders in bands of rows, so a render's working memory
        stays bounded whatever the output size (only the uint8 frame is whole).
        """
        self._check_memory(decode_memory(self._layout, height, width),
                           f"{width}x{height} frames")
        batch = max(1, BATCH_BYTES // (height * width * RENDER_BYTES_PER_PIXEL))
        band = render_rows(height, width)
        groups: list[tuple[int, list[float]]] = []
        for t in times:
            k, local = locate(self.gops, t, self.clock)
            if groups and groups[-1][0] == k and len(groups[-1][1]) < batch:
                groups[-1][1].append(local)
            else:
                groups.append((k, [local]))
        for k, local_times in groups:
            model = self.model(k)
            if band >= height:
                yield from to_uint8(render_gop(model, torch.tensor(local_times), height,
                                               width, threads=self.threads)).numpy()
                continue
            for local in local_times:
                frame = np.empty((height, width, 3), np.uint8)
                for top in range(0, height, band):
                    bottom = min(top + band, height)
                    frame[top:bottom] = to_uint8(render_gop(
                        model, torch.tensor([local]), height, width, (top, bottom),
                        self.threads))[0].numpy()
                yield frame

    @property
    def reader(self) -> AnrReader:
        """The open file: its header, timestamps and carried streams."""
        return self._reader

    def close(self) -> None:
        self._reader.close()
        self._models.clear()
        self._tensors.clear()

    def __enter__(self) -> AnrDecoder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
