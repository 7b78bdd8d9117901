"""Estimating a video's noise level from the video alone.

A 3x3 second-difference kernel (Immerkaer's) cancels locally planar signal and leaves the
noise, scaled by the kernel's norm (6). Its median absolute value is robust to the edges
and texture that survive the kernel. Real and protocol noise is signal dependent (photon
noise grows with brightness), and the median of a mixture of spreads underestimates its
root mean square, so the median is taken per brightness bin and the bins' variances are
averaged, weighted by their pixel counts: the result is the RMS noise an encoder's
squared error sees.
"""

from __future__ import annotations

import numpy as np

# Immerkaer, "Fast noise variance estimation" (1996); its L2 norm is 6.
KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
KERNEL_NORM = 6.0
# Scales a median absolute deviation to the standard deviation of a Gaussian.
MAD_TO_SIGMA = 1.4826
BRIGHTNESS_BINS = 16
# Frames looked at, evenly spread; more adds time and little precision.
MAX_FRAMES = 16


def _filter3(frames: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Valid-region 3x3 correlation of (N, H, W, C) frames with ``kernel``."""
    _, h, w, _ = frames.shape
    out = np.zeros((frames.shape[0], h - 2, w - 2, frames.shape[3]))
    for i in range(3):
        for j in range(3):
            out += kernel[i, j] * frames[:, i : i + h - 2, j : j + w - 2]
    return out


def sampled_frames(count: int) -> np.ndarray:
    """Which of ``count`` frames the estimate looks at: up to MAX_FRAMES, evenly spread.
    Given just those frames, the estimate looks at all of them and gives the same value."""
    return np.unique(np.linspace(0, count - 1, MAX_FRAMES).round().astype(int))


def estimate_noise(frames: np.ndarray, unknown: np.ndarray | None = None) -> np.ndarray:
    """RMS noise per channel, in [0, 1] units, of (N, H, W, C) uint8 frames.

    unknown: optional (N, H, W) bool of pixels to ignore (an inpainting mask's holes).

    Measured against known noise on carphone (16 frames, 8-bit): Gaussian sigma 10/255
    reads 10.2-10.4, the evaluation's Poisson-Gaussian noise (RMS 27.9-28.3) reads
    27.8-28.1; a clean clip reads about 1.5 (texture and 8-bit rounding).
    """
    if frames.ndim != 4 or min(frames.shape[1:3]) < 3:
        raise ValueError(f"noise estimation needs frames of at least 3x3, got {frames.shape}")
    picked = sampled_frames(len(frames))
    video = frames[picked].astype(np.float64) / 255
    residual = _filter3(video, KERNEL) / KERNEL_NORM
    brightness = _filter3(video, np.full((3, 3), 1 / 9))
    usable = np.ones(residual.shape[:3], bool)
    if unknown is not None:
        # Only residuals whose whole 3x3 window is known.
        usable = _filter3(unknown[picked, ..., None].astype(np.float64), np.ones((3, 3)))[..., 0] == 0
    if not usable.any():
        raise ValueError("no 3x3 window of known pixels to estimate the noise from")
    sigmas = []
    for c in range(video.shape[3]):
        r, m = residual[..., c][usable], brightness[..., c][usable]
        edges = np.quantile(m, np.linspace(0, 1, BRIGHTNESS_BINS + 1)[1:-1])
        bins = np.searchsorted(edges, m)
        variance = sum(np.count_nonzero(bins == b) * (MAD_TO_SIGMA * np.median(np.abs(r[bins == b]))) ** 2
                       for b in np.unique(bins))
        sigmas.append(np.sqrt(variance / r.size))
    return np.array(sigmas)
