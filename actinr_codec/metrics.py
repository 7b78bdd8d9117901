"""Distortion measures shared by fitting, tests and evaluation."""

from __future__ import annotations

import math

import torch

PSNR_CAP = 100.0


def mse_to_psnr(mse: float, peak: float = 1.0) -> float:
    """PSNR in dB for a mean squared error on a signal of the given peak, capped for mse 0."""
    if mse <= 0:
        return PSNR_CAP
    return min(PSNR_CAP, 10.0 * math.log10(peak * peak / mse))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR of two float images or videos in [0, 1] over all their samples."""
    return mse_to_psnr(torch.mean((a.float() - b.float()) ** 2).item())


def frame_psnrs(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    """Per-frame PSNR of two (F, H, W, C) float videos in [0, 1]."""
    err = ((a.float() - b.float()) ** 2).flatten(1).mean(dim=1)
    return [mse_to_psnr(e) for e in err.tolist()]
