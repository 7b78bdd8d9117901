"""Random pixel draws for fitting: the same points of each tile in every frame of a GOP."""

from __future__ import annotations

import torch

from ..model.network import GOPModel
from ..model.tiling import pixel_centres


class Sampler:
    """Draws the same random pixels of each tile for every frame, with their targets.

    A draw is two uniform numbers per tile and point (``uniforms``); ``points`` turns them
    into tile-local coordinates and target colours. The native kernel does the same from
    the uniforms itself, reading ``boxes``, the coordinate tables and ``pixels``.
    """

    def __init__(self, model: GOPModel, frames: torch.Tensor, weight: torch.Tensor | None):
        n_frames, height, width, _ = frames.shape
        tiling, dev = model.tiling, frames.device
        box = tiling.pixel_boxes(height, width).to(dev)
        y0, ylen, x0, xlen = box[:, 0], box[:, 1] - box[:, 0], box[:, 2], box[:, 3] - box[:, 2]
        self.boxes = torch.stack([y0, ylen, x0, xlen], dim=1).contiguous()  # (T, 4) int64
        tiles = torch.arange(tiling.count, device=dev)
        # The tile-local coordinate of every pixel row and column each tile covers.
        self.row_coords = self._local(tiling.rows, pixel_centres(height, dev), y0, ylen,
                                      tiles // tiling.cols.count)
        self.col_coords = self._local(tiling.cols, pixel_centres(width, dev), x0, xlen,
                                      tiles % tiling.cols.count)
        self.width, self.frames = width, n_frames
        # Pixel-major, so each drawn pixel gathers one contiguous row of all its frames.
        self.pixels = frames.permute(1, 2, 0, 3).reshape(height * width, n_frames * 3).contiguous()
        self.weight = None if weight is None else (
            weight.permute(1, 2, 0).reshape(height * width, n_frames).contiguous())

    @staticmethod
    def _local(axis, centres: torch.Tensor, start: torch.Tensor, length: torch.Tensor,
               k: torch.Tensor) -> torch.Tensor:
        steps = torch.arange(int(length.max()), device=start.device)
        index = start[:, None] + torch.minimum(steps[None], length[:, None] - 1)
        return axis.to_local(centres[index], k[:, None]).contiguous()

    def uniforms(self, points: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A draw of ``points`` pixels per tile: (tiles, points) uniforms for y and x."""
        shape = (self.boxes.shape[0], points)
        dev = self.boxes.device
        return (torch.rand(shape, generator=gen, device=dev),
                torch.rand(shape, generator=gen, device=dev))

    def _pixels(self, ry: torch.Tensor, rx: torch.Tensor):
        y0, ylen, x0, xlen = (c[:, None] for c in self.boxes.unbind(1))
        iy = torch.minimum((ry * ylen).long(), ylen - 1)
        ix = torch.minimum((rx * xlen).long(), xlen - 1)
        return iy, ix, ((y0 + iy) * self.width + x0 + ix).reshape(-1)

    def points(self, ry: torch.Tensor, rx: torch.Tensor):
        """The drawn points: tile-local coordinates (T, P, 2), targets (T, 3, F, P) and
        pixel weights (T, 1, F, P) or None."""
        iy, ix, flat = self._pixels(ry, rx)
        shape = ry.shape
        coords = torch.stack([self.row_coords.gather(1, iy), self.col_coords.gather(1, ix)], dim=-1)
        # index_select copies whole rows; plain indexing goes element by element.
        target = self.pixels.index_select(0, flat).view(*shape, -1, 3).permute(0, 3, 2, 1)
        weight = None
        if self.weight is not None:
            weight = self.weight.index_select(0, flat).view(*shape, -1).transpose(1, 2)[:, None]
        return coords, target, weight

    def weight_sum(self, ry: torch.Tensor, rx: torch.Tensor, frames: slice) -> float:
        """The sum of the pixel weights of a draw, over its points and those frames."""
        return float(self.weight.index_select(0, self._pixels(ry, rx)[2])[:, frames].sum())

    def draw(self, points: int, gen: torch.Generator):
        """points() of a fresh draw."""
        return self.points(*self.uniforms(points, gen))
