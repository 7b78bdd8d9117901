"""Uniform per-tensor quantization of a GOP model's parameters, and its straight-through form.

Each tensor x gets one step s = max|x| / (2^(bits-1) - 1); its symbols are round(x / s),
which the bitstream entropy-codes. Quantization-aware fine-tuning evaluates the model with
round-tripped parameters in the forward pass while gradients reach the float parameters
unchanged (straight-through estimator), so the fit adapts to the grid it will be stored on.
"""

from __future__ import annotations

import numpy as np
import torch


def quant_steps(state: dict[str, torch.Tensor], bits: int) -> dict[str, float]:
    """One float32-exact step per tensor for a signed grid of 2^bits - 1 levels."""
    if not 2 <= bits <= 16:
        raise ValueError("bits must lie in 2..16")
    levels = 2 ** (bits - 1) - 1
    steps = {}
    for name, x in state.items():
        peak = float(x.detach().abs().max()) if x.numel() else 0.0
        step = peak / levels if peak > 0 else 1.0
        steps[name] = float(np.float32(step))  # what the stream stores, exactly
    return steps


def quantize(state: dict[str, torch.Tensor], steps: dict[str, float]) -> dict[str, np.ndarray]:
    """Integer symbols (int32 arrays, same shapes) of every tensor on its grid."""
    return {
        name: torch.round(x.detach().float().cpu() / steps[name]).to(torch.int32).numpy()
        for name, x in state.items()
    }


def dequantize(symbols: dict[str, np.ndarray], steps: dict[str, float]) -> dict[str, torch.Tensor]:
    """Float tensors back from symbols and steps: exactly what a decoder computes."""
    return {
        name: torch.from_numpy(s.astype(np.float32)) * torch.tensor(steps[name], dtype=torch.float32)
        for name, s in symbols.items()
    }


def straight_through(x: torch.Tensor, step: float) -> torch.Tensor:
    """x rounded to its grid in the forward pass, identity in the backward pass."""
    return x + (torch.round(x / step) * step - x).detach()
