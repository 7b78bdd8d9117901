"""Format limits and the checks that enforce them, shared by the writer and the reader.

Writer and reader apply the same checks, so everything that can be written can be read,
and a reader refuses an implausible file before allocating anything for it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import BitstreamError
from .records import COLOURS, GOP_KINDS, INTRA, PICTURE, PREDICTED, VideoInfo

MAX_SIDE = 16384
MAX_FRAMES = 10_000_000
MAX_FPS_TERM = 2**32 - 1
MAX_TENSORS = 1024
MAX_NDIM = 4
MAX_NAME_BYTES = 64
MAX_TENSOR_ELEMENTS = 2**26
MAX_GOP_ELEMENTS = 2**26
MAX_SYMBOL = 2**20
# Sum over a GOP's coded tensors of their alphabet sizes: bounds the work of building
# probability tables, which a tiny payload could otherwise demand in huge amounts.
MAX_GOP_ALPHABET = 2**23
MAX_TABLE_BYTES = 2**26
MAX_CONFIG_ENTRIES = 256
MAX_CONFIG_KEY_BYTES = 64
MAX_CONFIG_STR_BYTES = 4096
MAX_CHUNK_BYTES = 2**32 - 1
# Most tiles (model layer) a GOP may have, whatever the frame size: bounds the models a
# header can make a decoder build.
MAX_TILES = 1 << 16


def is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_info(info: VideoInfo) -> None:
    if not all(is_int(v) for v in (info.width, info.height, info.frames, info.fps_num,
                                   info.fps_den)):
        raise BitstreamError("video info fields must be integers")
    if info.width < 1 or info.height < 1:
        raise BitstreamError(f"invalid frame size {info.width}x{info.height}")
    if info.width > MAX_SIDE or info.height > MAX_SIDE:
        raise BitstreamError(f"frame size {info.width}x{info.height} exceeds limit")
    if not 1 <= info.frames <= MAX_FRAMES:
        raise BitstreamError(f"implausible frame count {info.frames}")
    if not (1 <= info.fps_num <= MAX_FPS_TERM and 1 <= info.fps_den <= MAX_FPS_TERM):
        raise BitstreamError(f"invalid frame rate {info.fps_num}/{info.fps_den}")
    if info.colour not in COLOURS:
        raise BitstreamError(f"unknown colour description {info.colour!r}")


def check_gop_count(count: int, frames: int, version: int) -> None:
    """Version 1: GOPs of two or more frames overlapping by one cover at least count + 1
    frames. Version 2 also allows GOPs that start after the last one's end (scene cuts),
    so there are at most as many GOPs as frames."""
    most = max(1, frames - 1) if version == 1 else frames
    if not 1 <= count <= most:
        raise BitstreamError(f"GOP count {count} inconsistent with {frames} frames")


def check_gop_ranges(ranges: Sequence[tuple[int, int]], frames: int, version: int) -> None:
    """GOPs must tile [0, frames) in order, each sharing its first frame with the last
    frame of the one before (the rule of actinr_codec.pipeline.gop); from version 2, a GOP
    may instead start right after the one before ends (at a scene cut)."""
    check_gop_count(len(ranges), frames, version)
    previous_stop = None
    for k, (start, stop) in enumerate(ranges):
        if not (is_int(start) and is_int(stop)):
            raise BitstreamError(f"GOP {k} frame range must be integers")
        if previous_stop is None:
            allowed = (0,)
        elif version == 1:
            allowed = (previous_stop - 1,)
        else:
            allowed = (previous_stop - 1, previous_stop)
        if start not in allowed:
            raise BitstreamError(f"GOP {k} starts at frame {start}, expected "
                                 f"{' or '.join(map(str, allowed))}")
        shares = previous_stop is not None and start == previous_stop - 1
        shortest = 2 if shares or (version == 1 and frames > 1) else 1
        if stop - start < shortest or stop > frames:
            raise BitstreamError(f"GOP {k} has invalid frame range [{start}, {stop})")
        previous_stop = stop
    if ranges[-1][1] != frames:
        raise BitstreamError(f"GOPs end at frame {ranges[-1][1]}, the video has {frames}")


def check_gop_kinds(kinds: Sequence[tuple[int, int | None]], version: int) -> None:
    """(kind, reference) of every GOP in a file of this format version: the first is intra
    (or, from version 5, a picture), an intra GOP or a picture has no reference, and a
    predicted GOP predicts from the GOP right before it."""
    known = (INTRA, PREDICTED, PICTURE) if version >= 5 else (INTRA, PREDICTED)
    for k, (kind, reference) in enumerate(kinds):
        if kind not in known:
            raise BitstreamError(f"GOP {k} has unknown kind {kind}")
        if kind in (INTRA, PICTURE) and reference is not None:
            raise BitstreamError(f"{GOP_KINDS[kind]} GOP {k} names a reference")
        if kind == PREDICTED and (k == 0 or reference != k - 1):
            raise BitstreamError(f"predicted GOP {k} must predict from GOP {k - 1}, "
                                 f"not {reference}")


def check_shape(name: str, shape: Sequence[int]) -> int:
    """Element count of a tensor shape, after checking it against the limits."""
    if len(shape) > MAX_NDIM:
        raise BitstreamError(f"tensor {name!r} has {len(shape)} dimensions (limit {MAX_NDIM})")
    elements = 1
    for dim in shape:
        if not is_int(dim) or dim < 0 or dim > MAX_TENSOR_ELEMENTS:
            raise BitstreamError(f"tensor {name!r} has invalid shape {tuple(shape)}")
        elements *= int(dim)
    if elements > MAX_TENSOR_ELEMENTS:
        raise BitstreamError(f"tensor {name!r} has {elements} elements (limit "
                             f"{MAX_TENSOR_ELEMENTS})")
    return elements
