"""Evaluating fitted models on any pixel grid at any time, in bounded memory.

Each tile is evaluated on the output pixels whose centres fall inside it; the tiles'
outputs are weighted by their blend ramps and added into the frame. Tiles are processed in
chunks sized so that the hidden activations stay under a fixed budget.
"""

from __future__ import annotations

import torch

from .model import GOPModel
from .runtime import tune_allocator
from .tiling import pixel_centres

# Bytes of hidden activations one chunk of tiles may hold; bounds peak memory of a render.
CHUNK_BYTES = 64 << 20


def _tile_grid(model: GOPModel, height: int, width: int, device: torch.device):
    """Per-tile output pixel indices, local coordinates and blend weights, padded to one size."""
    tiling = model.tiling
    boxes = tiling.pixel_boxes(height, width)
    hs, ws = boxes[:, 1] - boxes[:, 0], boxes[:, 3] - boxes[:, 2]
    hmax, wmax = int(hs.max()), int(ws.max())
    iy = torch.arange(hmax)
    ix = torch.arange(wmax)
    rows = (boxes[:, :1] + iy[None]).clamp(max=height - 1)  # (T, hmax)
    cols = (boxes[:, 2:3] + ix[None]).clamp(max=width - 1)  # (T, wmax)
    valid = (iy[None] < hs[:, None])[:, :, None] & (ix[None] < ws[:, None])[:, None, :]
    tile_idx = torch.arange(tiling.count)
    tr, tc = tile_idx // tiling.cols.count, tile_idx % tiling.cols.count
    yc, xc = pixel_centres(height)[rows], pixel_centres(width)[cols]
    ly = tiling.rows.to_local(yc, tr[:, None])
    lx = tiling.cols.to_local(xc, tc[:, None])
    wy = torch.stack([tiling.rows.weight(yc[k], int(tr[k])) for k in range(tiling.count)])
    wx = torch.stack([tiling.cols.weight(xc[k], int(tc[k])) for k in range(tiling.count)])
    coords = torch.stack(torch.broadcast_tensors(ly[:, :, None], lx[:, None, :]), dim=-1)
    weight = (wy[:, :, None] * wx[:, None, :]) * valid
    flat = rows[:, :, None] * width + cols[:, None, :]
    return (
        coords.reshape(tiling.count, -1, 2).to(device),
        weight.reshape(tiling.count, -1).to(device),
        flat.reshape(tiling.count, -1).to(device),
    )


@torch.inference_mode()
def render_gop(model: GOPModel, t: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Frames of one GOP at local times t (F,), as (F, height, width, 3) floats, unclipped."""
    tune_allocator()
    device = next(model.parameters()).device
    t = t.to(device=device, dtype=torch.float32)
    coords, weight, flat = _tile_grid(model, height, width, device)
    n_tiles, n_points = weight.shape
    per_tile = t.shape[0] * n_points * model.cfg.width * 4 * 3
    step = max(1, CHUNK_BYTES // max(1, per_tile))
    out = torch.zeros(t.shape[0], height * width, 3, device=device)
    norm = torch.zeros(height * width, device=device)
    for lo in range(0, n_tiles, step):
        tiles = torch.arange(lo, min(lo + step, n_tiles), device=device)
        rgb = model(coords[tiles], t, tiles)  # (Tc, F, P, 3)
        w = weight[tiles]
        contrib = (rgb * w[:, None, :, None]).permute(1, 0, 2, 3).reshape(t.shape[0], -1, 3)
        out.index_add_(1, flat[tiles].reshape(-1), contrib)
        norm.index_add_(0, flat[tiles].reshape(-1), w.reshape(-1))
    out /= norm[None, :, None]
    return out.view(t.shape[0], height, width, 3)


def to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """Float RGB in [0, 1] to rounded, clipped uint8 on the CPU."""
    return (frames.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu()
