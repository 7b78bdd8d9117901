"""How strongly each parameter tensor moves a fitted model's output.

For the MSE loss, a small error e_j on parameter j adds about G_j * e_j^2 to the output's
mean squared error, with G_j the mean over outputs of (d output / d parameter j)^2 (the
Gauss-Newton diagonal). With random signs v on the outputs, the gradient of sum(v * output)
has squared entries whose expectation is exactly sum over outputs of those squared
derivatives, so a few backward passes estimate G for every parameter at once.
"""

from __future__ import annotations

import torch

from ..fitting.sampler import Sampler
from ..model.network import GOPModel
from ..model.schema import format_parameters

# Most (tile, frame, point) evaluations one backward pass holds: 8 frames of a 640x360
# GOP of 240 tiles at 64 points per tile (13 frames of today's 144 tiles of 40), about
# 0.3 GB of saved activations at width 24 and depth 3
# (a whole 32-frame GOP at once took 1.0-1.1 GB, the encode's peak). Longer or larger
# GOPs are done in groups of frames, each with its own signs (the cross terms still
# vanish in expectation), so memory stays bounded whatever the GOP.
MAX_EVALUATIONS = 240 * 8 * 64


def output_sensitivity(model: GOPModel, frames: torch.Tensor, points: int = 64,
                       draws: int = 16, seed: int = 0) -> dict[str, float]:
    """Mean Gauss-Newton diagonal per parameter tensor, for frames (F, H, W, 3) in [0, 1]."""
    device = next(model.parameters()).device
    frames = frames.to(device, torch.float32)
    sampler = Sampler(model, frames, None)
    gen = torch.Generator(device=device).manual_seed(seed)
    params = format_parameters(model)
    totals = {name: torch.zeros_like(p) for name, p in params.items()}
    times = torch.arange(frames.shape[0], dtype=torch.float32, device=device)
    group = max(1, MAX_EVALUATIONS // (model.tiling.count * points))
    outputs = 0
    for _ in range(draws):
        coords, _, _ = sampler.draw(points, gen)
        for start in range(0, len(times), group):
            out = model(coords, times[start:start + group])
            signs = torch.randint(0, 2, out.shape, generator=gen, device=device) * 2.0 - 1.0
            grads = torch.autograd.grad((out * signs).sum(), list(params.values()))
            for total, grad in zip(totals.values(), grads):
                total += grad.square()
            outputs += out.numel()
    return {name: float(total.mean()) / outputs for name, total in totals.items()}
