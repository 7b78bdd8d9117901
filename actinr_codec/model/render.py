"""Evaluating fitted models on any pixel grid at any time, in bounded memory.

Each tile is evaluated on the output pixels whose centres fall inside it; the tiles'
outputs are weighted by their blend ramps and added into the frame. Tiles are processed in
chunks sized so that the hidden activations stay under a fixed budget.
"""

from __future__ import annotations

import functools

import torch

from ..runtime import parallel_chunks, tune_allocator
from .network import GOPModel, evaluate_tiles
from .tiling import Tiling, pixel_centres

# Bytes of hidden activations one chunk of tiles may hold; bounds peak memory of a render.
CHUNK_BYTES = 16 << 20
# Most points (over all frames of a group) one tile's matrix product covers.
ROWS = 1024


@functools.lru_cache(maxsize=2)  # a 4x grid holds about 100 MB
def _tile_grid(tiling: Tiling, height: int, width: int, device: torch.device):
    """Per-tile output pixel indices, local coordinates and blend weights, padded to one size,
    and each pixel's total blend weight. Depends only on the grid, so decoding many
    batches of frames builds it once."""
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
    weight = ((wy[:, :, None] * wx[:, None, :]) * valid).reshape(tiling.count, -1)
    flat = (rows[:, :, None] * width + cols[:, None, :]).reshape(tiling.count, -1)
    norm = torch.zeros(height * width).index_add_(0, flat.reshape(-1), weight.reshape(-1))
    return (coords.reshape(tiling.count, -1, 2).to(device), weight.to(device),
            flat.to(device), norm.to(device))


@torch.inference_mode()
def render_gop(model: GOPModel, t: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Frames of one GOP at local times t (F,), as (F, height, width, 3) floats, unclipped."""
    tune_allocator()
    device = next(model.parameters()).device
    t = t.to(device=device, dtype=torch.float32)
    coords, weight, flat, norm = _tile_grid(model.tiling, height, width, device)
    n_tiles, n_points = weight.shape
    n_frames = t.shape[0]
    # A tile's product over more than about ROWS points of its frames falls out of cache
    # and runs at half speed or less, so frames are evaluated in groups.
    group = max(1, ROWS // n_points)
    per_tile = min(group, n_frames) * n_points * model.cfg.width * 4 * 2
    threads = torch.get_num_threads() if device.type == "cpu" else 1
    # Within the memory budget, and enough chunks that every thread stays busy to the end.
    step = max(1, min(CHUNK_BYTES // per_tile, n_tiles // (4 * threads)))
    biases = model.frame_biases(t)
    if _native(model.cfg, device):
        from ..fitting.kernel import render_tiles

        def blended(part: slice) -> torch.Tensor:
            return render_tiles(model.cfg, [w[part] for w in model.weights], coords[part],
                                biases[part], weight[part]).view(-1, n_frames, 3)
    else:
        weights = model.scaled_weights()

        @torch.inference_mode()  # grad mode is per thread
        def blended(part: slice) -> torch.Tensor:
            ws = [w[part] for w in weights]
            rgb = torch.cat([evaluate_tiles(coords[part], ws, biases[part, f : f + group],
                                            model.cfg) for f in range(0, n_frames, group)], dim=2)
            rgb *= weight[part, None, None, :]  # (Tc, 3, F, P)
            return rgb.permute(0, 3, 2, 1).reshape(-1, n_frames, 3)

    # Pixel-major, so that each index adds one contiguous row of every frame's colours.
    out = torch.zeros(height * width, n_frames, 3, device=device)
    parts = [slice(lo, min(lo + step, n_tiles)) for lo in range(0, n_tiles, step)]
    with parallel_chunks(threads) as pool:
        for part, rgb in zip(parts, pool.map(blended, parts)):
            out.index_add_(0, flat[part].reshape(-1), rgb)
    out /= norm[:, None, None]
    return out.permute(1, 0, 2).reshape(n_frames, height, width, 3)


def _native(cfg, device: torch.device) -> bool:
    """Whether the fitting kernel's forward pass renders this model (on CPU, with the sine
    activation, where the kernel builds): faster than PyTorch's products, see
    docs/performance.md."""
    from ..fitting.kernel import supported

    return supported(cfg, device)


def to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """Float RGB in [0, 1] to rounded, clipped uint8 on the CPU."""
    return (frames.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu()
