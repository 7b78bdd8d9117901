"""Periodic and localised activations for coordinate networks, with matching initialisation."""

from __future__ import annotations

import math

import torch

from .config import ModelConfig


def activate(x: torch.Tensor, cfg: ModelConfig) -> torch.Tensor:
    """Apply the configured activation to pre-activations x."""
    if cfg.activation == "sine":
        return torch.sin(cfg.omega * x)
    if cfg.activation == "gabor":
        # Real part of WIRE's complex Gabor wavelet: a cosine under a Gaussian envelope.
        return torch.cos(cfg.omega * x) * torch.exp(-((cfg.gabor_scale * x) ** 2))
    return torch.exp(-((cfg.gabor_scale * x) ** 2))


def init_weight(w: torch.Tensor, fan_in: int, first: bool, cfg: ModelConfig) -> None:
    """SIREN-style uniform init, scaled so pre-activations span a few periods (in place)."""
    if first:
        bound = 1.0 / fan_in
    elif cfg.activation == "gaussian":
        bound = math.sqrt(6.0 / fan_in) / cfg.gabor_scale
    else:
        bound = math.sqrt(6.0 / fan_in) / cfg.omega
    with torch.no_grad():
        w.uniform_(-bound, bound)
