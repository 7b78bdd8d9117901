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
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch

from ..metrics import mse_to_psnr, psnr
from ..model.config import ModelConfig
from ..model.network import GOPModel, evaluate_tiles
from ..model.render import render_gop
from ..model.schema import format_parameters, load_tensors, model_tensors
from ..native.kernel import native_tile_loss, step_inputs, supported
from ..quantization.quantize import dequantize, quantize, straight_through
from ..runtime import compiled, kernel_threads, parallel_chunks, resolve_device
from .config import FitConfig
from .sampler import Sampler

# A running PSNR this far below the best seen so far counts as a divergence.
COLLAPSE_DB = 6.0
# Floats of frames one reconstruction_psnr render holds: 8 frames of a 640x360 GOP (its
# render and the error's temporaries take a few times that).
PSNR_GROUP_BYTES = 640 * 360 * 3 * 4 * 8
# Steps after which a fit's pace predicts whether its time cap will bind.
MIN_STEPS_TO_PROJECT = 20


@dataclass
class FitResult:
    model: GOPModel
    psnr: float  # of the blended reconstruction over every (unmasked) pixel
    iters: int
    seconds: float
    recoveries: int
    history: list[tuple[int, float, float]] = field(default_factory=list)  # (iter, s, psnr)


class _Inputs(torch.nn.Module):
    """What a step's loss reads of a model, as a module so that quantization-aware fitting
    can swap in rounded parameters with functional_call: the scaled weights and bias table
    for tile_loss, or the raw parameters for the native kernel."""

    def __init__(self, model: GOPModel, native: bool):
        super().__init__()
        self.model, self.native = model, native

    def forward(self, t: torch.Tensor) -> list:
        if self.native:
            return step_inputs(self.model, t)
        return [self.model.scaled_weights(), self.model.frame_biases(t)]


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
def _step_loss(model: GOPModel, sampler: Sampler, fit_cfg: FitConfig, device: torch.device,
               threads: int | None) -> Iterator[tuple[_Inputs, Callable, Callable]]:
    """How a step finds its loss: the module of the loss's inputs, a function drawing the
    points (from points and a generator), and the loss of a draw and the inputs. The native
    kernel where it applies, else tile_loss, compiled or not."""
    cfg = model.cfg
    if not (fit_cfg.native and supported(cfg, device)):
        loss = _compiled_tile_loss() if fit_cfg.compile else tile_loss

        def torch_loss(draw: tuple, inputs: list, frames: slice) -> torch.Tensor:
            coords, target, weight = draw
            return loss(coords, target[:, :, frames],
                        None if weight is None else weight[:, :, frames], *inputs, cfg)

        yield _Inputs(model, native=False), sampler.draw, torch_loss
        return
    # The kernel splits the tiles over a pool of its own (runtime.kernel_threads).
    threads = kernel_threads(threads)
    with parallel_chunks(threads) as pool:
        yield (_Inputs(model, native=True), sampler.uniforms, functools.partial(
            native_tile_loss, sampler=sampler, cfg=cfg, pool=pool, threads=threads))


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
    reference: dict[str, torch.Tensor] | None = None,
    rate_weights: dict[str, float] | None = None,
    price_later: tuple[float, Callable[[GOPModel, float], dict[str, float]]] | None = None,
    threads: int | None = None,
    times: torch.Tensor | None = None,
) -> FitResult:
    """Fit an ActINR model to frames (F, H, W, 3) float in [0, 1].

    init: tensors to start from, by their format names (warm start from the previous GOP).
    pixel_weight: optional (F, H, W) loss weights; 0 marks a pixel as unknown (inpainting).
    on_check: called as on_check(iter, seconds, running_psnr) every check interval.
    quant_steps: quantization-aware fitting: the forward pass sees every parameter rounded
    to its step, and the returned model holds the rounded parameters.
    reference: a predicted GOP's reference tensors: quant_steps then round the difference
    from them, and rate_weights price it.
    rate_weights: per tensor, the loss added per unit of absolute difference from the
    reference (from zero without one), a stand-in for the bits that moving a parameter
    costs (see encoder.py).
    price_later: (fraction, prices): once that fraction of the steps is done, rate_weights
    become prices(model, running_psnr); the schedule runs on undisturbed.
    threads: the native kernel's pool size on CPU (runtime.kernel_threads).
    times: each frame's local time (F,), for a variable frame rate; frame f at f otherwise.
    The running PSNR reported and tracked is the distortion's alone.
    """
    dev = resolve_device(device)
    frames = frames.to(dev, torch.float32)
    weight = None if pixel_weight is None else pixel_weight.to(dev, torch.float32)
    n_frames, height, width, _ = frames.shape
    model = GOPModel(model_cfg, height, width).to(dev)
    if init is not None:
        load_tensors(model, init)
    sampler = Sampler(model, frames, weight)
    times = (torch.arange(n_frames, dtype=torch.float32) if times is None
             else times.to(torch.float32)).to(dev)
    gen = torch.Generator(device=dev).manual_seed(fit_cfg.seed)
    opt = _adam(model, fit_cfg.lr)

    # The next step's points are drawn on a thread of their own while this step's kernel
    # runs: the draw does not depend on the parameters, and would otherwise leave a core idle.
    with (_step_loss(model, sampler, fit_cfg, dev, threads) as (inputs, draw, loss_of),
          ThreadPoolExecutor(1) as drawer):
        params = format_parameters(model)
        # functional_call addresses parameters by module path, the format by its own names.
        paths = {id(p): f"model.{path}" for path, p in model.named_parameters()}
        anchors = None if reference is None else {
            n: reference[n].detach().to(dev, torch.float32) for n in params}

        def step_loss(drawn: tuple, frames: slice) -> tuple[torch.Tensor, torch.Tensor]:
            """The loss to minimise, and the distortion in it, over those frames."""
            t = times[frames]
            if quant_steps is None:
                distortion = loss_of(drawn, inputs(t), frames)
            else:
                rounded = {paths[id(p)]: straight_through(
                    p, quant_steps[n], None if anchors is None else anchors[n])
                    for n, p in params.items()}
                distortion = loss_of(drawn, torch.func.functional_call(inputs, rounded, (t,)), frames)
            if not rate_weights:
                return distortion, distortion
            rate = sum(w * (params[n] if anchors is None else params[n] - anchors[n]).abs().sum()
                       for n, w in rate_weights.items())
            return distortion + rate, distortion

        def snapshot() -> dict[str, torch.Tensor]:
            return {k: v.detach().clone() for k, v in model.state_dict().items()}

        best_state, best_psnr = snapshot(), -math.inf
        lr_scale, recoveries, running, history = 1.0, 0, None, []
        start = time.perf_counter()
        it = 0
        groups = fit_cfg.groups(n_frames)
        still = None if model.motion_out is None or init is not None else list(
            model.motion_out.parameters())
        drawn = drawer.submit(draw, fit_cfg.points, gen)
        while it < fit_cfg.iters:
            elapsed = time.perf_counter() - start
            progress = it / fit_cfg.iters
            if fit_cfg.seconds is not None:
                if elapsed >= fit_cfg.seconds:
                    break
                # The schedule follows the clock only once the time cap will bind: on a
                # machine fast enough for the steps it follows the steps alone, so that a
                # seed gives the same fit however busy the machine was at its start.
                if it >= MIN_STEPS_TO_PROJECT and elapsed * fit_cfg.iters / it > fit_cfg.seconds:
                    progress = max(progress, elapsed / fit_cfg.seconds)
            for group in opt.param_groups:
                group["lr"] = _lr_at(progress, fit_cfg) * lr_scale
            if price_later is not None and progress >= price_later[0]:
                rate_weights = price_later[1](model, mse_to_psnr(running) if running else best_psnr)
                price_later = None
                # The price gives up distortion on purpose: a divergence is judged against
                # what the priced fit reaches, not against the unpriced one's best.
                best_psnr = -math.inf
            batch = drawn.result()
            drawn = drawer.submit(draw, fit_cfg.points, gen)
            loss, distortion = step_loss(batch, slice(it % groups, None, groups))
            value = distortion.item()
            if it == 0 and math.isfinite(value):
                best_psnr = mse_to_psnr(value)  # the starting state is the first fallback
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if still is not None and progress < fit_cfg.motion_from:
                for p in still:
                    p.grad = None  # Adam leaves a parameter without a gradient as it is
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
        load_tensors(model, dequantize(quantize(model_tensors(model), quant_steps, reference),
                                       quant_steps, reference))
    seconds = time.perf_counter() - start
    model.eval()
    return FitResult(model, reconstruction_psnr(model, frames, weight, threads, times), it, seconds,
                     recoveries, history)


