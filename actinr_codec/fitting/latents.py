"""Fitting a latent-grid picture (model/latents.py) to its frame: the rate-distortion loop
and the quantization of its networks.

The loss is distortion in YCbCr with 6:1:1 weights (PSNR-YUV420's, as x264 and Cool-chic
spend bits) plus lambda times the latents' ideal code length under the context model.
Rounding is stood in for by soft rounding around uniform noise for most of the fit and by
straight-through rounding at the end, at a fraction of the rate so that the last phase does
not undo the fit; the state whose true rounding scored best is kept. The networks are then
put on power-of-two steps, one per tensor where that pays, chosen by the same cost.
The measurements behind each default are in docs/experiments.md (issue 30's probes).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bitstream.latents import ContextModel

from ..metrics import mse_to_psnr
from ..model.latents import LatentFrame


@dataclass(frozen=True)
class LatentFitConfig:
    """The fit's schedule and the picture model's size: the one source of their defaults
    (bench/latent_intra.py reads its options' defaults from here).

    Defaults are the best measured on single frames (docs/experiments.md, "sixth probe":
    carphone, city and tree frame 10 at 6.6 to 9.7 % under x264 intra); the first probes'
    were 3000 steps, 16 -> 16 -> 3 and one 3x3, a context network 16 wide, noise, rates
    1e-2, no per-tensor steps and no kept state.
    """

    iters: int = 10000
    levels: int = 7
    hidden: int = 40  # the synthesis' width
    depth: int = 1  # the synthesis' hidden layers
    refine_layers: int = 2  # residual 3x3 convolutions after the synthesis
    arm_hidden: int = 8  # the context network's width (two hidden layers)
    lr: float = 1e-2
    latent_lr: float = 3e-2
    quantizer: str = "soft"  # "soft" rounding around noise, or plain "noise"
    noise_share: float = 0.7  # the share of steps before straight-through rounding
    ste_lr_scale: float = 0.01  # learning rates when straight-through, of the schedule's
    keep_best: bool = True  # return the best state under true rounding, checked 100 times
    chroma: str = "444"  # fit Cb and Cr at full resolution, or "420" as 2x2 means
    # The most bits the rate term prices a latent at: the coder's tables go to 2**-24.
    floor_bits: int = 24
    tensor_steps: bool = True  # a quantization step per weight and bias where it pays
    # How the planes' squared errors make the distortion: their 6:1:1 "sum", or their
    # 6:1:1 "geometric" mean, whose logarithm is PSNR-YUV420's mean of plane PSNRs (even
    # on carphone and megamind's window, 8.6 points worse on tree's: docs/experiments.md).
    planes: str = "sum"
    reused: tuple[str, ...] = ()  # networks coded by an earlier fit: held and not priced


# RGB in [0, 1] to Y, Cb, Cr (BT.601), and the 6:1:1 weights of PSNR-YUV420.
YCBCR = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5],
                      [0.5, -0.418688, -0.081312]])
PLANE_WEIGHTS = torch.tensor([6.0, 1.0, 1.0]) / 8


def distortion(rgb: torch.Tensor, target: torch.Tensor, chroma: str = "444",
               frame_weights: torch.Tensor | None = None, planes: str = "sum") -> torch.Tensor:
    """6:1:1-weighted squared error of Y, Cb and Cr, frames (..., H, W, 3): the planes'
    mean squared errors summed with those weights, or (planes "geometric") their weighted
    geometric mean, which is in the same units but falls as PSNR-YUV420 rises (its log is
    minus the mean of the planes' PSNRs, up to a constant): a plane's error then counts in
    proportion to how small it already is. With chroma "420", Cb and Cr are compared as
    2x2 means, the grid PSNR-YUV420 scores them on. frame_weights (N,) scale each of N
    frames' squared errors."""
    ycbcr, weights = YCBCR.to(rgb), PLANE_WEIGHTS.to(rgb)
    err = (rgb - target) @ ycbcr.T
    if frame_weights is not None:
        # Errors scaled by the root: squares, and 2x2 means of chroma, scale by the weight.
        err = err * frame_weights.sqrt().view(-1, 1, 1, 1)
    if chroma == "444":
        mse = (err ** 2).reshape(-1, 3).mean(dim=0)
    else:
        grids = err.reshape(-1, *err.shape[-3:]).permute(0, 3, 1, 2)  # (N, 3, H, W)
        chroma_mse = (F.avg_pool2d(grids[:, 1:], 2, ceil_mode=True) ** 2).mean(dim=(0, 2, 3))
        mse = torch.cat([(grids[:, 0] ** 2).mean()[None], chroma_mse])
    if planes == "geometric":
        # A floor far below 8-bit rounding's error keeps the log finite on a perfect plane.
        return torch.exp((weights * torch.log(mse + 1e-12)).sum())
    return (mse * weights).sum()


def fit(model: LatentFrame, target: torch.Tensor, lam: float, iters: int,
        args: LatentFitConfig,
        on_check: Callable[[int, float, float], None] | None = None) -> int:
    """Fit the model's latents and networks to the target, (H, W, 3) or (frames, H, W, 3);
    the rate is priced per pixel of the target. args: a LatentFitConfig, or anything with
    its fields (the probes' parsed options). on_check(step, seconds, PSNR-RGB of the
    rounded state) follows each of keep_best's checks. Returns the step whose state the
    model holds at the end (the last, or with keep_best the best one)."""
    started = time.perf_counter()
    fields = model.field_parameters() if model.field_lr is not None else []
    moving = {id(p) for p in fields}
    nets = [p for name, net in model.networks().items() if name not in args.reused
            for p in net.parameters() if id(p) not in moving]
    rates = [args.lr, args.latent_lr] + [model.field_lr] * bool(fields)
    opt = torch.optim.Adam([{"params": params, "lr": lr} for params, lr in
                            zip([nets, list(model.latents.parameters()), fields], rates)])
    pixels = target[..., 0].numel()
    noise_until = int(iters * args.noise_share)
    # With keep_best, the fit returns the state whose rounded latents scored best (a
    # hundred checks): the straight-through phase can raise the rate threefold
    # (docs/experiments.md, "fifth probe").
    best, check_every = (math.inf, None, iters), max(1, iters // 100)
    for it in range(iters):
        # Straight-through rounding may run at a fraction of the schedule's rate.
        scale = 1.0 if it < noise_until else args.ste_lr_scale
        for group, lr in zip(opt.param_groups, rates):
            group["lr"] = scale * lr * 0.5 * (1 + math.cos(math.pi * it / iters))
        # The soft-rounding temperature falls from 0.3 to 0.1 over the noisy phase.
        temperature = 0.3 - 0.2 * it / max(1, noise_until)
        seen, priced = model.coded_latents(args.quantizer if it < noise_until else "ste",
                                           temperature)
        loss = (distortion(model.rgb(seen), target, args.chroma, model.frame_weights,
                           args.planes)
                + lam * (model.bits(priced) + model.side_bits()) / pixels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if it < model.hold_steps:
            # Adam leaves a parameter without a gradient where it is.
            for p in model.held_parameters():
                p.grad = None
        opt.step()
        if args.keep_best and (it + 1) % check_every == 0:
            with torch.no_grad():
                rounded, _ = model.coded_latents("round")
                rgb = model.rgb(rounded)
                cost = float(distortion(rgb, target, args.chroma, model.frame_weights,
                                        args.planes)
                             + lam * (model.bits(rounded) + model.side_bits()) / pixels)
            if cost < best[0]:
                best = (cost, copy.deepcopy(model.state_dict()), it + 1)
            if on_check is not None:
                with torch.no_grad():
                    mse = float(((rgb.clamp(0, 1) - target) ** 2).mean())
                on_check(it + 1, time.perf_counter() - started, mse_to_psnr(mse))
    if best[1] is not None:
        model.load_state_dict(best[1])
    return best[2]


@torch.no_grad()
def quantize_networks(model: LatentFrame, target: torch.Tensor, lam: float, chroma: str,
                      tensor_steps: bool = False, reused: tuple[str, ...] = (),
                      planes: str = "sum") -> tuple[float, dict[str, object]]:
    """Round each network's parameters to the step (a power of two) that minimises
    distortion + lambda x rate; with tensor_steps, each weight and bias then moves to a
    step of its own where that pays (the context network keeps one step: its fixed
    point has one shift). Networks in reused come from an earlier fit, coded there: they
    keep their steps and cost nothing here. Returns the networks' bits and the steps."""
    latents, _ = model.coded_latents("round")
    chosen, net_bits = {}, 0.0
    for name, net in model.networks().items():
        if name in reused:
            chosen[name] = coded_step(net)
            continue
        original = [p.detach().clone() for p in net.parameters()]

        def cost(shifts: list[int], name=name, net=net, original=original
                 ) -> tuple[float, float]:
            return _rounded_cost(model, name, net, original, shifts, latents, target, lam,
                                 chroma, planes)

        n = len(original)
        best_cost, best_rate, best = min((*cost([shift] * n), [shift] * n)
                                         for shift in range(2, 13))
        if tensor_steps and name != "arm":
            for i in range(n):
                for d in (-2, -1, 1, 2):
                    trial = best[:i] + [min(14, max(1, best[i] + d))] + best[i + 1:]
                    c, r = cost(trial)
                    if c < best_cost:
                        best_cost, best_rate, best = c, r, trial
        # Leave the network at its chosen steps (the last trial may have been another).
        cost(best)
        net_bits += best_rate
        chosen[name] = 2.0 ** -best[0] if len(set(best)) == 1 else [2.0 ** -s for s in best]
    return net_bits, chosen


def _rounded_cost(model: LatentFrame, name: str, net: nn.Module,
                  original: list[torch.Tensor], shifts: list[int], latents: list[torch.Tensor],
                  target: torch.Tensor, lam: float, chroma: str, planes: str
                  ) -> tuple[float, float]:
    """Set the parameters of net (the model's network called name) to the original ones
    rounded to steps 2**-shift, one per tensor; returns distortion + lambda x rate per
    pixel, and the network's bits."""
    symbols = [torch.round(o * 2.0 ** s) for o, s in zip(original, shifts)]
    for p, q, s in zip(net.parameters(), symbols, shifts):
        p.copy_(q * 2.0 ** -s)
    # Each step is a shift of 4 bits; one step for the whole network takes 16.
    rate = (model.network_bits(name, symbols)
            + (4 * len(shifts) if len(set(shifts)) > 1 else 16))
    pixels = target[..., 0].numel()
    return (float(distortion(model.rgb(latents), target, chroma, model.frame_weights, planes))
            + lam * (float(model.bits(latents)) + rate) / pixels), rate


def coded_step(net: nn.Module) -> float:
    """The largest power-of-two step, at most 1, on which every parameter of an already
    quantized network lies (down to 2**-24, the context model's finest shift)."""
    values = torch.cat([p.detach().reshape(-1) for p in net.parameters()]).double()
    for shift in range(25):
        if torch.equal(torch.round(values * 2.0 ** shift), values * 2.0 ** shift):
            return 2.0 ** -shift
    raise ValueError("the network's parameters are not on a power-of-two step")


def context_model(model: LatentFrame, step: float) -> ContextModel:
    """The quantized context network as the bit-exact coder takes it."""
    shift = round(-math.log2(step))
    layers = tuple((torch.round(m.weight / step).long().numpy(),
                    torch.round(m.bias / step).long().numpy())
                   for m in model.arm if isinstance(m, nn.Linear))
    return ContextModel(layers, shift)
