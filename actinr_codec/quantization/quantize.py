"""Uniform per-tensor quantization of a GOP model's parameters, and its straight-through form.

Each tensor x gets one step s; its symbols are round(x / s), which the bitstream
entropy-codes, or for a predicted GOP round((x - r) / s) around the reference GOP's
decoded tensor r. Steps are allocated by sensitivity: rounding adds about G * s^2 / 12 to the
output's squared error per parameter (G from actinr_codec.quantization.sensitivity), and the bits a
parameter costs fall by one per doubling of s, so the fewest bits for a given added error
make G * s^2 the same for every tensor (reverse water-filling). Quantization-aware
fine-tuning evaluates the model with rounded parameters in the forward pass while gradients
reach the float parameters unchanged (straight-through), so the fit adapts to its grid.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from bitstream.limits import MAX_SYMBOL

# Finest step relative to a tensor's peak: keeps symbols far inside the format's limit.
MAX_LEVELS = 1 << 15


def allocate_steps(state: dict[str, torch.Tensor], sensitivity: dict[str, float],
                   noise_mse: float) -> dict[str, float]:
    """float32-exact steps whose rounding should add about noise_mse to the output's MSE.

    No step exceeds its tensor's peak, where the linear estimate stops holding.
    """
    if not noise_mse > 0:
        raise ValueError("noise_mse must be positive")
    count = sum(x.numel() for x in state.values())
    steps = {}
    for name, x in state.items():
        peak = float(x.detach().abs().max()) if x.numel() else 0.0
        if peak == 0:
            steps[name] = 1.0
            continue
        g = sensitivity[name]
        step = math.sqrt(12 * noise_mse / (count * g)) if g > 0 else peak
        steps[name] = float(np.float32(min(max(step, peak / MAX_LEVELS), peak)))
    return steps


def quantize(state: dict[str, torch.Tensor], steps: dict[str, float],
             reference: dict[str, torch.Tensor] | None = None) -> dict[str, np.ndarray]:
    """Integer symbols (int32 arrays, same shapes) of every tensor on its grid; with a
    reference (a predicted GOP), of its difference from the reference's tensor.
    ValueError if a value is not finite or its symbol lies beyond the format's range:
    rounding would silently turn it into an arbitrary integer."""
    out = {}
    for name, x in state.items():
        scaled = torch.round(_residual(x.detach().float().cpu(), reference, name) / steps[name])
        if not bool(torch.isfinite(scaled).all()):
            raise ValueError(f"tensor {name} has values that are not finite")
        if scaled.numel() and float(scaled.abs().max()) > MAX_SYMBOL:
            raise ValueError(f"tensor {name} has a symbol beyond +-{MAX_SYMBOL}")
        out[name] = scaled.to(torch.int32).numpy()
    return out


def dequantize(symbols: dict[str, np.ndarray], steps: dict[str, float],
               reference: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Float tensors back from symbols and steps, plus the reference's tensors if given:
    exactly what a decoder computes (each product and sum rounded to float32)."""
    return {
        name: _rebuilt(torch.from_numpy(s.astype(np.float32))
                       * torch.tensor(steps[name], dtype=torch.float32), reference, name)
        for name, s in symbols.items()
    }


def _residual(x: torch.Tensor, reference: dict[str, torch.Tensor] | None,
              name: str) -> torch.Tensor:
    return x if reference is None else x - reference[name].detach().float().to(x.device)


def _rebuilt(x: torch.Tensor, reference: dict[str, torch.Tensor] | None,
             name: str) -> torch.Tensor:
    return x if reference is None else x + reference[name].detach().float().to(x.device)


def straight_through(x: torch.Tensor, step: float,
                     reference: torch.Tensor | None = None) -> torch.Tensor:
    """x rounded to its grid (around reference, if given) in the forward pass, identity in
    the backward pass."""
    base = 0.0 if reference is None else reference.detach()
    return x + (torch.round((x - base) / step) * step + base - x).detach()
