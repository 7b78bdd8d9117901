"""Fitting one GOP's model to its frames: Adam, a cosine schedule, budgets and recovery.

Every step samples the same random points in every tile for all frames of the GOP, so
each frame's bias broadcasts over its points instead of being gathered per pixel.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch

from .config import FitConfig, ModelConfig
from .kernel import native_tile_loss, supported
from .metrics import mse_to_psnr, psnr
from .model import GOPModel, evaluate_tiles
from .quantize import dequantize, quantize, straight_through
from .render import render_gop
from .runtime import compiled, parallel_chunks, resolve_device, tune_allocator
from .tiling import pixel_centres

# A running PSNR this far below the best seen so far counts as a divergence.
COLLAPSE_DB = 6.0


@dataclass
class FitResult:
    model: GOPModel
    psnr: float  # of the blended reconstruction over every (unmasked) pixel
    iters: int
    seconds: float
    recoveries: int
    history: list[tuple[int, float, float]] = field(default_factory=list)  # (iter, s, psnr)


class Sampler:
    """Draws the same random pixels of each tile for every frame, with their targets."""

    def __init__(self, model: GOPModel, frames: torch.Tensor, weight: torch.Tensor | None):
        n_frames, height, width, _ = frames.shape
        tiling = model.tiling
        boxes = tiling.pixel_boxes(height, width).to(frames.device)
        self.y0, self.ylen = boxes[:, 0], boxes[:, 1] - boxes[:, 0]
        self.x0, self.xlen = boxes[:, 2], boxes[:, 3] - boxes[:, 2]
        tiles = torch.arange(tiling.count, device=frames.device)
        self.tile_row, self.tile_col = tiles // tiling.cols.count, tiles % tiling.cols.count
        self.tiling, self.width = tiling, width
        self.yc = pixel_centres(height, frames.device)
        self.xc = pixel_centres(width, frames.device)
        # Pixel-major, so each drawn pixel gathers one contiguous row of all its frames.
        self.pixels = frames.permute(1, 2, 0, 3).reshape(height * width, n_frames * 3)
        self.weight = None if weight is None else weight.permute(1, 2, 0).reshape(height * width, n_frames)

    def draw(self, points: int, gen: torch.Generator):
        shape = (self.y0.shape[0], points)
        dev = self.y0.device
        ry = torch.rand(shape, generator=gen, device=dev)
        rx = torch.rand(shape, generator=gen, device=dev)
        y = self.y0[:, None] + torch.minimum((ry * self.ylen[:, None]).long(), self.ylen[:, None] - 1)
        x = self.x0[:, None] + torch.minimum((rx * self.xlen[:, None]).long(), self.xlen[:, None] - 1)
        coords = torch.stack(
            [
                self.tiling.rows.to_local(self.yc[y], self.tile_row[:, None]),
                self.tiling.cols.to_local(self.xc[x], self.tile_col[:, None]),
            ],
            dim=-1,
        )
        flat = (y * self.width + x).reshape(-1)
        # index_select copies whole rows; plain indexing goes element by element.
        target = self.pixels.index_select(0, flat).view(*shape, -1, 3).permute(0, 3, 2, 1)  # (T, 3, F, P)
        weight = None
        if self.weight is not None:
            weight = self.weight.index_select(0, flat).view(*shape, -1).transpose(1, 2)[:, None]
        return coords, target, weight


class _Layers(torch.nn.Module):
    """A model's per-step tensors (scaled weights, per-frame bias table), as a module so that
    quantization-aware fitting can swap in rounded parameters with functional_call."""

    def __init__(self, model: GOPModel):
        super().__init__()
        self.model = model

    def forward(self, t: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        return self.model.scaled_weights(), self.model.frame_biases(t)


def tile_loss(coords: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None,
              weights: list[torch.Tensor], biases: torch.Tensor, cfg: ModelConfig
              ) -> torch.Tensor:
    """Mean squared error of the tile networks at drawn points; weight 0 ignores a pixel."""
    err = (evaluate_tiles(coords, weights, biases, cfg) - target) ** 2
    if weight is None:
        return err.mean()
    return (err * weight).sum() / (weight.sum() * 3).clamp(min=1)


@functools.cache
def _compiled_tile_loss() -> Callable:
    # One compiled function per process: every GOP and quantization-aware pass reuses it,
    # so its compile time is paid once per tensor shape.
    return compiled(tile_loss)


@contextlib.contextmanager
def _loss_function(model_cfg: ModelConfig, fit_cfg: FitConfig, device: torch.device
                   ) -> Iterator[Callable]:
    """The function computing a step's tile_loss: the native kernel where it applies, else
    tile_loss itself, compiled or not."""
    if not (fit_cfg.native and supported(model_cfg, device)):
        yield _compiled_tile_loss() if fit_cfg.compile else tile_loss
        return
    # The kernel splits the tiles over a pool of its own; torch's remaining small ops run
    # on one thread, since idle torch workers spinning for work would take its cores.
    threads = torch.get_num_threads()
    with parallel_chunks(threads) as pool:
        yield functools.partial(native_tile_loss, pool=pool, chunks=threads)


def _adam(model: GOPModel, lr: float) -> torch.optim.Adam:
    # The fused update is one loop over all parameters instead of several ops per tensor.
    return torch.optim.Adam(model.parameters(), lr=lr, fused=True)


def _lr_at(progress: float, cfg: FitConfig) -> float:
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.lr * (cfg.lr_final + (1 - cfg.lr_final) * cosine)


def warm_start_config(cfg: FitConfig) -> FitConfig:
    """Settings for a GOP that starts from its predecessor: a gentler learning rate.

    A full learning rate throws away much of the inherited fit in the first steps.
    Measured on carphone (GOP 7..14 after fitting 0..7, 1500 steps): cold reaches 36.0 dB
    after 1450 steps, warm at lr/3 after 850, warm at the full rate after 1150.
    """
    return dataclasses.replace(cfg, lr=cfg.lr * cfg.warm_lr_scale)


def fit_gop(
    frames: torch.Tensor,
    model_cfg: ModelConfig,
    fit_cfg: FitConfig = FitConfig(),
    init: dict[str, torch.Tensor] | None = None,
    pixel_weight: torch.Tensor | None = None,
    device: str | torch.device | None = None,
    on_check: Callable[[int, float, float], None] | None = None,
    quant_steps: dict[str, float] | None = None,
) -> FitResult:
    """Fit an ActINR model to frames (F, H, W, 3) float in [0, 1].

    init: a state dict to start from (warm start from the previous GOP).
    pixel_weight: optional (F, H, W) loss weights; 0 marks a pixel as unknown (inpainting).
    on_check: called as on_check(iter, seconds, running_psnr) every check interval.
    quant_steps: quantization-aware fitting: the forward pass sees every parameter rounded
    to its step, and the returned model holds the rounded parameters.
    """
    tune_allocator()
    dev = resolve_device(device)
    frames = frames.to(dev, torch.float32)
    weight = None if pixel_weight is None else pixel_weight.to(dev, torch.float32)
    n_frames, height, width, _ = frames.shape
    model = GOPModel(model_cfg, height, width).to(dev)
    if init is not None:
        model.load_state_dict(init)
    sampler = Sampler(model, frames, weight)
    times = torch.arange(n_frames, dtype=torch.float32, device=dev)
    gen = torch.Generator(device=dev).manual_seed(fit_cfg.seed)
    opt = _adam(model, fit_cfg.lr)

    layers = _Layers(model)

    # The next step's points are drawn on a thread of their own while this step's kernel
    # runs: the draw does not depend on the parameters, and would otherwise leave a core idle.
    with _loss_function(model_cfg, fit_cfg, dev) as loss_of, ThreadPoolExecutor(1) as drawer:
        def step_loss(coords: torch.Tensor, target: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
            if quant_steps is None:
                weights, biases = layers(times)
            else:
                rounded = {f"model.{n}": straight_through(p, quant_steps[n])
                           for n, p in model.named_parameters()}
                weights, biases = torch.func.functional_call(layers, rounded, (times,))
            return loss_of(coords, target, w, weights, biases, model_cfg)

        def snapshot() -> dict[str, torch.Tensor]:
            return {k: v.detach().clone() for k, v in model.state_dict().items()}

        best_state, best_psnr = snapshot(), -math.inf
        lr_scale, recoveries, running, history = 1.0, 0, None, []
        start = time.perf_counter()
        it = 0
        drawn = drawer.submit(sampler.draw, fit_cfg.points, gen)
        while it < fit_cfg.iters:
            elapsed = time.perf_counter() - start
            progress = it / fit_cfg.iters
            if fit_cfg.seconds is not None:
                if elapsed >= fit_cfg.seconds:
                    break
                progress = max(progress, elapsed / fit_cfg.seconds)
            for group in opt.param_groups:
                group["lr"] = _lr_at(progress, fit_cfg) * lr_scale
            coords, target, w = drawn.result()
            drawn = drawer.submit(sampler.draw, fit_cfg.points, gen)
            loss = step_loss(coords, target, w)
            value = loss.item()
            if it == 0 and math.isfinite(value):
                best_psnr = mse_to_psnr(value)  # the starting state is the first fallback
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            it += 1
            if math.isfinite(value):
                running = value if running is None else 0.9 * running + 0.1 * value
            if it % fit_cfg.check_every and it < fit_cfg.iters:
                continue
            current = mse_to_psnr(running) if running is not None else -math.inf
            params_ok = all(torch.isfinite(p).all() for p in model.parameters())
            if not math.isfinite(value) or not params_ok or current < best_psnr - COLLAPSE_DB:
                # Diverged: go back to the best state with a smaller step and a fresh optimiser.
                model.load_state_dict(best_state)
                lr_scale *= 0.5
                recoveries += 1
                running = None
                opt = _adam(model, fit_cfg.lr * lr_scale)
                continue
            if current >= best_psnr:
                best_psnr, best_state = current, snapshot()
            seconds = time.perf_counter() - start
            history.append((it, seconds, current))
            if on_check is not None:
                on_check(it, seconds, current)
            if fit_cfg.target_psnr is not None and current >= fit_cfg.target_psnr:
                break
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        model.load_state_dict(best_state)
    if quant_steps is not None:
        model.load_state_dict(dequantize(quantize(model.state_dict(), quant_steps), quant_steps))
    seconds = time.perf_counter() - start
    model.eval()
    return FitResult(model, reconstruction_psnr(model, frames, weight), it, seconds, recoveries, history)


def reconstruction_psnr(
    model: GOPModel, frames: torch.Tensor, pixel_weight: torch.Tensor | None = None
) -> float:
    """PSNR of the model's blended, clipped frames against frames (F, H, W, 3) in [0, 1]."""
    n_frames, height, width, _ = frames.shape
    device = next(model.parameters()).device
    frames = frames.to(device)
    recon = render_gop(model, torch.arange(float(n_frames)), height, width).clamp(0, 1)
    if pixel_weight is None:
        return psnr(recon, frames)
    weight = pixel_weight.to(device)
    err = ((recon - frames) ** 2).mean(dim=-1)
    return mse_to_psnr(float((err * weight).sum() / weight.sum().clamp(min=1e-12)))
