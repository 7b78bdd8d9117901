"""Picture GOPs (format version 5): one frame as integer latent grids, the networks that
render them and the context network that codes them, in one chunk body.

A file whose configuration says ``latent = True`` holds only picture GOPs; the
configuration gives the networks' sizes (each key only where it differs from its default)
and the video's size the grids' shapes, so a chunk stores no shape. Each network's
parameters are integers times a power-of-two step of their own (one shift per tensor; one
for the whole context network, whose fixed point has one), coded under one integer model
per network: a model per tensor costs more side information than it saves. The layout
is specified in docs/bitstream.md, "Picture GOPs".
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from .entropy import decode_symbols, encode_symbols
from .errors import BitstreamError
from .latents import ContextModel, check_grid, decode_grids, encode_grids, pack_ranges, unpack_ranges
from .limits import MAX_GOP_ELEMENTS, is_int
from .models import CONSTANT, SymbolModel, fit_model, pack_model, read_model
from .records import PICTURE, VideoInfo
from .wire import Cursor

LATENT = "latent"
# The other keys a latent file's configuration may have: (least, most, default), each an
# integer; a key left out has its default. Every byte of a one-picture file counts: the
# defaults' configuration takes 11 bytes, where stating all seven took 168.
LATENT_KEYS = {
    "latent_levels": (1, 16, 7),      # grids at full size, 1/2, 1/4, ...
    "synthesis_width": (1, 64, 40),   # the synthesis' hidden width
    "synthesis_layers": (0, 4, 1),    # its hidden layers (0: straight from latents to RGB)
    "refine_layers": (0, 4, 2),       # residual 3x3 convolutions over its RGB
    "context_width": (1, 64, 8),      # the context network's hidden width
    "context_layers": (0, 3, 2),      # its hidden layers
}
NETWORKS = ("synthesis", "refine", "context")
MAX_SHIFT = 24
GridDecoder = Callable[[bytes, list, ContextModel], list[np.ndarray]]


@dataclass(frozen=True)
class PictureLayout:
    """What a latent file's configuration and frame size imply for each picture: every
    network's tensor shapes (a weight, then a bias, layer by layer) and every grid's."""

    networks: tuple[tuple[tuple[int, ...], ...], ...]
    grids: tuple[tuple[int, int], ...]


@dataclass
class PictureRecord:
    """One picture: per network (NETWORKS' order), each tensor's shift and integer
    symbols (the value is symbol * 2**-shift; the context network's tensors share one
    shift); and the integer latent grids, finest first."""

    shifts: list[list[int]]
    networks: list[list[np.ndarray]]
    grids: list[np.ndarray]

    def context_model(self) -> ContextModel:
        tensors = self.networks[-1]
        return ContextModel(tuple(zip(tensors[::2], tensors[1::2], strict=True)),
                            self.shifts[-1][0] if self.shifts[-1] else 0)


def is_latent(config: Mapping[str, object]) -> bool:
    return config.get(LATENT) is True


def latent_config(levels: int, synthesis_width: int, synthesis_layers: int,
                  refine_layers: int, context_width: int, context_layers: int
                  ) -> dict[str, object]:
    """The configuration a latent file stores: the sizes that differ from the defaults."""
    sizes = dict(zip(LATENT_KEYS, (levels, synthesis_width, synthesis_layers, refine_layers,
                                   context_width, context_layers), strict=True))
    return {LATENT: True, **{k: v for k, v in sizes.items() if v != LATENT_KEYS[k][2]}}


def picture_layout(config: Mapping[str, object], info: VideoInfo) -> PictureLayout:
    """The layout a latent file's configuration declares; BitstreamError if the
    configuration is not a valid one."""
    unknown = sorted(set(config) - set(LATENT_KEYS) - {LATENT})
    if unknown:
        raise BitstreamError(f"unknown configuration key {unknown[0]!r} in a latent file")
    values = {}
    for key, (lo, hi, default) in LATENT_KEYS.items():
        value = config.get(key, default)
        if not is_int(value) or not lo <= value <= hi:
            raise BitstreamError(f"configuration {key!r} must be an integer in {lo}..{hi}, "
                                 f"not {value!r}")
        values[key] = int(value)
    levels = values["latent_levels"]
    grids = tuple((math.ceil(info.height / 2**k), math.ceil(info.width / 2**k))
                  for k in range(levels))
    if sum(h * w for h, w in grids) > MAX_GOP_ELEMENTS:
        raise BitstreamError(f"a {info.width}x{info.height} picture's latents exceed "
                             f"{MAX_GOP_ELEMENTS}")
    widths = [levels] + [values["synthesis_width"]] * values["synthesis_layers"] + [3]
    context = ([12] + [values["context_width"]] * values["context_layers"] + [2])
    return PictureLayout((_linear(widths), ((3, 3, 3, 3), (3,)) * values["refine_layers"],
                          _linear(context)), grids)


def _linear(widths: list[int]) -> tuple[tuple[int, ...], ...]:
    return tuple(shape for i, o in zip(widths, widths[1:]) for shape in ((o, i), (o,)))


def check_kinds(config: Mapping[str, object], kinds: list[int]) -> None:
    """A latent file holds picture GOPs only, and only a latent file holds them."""
    latent = is_latent(config)
    for k, kind in enumerate(kinds):
        if (kind == PICTURE) != latent:
            raise BitstreamError(f"GOP {k} is a {'picture' if kind == PICTURE else 'model'} "
                                 f"GOP in a file whose configuration "
                                 f"{'is' if latent else 'is not'} latent")


def check_picture(picture: PictureRecord, layout: PictureLayout) -> None:
    """The picture has the layout's shapes (what a reader of its file will expect)."""
    shapes = tuple(tuple(tuple(np.shape(t)) for t in net) for net in picture.networks)
    grids = tuple(tuple(np.shape(g)) for g in picture.grids)
    if shapes != layout.networks or grids != layout.grids:
        raise BitstreamError("the picture's networks or grids do not match its file's "
                             "configuration")


def encode_picture(picture: PictureRecord) -> bytes:
    """A picture chunk's body after its span fields."""
    if len(picture.shifts) != len(NETWORKS) or len(picture.networks) != len(NETWORKS):
        raise BitstreamError(f"a picture has {len(NETWORKS)} networks")
    context_shifts = set(picture.shifts[-1])
    if len(context_shifts) > 1:
        raise BitstreamError("the context network's tensors must share one shift")
    shifts = [s for net in picture.shifts[:-1] for s in net] + sorted(context_shifts)
    for shift in shifts:
        if not 0 <= shift <= MAX_SHIFT:
            raise BitstreamError(f"network shift {shift} outside 0..{MAX_SHIFT}")
    coder = picture.context_model()
    coded, models = [], []
    for name, tensors, net_shifts in zip(NETWORKS, picture.networks, picture.shifts,
                                         strict=True):
        if len(tensors) != len(net_shifts):
            raise BitstreamError(f"the {name} network has a shift per tensor")
        if tensors:
            symbols = np.concatenate([np.asarray(t).ravel() for t in tensors])
            if not np.issubdtype(symbols.dtype, np.integer):
                raise BitstreamError(f"the {name} network's symbols must be integers")
            model, _ = fit_model(symbols.astype(np.int64))
            if model.kind != CONSTANT and max(-model.lo, model.hi) > 2**20:
                raise BitstreamError(f"a {name} symbol exceeds +-2**20")
            models.append(pack_model(model))
            coded.append((symbols.astype(np.int32), model))
    grids = [np.asarray(g) for g in picture.grids]
    for g in grids:
        if g.ndim != 2 or not np.issubdtype(g.dtype, np.integer):
            raise BitstreamError("latent grids must be 2-D integer arrays")
    ranges = pack_ranges([(int(g.min()), int(g.max())) for g in grids])
    networks = encode_symbols(coded)
    return b"".join([bytes(shifts), *models, struct.pack("<H", len(ranges)), ranges,
                     struct.pack("<I", len(networks)), networks,
                     encode_grids([g.astype(np.int32) for g in grids], coder)])


def decode_picture(cursor: Cursor, layout: PictureLayout,
                   grid_decoder: GridDecoder | None = None) -> PictureRecord:
    """A picture from the rest of its chunk body, checked against the layout;
    grid_decoder decodes the latents (by default bitstream.latents.decode_grids; the
    codec passes the same in C)."""
    counts = [len(layout.networks[0]), len(layout.networks[1]), 1]
    raw = cursor.unpack(f"<{sum(counts)}B")
    if max(raw) > MAX_SHIFT:
        raise BitstreamError(f"network shift {max(raw)} outside 0..{MAX_SHIFT}")
    shifts = [list(raw[:counts[0]]), list(raw[counts[0]:counts[0] + counts[1]]),
              [raw[-1]] * len(layout.networks[2])]
    items: list[tuple[SymbolModel, int]] = []
    for name, shapes in zip(NETWORKS, layout.networks, strict=True):
        if shapes:
            elements = sum(math.prod(s) for s in shapes)
            items.append((read_model(cursor, elements, name), elements))
    ranges = unpack_ranges(bytes(cursor.take(cursor.one("<H"))), len(layout.grids))
    flat = iter(decode_symbols(bytes(cursor.take(cursor.one("<I"))), items))
    networks = []
    for shapes in layout.networks:
        symbols = next(flat) if shapes else np.zeros(0, np.int32)
        tensors, at = [], 0
        for shape in shapes:
            tensors.append(symbols[at:at + math.prod(shape)].reshape(shape))
            at += math.prod(shape)
        networks.append(tensors)
    record = PictureRecord(shifts, networks, [])
    coder = record.context_model()
    grids = [(shape, lo, hi) for shape, (lo, hi) in zip(layout.grids, ranges, strict=True)]
    for shape, lo, hi in grids:
        check_grid(shape, lo, hi)
    record.grids = (grid_decoder or decode_grids)(bytes(cursor.take(cursor.remaining)), grids,
                                                  coder)
    return record


def picture_elements(layout: PictureLayout) -> int:
    """Values a decoder holds for one picture: its networks' and its latents'."""
    return (sum(math.prod(s) for net in layout.networks for s in net)
            + sum(h * w for h, w in layout.grids))
