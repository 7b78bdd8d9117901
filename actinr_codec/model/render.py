"""Evaluating fitted models on any pixel grid at any time, in bounded memory.

Each tile is evaluated on the output pixels whose centres fall inside it; the tiles'
outputs are weighted by their blend ramps and added into the frame. Tiles are processed in
chunks sized so that the hidden activations stay under a fixed budget.
"""

from __future__ import annotations

import functools

import torch

from ..native.kernel import render_tiles, supported
from ..runtime import kernel_threads, parallel_chunks
from .network import GOPModel, evaluate_tiles
from .tiling import Tiling, pixel_centres

# Bytes of hidden activations one chunk of tiles may hold; bounds peak memory of a render.
CHUNK_BYTES = 16 << 20
# Most points (over all frames of a group) one tile's matrix product covers.
ROWS = 1024


@functools.lru_cache(maxsize=2)  # a 4x grid holds about 100 MB
def _tile_grid(tiling: Tiling, height: int, width: int, band: tuple[int, int],
               device: torch.device):
    """Per-tile output pixel indices, local coordinates and blend weights, padded to one
    size, and each pixel's total blend weight, for the grid's rows [band[0], band[1]) and
    the tiles that reach them (a contiguous slice, also returned). Depends only on the
    grid, so decoding many batches of frames builds it once."""
    top, bottom = band
    boxes = tiling.pixel_boxes(height, width)
    boxes[:, 0].clamp_(min=top)
    boxes[:, 1].clamp_(max=bottom)
    # Tiles of a row band are numbered row by row, so those reaching it are contiguous.
    reach = torch.nonzero(boxes[:, 1] > boxes[:, 0]).flatten()
    tiles = slice(int(reach[0]), int(reach[-1]) + 1)
    boxes = boxes[tiles]
    count = len(boxes)
    hs, ws = boxes[:, 1] - boxes[:, 0], boxes[:, 3] - boxes[:, 2]
    hmax, wmax = int(hs.max()), int(ws.max())
    iy = torch.arange(hmax)
    ix = torch.arange(wmax)
    rows = (boxes[:, :1] + iy[None]).clamp(max=bottom - 1)  # (T, hmax)
    cols = (boxes[:, 2:3] + ix[None]).clamp(max=width - 1)  # (T, wmax)
    valid = (iy[None] < hs[:, None])[:, :, None] & (ix[None] < ws[:, None])[:, None, :]
    tile_idx = torch.arange(tiles.start, tiles.stop)
    tr, tc = tile_idx // tiling.cols.count, tile_idx % tiling.cols.count
    yc, xc = pixel_centres(height)[rows], pixel_centres(width)[cols]
    ly = tiling.rows.to_local(yc, tr[:, None])
    lx = tiling.cols.to_local(xc, tc[:, None])
    wy = torch.stack([tiling.rows.weight(yc[k], int(tr[k])) for k in range(count)])
    wx = torch.stack([tiling.cols.weight(xc[k], int(tc[k])) for k in range(count)])
    coords = torch.stack(torch.broadcast_tensors(ly[:, :, None], lx[:, None, :]), dim=-1)
    weight = ((wy[:, :, None] * wx[:, None, :]) * valid).reshape(count, -1)
    flat = ((rows[:, :, None] - top) * width + cols[:, None, :]).reshape(count, -1)
    norm = torch.zeros((bottom - top) * width).index_add_(0, flat.reshape(-1), weight.reshape(-1))
    return (tiles, coords.reshape(count, -1, 2).to(device), weight.to(device),
            flat.to(device), norm.to(device))


@torch.inference_mode()
def render_gop(model: GOPModel, t: torch.Tensor, height: int, width: int,
               rows: tuple[int, int] | None = None, threads: int | None = None
               ) -> torch.Tensor:
    """Frames of one GOP at local times t (F,), as (F, height, width, 3) floats, unclipped;
    with ``rows`` (top, bottom), only those rows of the height x width grid, as
    (F, bottom - top, width, 3): a frame too large to hold in float renders in bands.
    threads: the CPU pool's size (runtime.kernel_threads)."""
    device = next(model.parameters()).device
    t = t.to(device=device, dtype=torch.float32)
    top, bottom = (0, height) if rows is None else rows
    if not 0 <= top < bottom <= height:
        raise ValueError(f"rows {rows} do not lie within 0..{height}")
    tiles, coords, weight, flat, norm = _tile_grid(model.tiling, height, width, (top, bottom),
                                                   device)
    n_tiles, n_points = weight.shape
    n_frames = t.shape[0]
    # A tile's product over more than about ROWS points of its frames falls out of cache
    # and runs at half speed or less, so frames are evaluated in groups.
    group = max(1, ROWS // n_points)
    per_tile = min(group, n_frames) * n_points * model.cfg.width * 4 * 2
    threads = kernel_threads(threads) if device.type == "cpu" else 1
    # Within the memory budget, and enough chunks that every thread stays busy to the end.
    step = max(1, min(CHUNK_BYTES // per_tile, n_tiles // (4 * threads)))
    biases = model.frame_biases(t, tiles)
    layers = [w[tiles] for w in model.weights]
    if _native(model.cfg, device):
        def blended(part: slice) -> torch.Tensor:
            return render_tiles(model.cfg, [w[part] for w in layers], coords[part],
                                biases[part], weight[part]).view(-1, n_frames, 3)
    else:
        weights = model.scaled_weights(tiles)

        @torch.inference_mode()  # grad mode is per thread
        def blended(part: slice) -> torch.Tensor:
            ws = [w[part] for w in weights]
            rgb = torch.cat([evaluate_tiles(coords[part], ws, biases[part, f : f + group],
                                            model.cfg) for f in range(0, n_frames, group)], dim=2)
            rgb *= weight[part, None, None, :]  # (Tc, 3, F, P)
            return rgb.permute(0, 3, 2, 1).reshape(-1, n_frames, 3)

    # Pixel-major, so that each index adds one contiguous row of every frame's colours.
    out = torch.zeros((bottom - top) * width, n_frames, 3, device=device)
    parts = [slice(lo, min(lo + step, n_tiles)) for lo in range(0, n_tiles, step)]
    with parallel_chunks(threads) as pool:
        for part, rgb in zip(parts, pool.map(blended, parts)):
            out.index_add_(0, flat[part].reshape(-1), rgb)
    out /= norm[:, None, None]
    return out.permute(1, 0, 2).reshape(n_frames, bottom - top, width, 3)


def _native(cfg, device: torch.device) -> bool:
    """Whether the native kernel's forward pass renders this model (on CPU, with the sine
    activation, where the kernel builds): faster than PyTorch's products, see
    docs/performance.md."""
    return supported(cfg, device)


def to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """Float RGB in [0, 1] to rounded, clipped uint8 on the CPU."""
    # One temporary, not three: the same operations in the same order, so the same bytes.
    return frames.clamp(0, 1).mul_(255).add_(0.5).to(torch.uint8).cpu()
