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
from bitstream.limits import MAX_GOP_ELEMENTS
from bitstream.records import INTRA, PREDICTED, GOPRecord, VideoInfo

from ..model.config import ModelConfig
from ..model.network import GOPModel
from ..model.render import render_gop, to_uint8
from ..model.schema import load_tensors, parse_config, tensor_layout, tile_count
from ..quantization.quantize import dequantize
from .gop import locate

# Most tiles a decoder will build for one frame size, whatever a header claims.
MAX_TILES = 1 << 16
# Output frames rendered together, bounded by this many bytes of float RGB.
BATCH_BYTES = 32 << 20
# GOPs whose decoded tensors and models are kept: playing forward needs the GOP before.
KEEP_GOPS = 3
# Smallest omega and gabor_scale a decoder builds a model for. The model computes in
# float32 with factors up to 1000 / scale (the ranges of model/config.py), which overflow
# below about 3e-36 and make torch refuse to build the model; useful scales are near 1-100.
MIN_SCALE = 1e-30


def stream_model(config: dict, info: VideoInfo, version: int
                 ) -> tuple[ModelConfig, list[tuple[str, tuple]]]:
    """The model configuration a file of that format version declares and its GOPs'
    tensor layout; BitstreamError if either is invalid."""
    try:
        cfg, _ = parse_config(config, version)
    except ValueError as exc:
        raise BitstreamError(f"invalid model configuration: {exc}") from None
    for name in ("omega", "gabor_scale"):
        if getattr(cfg, name) < MIN_SCALE:
            raise BitstreamError(f"invalid model configuration: {name} {getattr(cfg, name)!r} "
                                 f"is below {MIN_SCALE:g}")
    tiles = tile_count(cfg, info.height, info.width)
    if tiles > MAX_TILES:
        raise BitstreamError(f"{tiles} tiles exceeds the limit of {MAX_TILES}")
    layout = tensor_layout(cfg, tiles)
    # A GOP chunk holds at most MAX_GOP_ELEMENTS symbols, so no GOP of a larger model can
    # decode: refuse the file now, before a model of that size is allocated.
    elements = sum(math.prod(shape) for _, shape in layout)
    if elements > MAX_GOP_ELEMENTS:
        raise BitstreamError(f"the model's {elements} parameters exceed the GOP limit of "
                             f"{MAX_GOP_ELEMENTS}")
    return cfg, layout


def gop_tensors(record: GOPRecord, layout: list[tuple[str, tuple]],
                reference: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """One GOP's tensors from its record, checked against the declared layout: symbols
    times steps, added to the reference's tensors for a predicted GOP."""
    where = f"GOP at frame {record.start}"
    names = [t.name for t in record.tensors]
    if names != [name for name, _ in layout]:
        raise BitstreamError(f"{where}: tensors do not match the model")
    for tensor, (name, shape) in zip(record.tensors, layout, strict=True):
        if tuple(tensor.shape) != shape:
            raise BitstreamError(f"{where}: tensor {name} has shape {tuple(tensor.shape)}, "
                                 f"expected {shape}")
    return dequantize({t.name: t.symbols for t in record.tensors},
                      {t.name: t.step for t in record.tensors}, reference)


class AnrDecoder:
    """An open .anr file (a path or its bytes): its header at once, GOP models on demand.

    A GOP is read, checked and rebuilt when a frame it serves is rendered. A predicted
    GOP needs its reference's tensors, and so on back to the last intra GOP: seeking reads
    and entropy-decodes that chain (additions, no rendering). The last few GOPs' tensors
    and models are kept, so playing forward decodes each GOP once.
    """

    def __init__(self, source: str | os.PathLike | bytes, device: torch.device | str = "cpu"):
        self._reader = AnrReader(source)
        try:
            self.info: VideoInfo = self._reader.info
            self.config = dict(self._reader.config)
            self.model_config, self._layout = stream_model(self.config, self.info,
                                                             self._reader.version)
        except BaseException:
            self._reader.close()
            raise
        self.gops = [range(e.start, e.stop) for e in self._reader.index]
        self.kinds = [e.kind for e in self._reader.index]
        self.device = torch.device(device)
        self._tensors: OrderedDict[int, dict[str, torch.Tensor]] = OrderedDict()
        self._models: OrderedDict[int, GOPModel] = OrderedDict()
        self._read: set[int] = set()

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
                values = gop_tensors(self._reader.read_gop(j), self._layout, reference)
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
            # The tensors first: a GOP that does not decode fails before its model is built.
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

        Consecutive times of one GOP render together, in batches of bounded memory.
        """
        batch = max(1, BATCH_BYTES // (height * width * 12))
        groups: list[tuple[int, list[float]]] = []
        for t in times:
            k, local = locate(self.gops, t)
            if groups and groups[-1][0] == k and len(groups[-1][1]) < batch:
                groups[-1][1].append(local)
            else:
                groups.append((k, [local]))
        for k, local_times in groups:
            rendered = render_gop(self.model(k), torch.tensor(local_times), height, width)
            yield from to_uint8(rendered).numpy()

    def close(self) -> None:
        self._reader.close()
        self._models.clear()
        self._tensors.clear()

    def __enter__(self) -> AnrDecoder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
