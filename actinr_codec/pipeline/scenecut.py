"""Scene cuts: frames where the picture changes too much to be predicted from the one before.

A GOP spanning a cut would spend its capacity on two unrelated pictures, and a predicted
GOP across one would inherit nothing useful, so the GOP plan starts an intra GOP at each
cut (as x264's lookahead does). A cut is declared where both the luma histogram and the
picture itself change abruptly: a histogram alone misses cuts between scenes of similar
tones, and a picture difference alone fires on fast motion. The picture difference must
also stand well above the recent motion, so that a steadily fast pan is not cut.
"""

from __future__ import annotations

import numpy as np

# Luma is compared on a grid this many samples wide (area mean), which removes noise and
# makes the measure independent of the frame size.
GRID_WIDTH = 64
BINS = 32
# L1 distance of normalised luma histograms (0 = same, 2 = disjoint) above which...
HISTOGRAM_JUMP = 0.2
# ...and a mean absolute luma difference (8-bit levels) above this many levels and this
# many times the median of the last RECENT differences, a frame starts a new scene.
PICTURE_JUMP = 20.0
ABOVE_RECENT = 3.0
RECENT = 8


def _luma_grid(frame: np.ndarray) -> np.ndarray:
    luma = frame.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    h, w = luma.shape
    step = max(1, w // GRID_WIDTH)
    h, w = h // step * step, w // step * step
    return luma[:h, :w].reshape(h // step, step, w // step, step).mean(axis=(1, 3))


def scene_cuts(frames: np.ndarray) -> list[int]:
    """Indices of the frames of (N, H, W, 3) uint8 video that start a new scene."""
    cuts, recent = [], []
    previous = None
    for t, frame in enumerate(frames):
        grid = _luma_grid(frame)
        hist = np.histogram(grid, bins=BINS, range=(0, 256))[0] / grid.size
        if previous is not None:
            picture = float(np.mean(np.abs(grid - previous[0])))
            histogram = float(np.abs(hist - previous[1]).sum())
            usual = float(np.median(recent)) if recent else 0.0
            if (histogram > HISTOGRAM_JUMP and picture > PICTURE_JUMP
                    and picture > ABOVE_RECENT * usual):
                cuts.append(t)
                recent = []  # motion before the cut says nothing about the new scene
            else:
                recent = (recent + [picture])[-RECENT:]
        previous = (grid, hist)
    return cuts