def reconstruction_psnr(
    model: GOPModel, frames: torch.Tensor, pixel_weight: torch.Tensor | None = None,
    threads: int | None = None, times: torch.Tensor | None = None,
) -> float:
    """PSNR of the model's blended, clipped frames against frames (F, H, W, 3) in [0, 1],
    rendered at local ``times`` (F,) (default: frame f at f).

    Frames are rendered in groups of at most PSNR_GROUP_BYTES of floats, so that long or
    large GOPs keep the render's copies bounded (one group for small ones, as before).
    """
    n_frames, height, width, _ = frames.shape
    device = next(model.parameters()).device
    times = torch.arange(float(n_frames)) if times is None else times.float().cpu()
    group = max(1, PSNR_GROUP_BYTES // (height * width * 3 * 4))
    if n_frames <= group:
        frames = frames.to(device)
        recon = render_gop(model, times, height, width, threads=threads).clamp(0, 1)
        if pixel_weight is None:
            return psnr(recon, frames)
        weight = pixel_weight.to(device)
        err = ((recon - frames) ** 2).mean(dim=-1)
        return mse_to_psnr(float((err * weight).sum() / weight.sum().clamp(min=1e-12)))
    total = count = 0.0
    for start in range(0, n_frames, group):
        part = slice(start, min(start + group, n_frames))
        recon = render_gop(model, times[part], height, width, threads=threads).clamp(0, 1)
        err = ((recon - frames[part].to(device)) ** 2).mean(dim=-1)
        weight = (torch.ones_like(err) if pixel_weight is None
                  else pixel_weight[part].to(device))
        total += float((err.double() * weight).sum())
        count += float(weight.sum())
    return mse_to_psnr(total / max(count, 1e-12))
