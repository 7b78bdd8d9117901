"""Tile geometry: which tile covers which part of the continuous image, and how tiles blend.

The image is the square [-1, 1]^2 in continuous coordinates, whatever its pixel size.
A pixel (i, j) of an n-row grid has its centre at (i + 0.5) / n * 2 - 1, so a denser grid
samples the same continuous image. Tiles form a uniform grid of cores; each tile also owns
a margin past its core, where its weight ramps linearly to zero while its neighbour's ramps
up. The weights of overlapping tiles add up to one, so blending leaves no seam.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def pixel_centres(n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Continuous coordinates of the centres of n pixels along one axis."""
    return (torch.arange(n, dtype=torch.float32, device=device) + 0.5) / n * 2 - 1


@dataclass(frozen=True)
class Axis:
    """Tiling of one axis: ``count`` cores of equal width plus a ``margin`` each side."""

    count: int
    margin: float

    @property
    def core(self) -> float:
        return 2.0 / self.count

    def bounds(self, k: int) -> tuple[float, float]:
        """Extent of tile k including its margins."""
        lo = -1.0 + k * self.core
        return lo - self.margin, lo + self.core + self.margin

    def to_local(self, x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Map continuous coordinates to [-1, 1] across tile k's extent (k broadcasts)."""
        centre = -1.0 + (k.to(x.dtype) + 0.5) * self.core
        return (x - centre) / (self.core / 2 + self.margin)

    def weight(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Blend weight of tile k at coordinates x; outer edges of the image do not ramp."""
        if self.margin == 0:
            index = torch.floor((x + 1) / self.core).clamp(0, self.count - 1)
            return (index == k).to(x.dtype)
        lo, hi = self.bounds(k)
        w = torch.ones_like(x)
        if k > 0:
            w = w * ((x - lo) / (2 * self.margin)).clamp(0, 1)
        if k < self.count - 1:
            w = w * ((hi - x) / (2 * self.margin)).clamp(0, 1)
        return w

    def pixel_range(self, k: int, n: int) -> tuple[int, int]:
        """Half-open range of the n-pixel grid's pixels to which tile k gives weight."""
        # Read off the weights themselves, so boxes and blending agree to the last bit.
        inside = torch.nonzero(self.weight(pixel_centres(n), k) > 0)
        if inside.numel() == 0:
            return 0, 0
        return int(inside[0]), int(inside[-1]) + 1


@dataclass(frozen=True)
class Tiling:
    """A grid of ``rows`` x ``cols`` tiles over the continuous image, tile t = row * cols + col."""

    rows: Axis
    cols: Axis

    @classmethod
    def for_frame(cls, height: int, width: int, tile: int, overlap: int) -> Tiling:
        """Tiles of about ``tile`` source pixels with ``overlap`` source pixels of margin."""
        def axis(n: int) -> Axis:
            count = max(1, math.ceil(n / tile))
            # A margin past half a core would let non-neighbours overlap.
            return Axis(count, min(overlap * 2.0 / n, 1.0 / count))

        return cls(rows=axis(height), cols=axis(width))

    @property
    def count(self) -> int:
        return self.rows.count * self.cols.count

    def pixel_boxes(self, height: int, width: int) -> torch.Tensor:
        """(tiles, 4) int64 boxes (y0, y1, x0, x1) of grid pixels each tile covers."""
        rows = [self.rows.pixel_range(k, height) for k in range(self.rows.count)]
        cols = [self.cols.pixel_range(k, width) for k in range(self.cols.count)]
        return torch.tensor([(*r, *c) for r in rows for c in cols], dtype=torch.int64)
