"""Plain records exchanged with the rest of actinr: what a video and its GOPs hold."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .pictures import PictureRecord

# Colour descriptions a file can carry; the stored code is the position in this tuple,
# so new names may only be appended.
COLOURS = ("srgb", "bt709", "bt601", "bt2020")
# GOP kinds (format version 2): an intra GOP's tensors are their own values; a predicted
# GOP's are residuals added to the decoded tensors of its reference, the GOP before it.
# A picture GOP (version 5) is one frame as latent grids (bitstream/pictures.py).
INTRA, PREDICTED, PICTURE = 0, 1, 2
GOP_KINDS = ("intra", "predicted", "picture")


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    frames: int
    fps_num: int
    fps_den: int
    colour: str = "srgb"


@dataclass
class TensorRecord:
    name: str
    shape: tuple[int, ...]
    step: float
    symbols: np.ndarray


@dataclass
class GOPRecord:
    start: int
    stop: int
    tensors: list[TensorRecord]
    kind: int = INTRA
    reference: int | None = None  # the GOP a predicted GOP adds its residuals to
    picture: PictureRecord | None = None  # a picture GOP's content (it has no tensors)


def reference_of(k: int, kind: int) -> int | None:
    """The reference GOP k of this kind has: the GOP before for predicted, else none."""
    return k - 1 if kind == PREDICTED else None


@dataclass(frozen=True)
class GopSpan:
    """What a GOP chunk claims and its index entry must agree with: the frames
    [start, stop) it covers, its kind and its reference."""

    start: int
    stop: int
    kind: int = INTRA
    reference: int | None = None


@dataclass(frozen=True)
class GopIndexEntry:
    """Where GOP chunk k lies in the file and which frames [start, stop) it covers."""

    start: int
    stop: int
    offset: int
    length: int
    kind: int = INTRA
    reference: int | None = None

    @property
    def span(self) -> GopSpan:
        return GopSpan(self.start, self.stop, self.kind, self.reference)
