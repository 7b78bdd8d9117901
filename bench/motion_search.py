"""Block motion search: where each cell of a picture sits in a reference, found by trying
every integer displacement within a radius, as a classic encoder's motion estimation
begins.

A GOP fit (`latent_gop.py`) moves its fields by the warped picture's gradient, from
zero. On carphone this search says what motion alone could give (frame 7 from frame 0:
31.8 dB with 16 x 16 blocks, 33.9 with 8 x 8, 30.3 with the 16 x 16 vectors spread
smoothly as the fields are, where the fit found 29.9; docs/experiments.md, "fourteenth
probe"). With `+me` (`+kme`: the keys' alone) the fields start where it puts them and the
fit refines them from there; measured with block motion (`+blk`, `+kblk`) and not taken.
From a decoded reference the fit's own smooth fields predict the keys as well as the
search's vectors ("fifteenth probe").

Nothing here is part of the codec or its format yet.
"""

from __future__ import annotations

import numpy as np


def cell_edges(size: int, cells: int) -> np.ndarray:
    """The pixel rows (or columns) where each of ``cells`` cells starts, and the end: the
    blocks a field of that many cells covers when upsampled to ``size`` by nearest
    neighbour (pixel i takes cell floor(i cells / size))."""
    return (np.arange(cells + 1) * size + cells - 1) // cells


def block_search(reference: np.ndarray, target: np.ndarray, cells: tuple[int, int],
                 radius: int, penalty: float) -> np.ndarray:
    """For each of a (cells_y, cells_x) grid of blocks of ``target`` (H, W luma), the
    integer displacement (dx, dy), within ``radius`` pixels, at which ``reference`` holds
    it best: the least mean squared difference plus ``penalty`` per pixel of
    displacement (|dx| + |dy|), which keeps flat blocks from taking a vector for noise.
    Returns (2, cells_y, cells_x) float32, pixels; the reference's edges repeat."""
    h, w = target.shape
    rows, cols = cell_edges(h, cells[0]), cell_edges(w, cells[1])
    area = np.outer(np.diff(rows), np.diff(cols)).astype(np.float64)
    padded = np.pad(reference, radius, mode="edge")
    best = np.full(cells, np.inf)
    moves = np.zeros((2, *cells), dtype=np.float32)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            shifted = padded[radius + dy:radius + dy + h, radius + dx:radius + dx + w]
            err = (shifted - target) ** 2
            sums = np.add.reduceat(np.add.reduceat(err, rows[:-1], axis=0), cols[:-1], axis=1)
            cost = sums / area + penalty * (abs(dx) + abs(dy))
            better = cost < best
            best[better] = cost[better]
            moves[0][better], moves[1][better] = dx, dy
    return moves
