"""Probe: how well entropy-coded latent grids code one still frame, against x264 intra.

The representation issue (30) asks whether latents under a context model, as Cool-chic
and C3 have them, code a picture far better than actinr's tiled coordinate MLP. This
probe answers it for single frames before anything goes into the codec. A frame is held
as a pyramid of one-channel latent grids (full size, 1/2, 1/4, ...), each upsampled to
full size (bicubic); a small per-pixel network with a 3x3 refinement turns the stacked
latents into RGB. Latents are coded under an auto-regressive model: a tiny network reads
each latent's causal neighbours (two rows above, two to the left, the same grid) and
gives the mean and scale of a Laplace distribution over the integer latent. The fit
minimises distortion (YCbCr, 6:1:1, BT.601) plus lambda times the latents' bits, with
uniform noise standing in for rounding for most of it and straight-through rounding at
the end. The networks are then quantized with a searched step per network (its symbols
priced at their empirical entropy), the latents' bits recomputed with the quantized
context network.

The rate is the model's own estimate (the ideal code length of the rounded latents under
their probabilities, plus the networks' entropy and 2 bytes of step per network); the
latents are also range-coded for real (constriction, float probabilities, so not yet
bit-exact across machines) and the overhead over the estimate reported. Distortion is measured as the codec
would: the decoded frame rounded to 8-bit RGB, converted to yuv420p as x264's input is,
PSNR-YUV420 against the source's planes. x264 medium intra (keyint 1) codes the same
frame at several crf values, and the BD-rate is reported.

    python bench/latent_intra.py --clips carphone tree --frame 10 --out /tmp/latent

Nothing here is part of the codec or its format yet; see docs/experiments.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from fractions import Fraction
from pathlib import Path

import constriction
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actinr_codec.media.videoio import read_video  # noqa: E402
from actinr_codec.metrics import psnr  # noqa: E402
from bitstream.stats import tensor_stats  # noqa: E402
from evaluation.baselines import code, codec_settings  # noqa: E402
from evaluation.bdrate import bd_delta  # noqa: E402
from evaluation.quality import psnr_yuv420, yuv420_planes  # noqa: E402

CLIPS = Path(__file__).resolve().parents[2] / "shared" / "clips"
# RGB in [0, 1] to Y, Cb, Cr (BT.601), and the 6:1:1 weights of PSNR-YUV420.
YCBCR = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5],
                      [0.5, -0.418688, -0.081312]])
PLANE_WEIGHTS = torch.tensor([6.0, 1.0, 1.0]) / 8
# The causal neighbours the context model reads: the first 12 positions of a 3x5 window
# whose last row is the latent's own, so the two rows above (5 each) and two to the left.
CONTEXT = 12
MIN_PROBABILITY = 2.0 ** -16


def to_float(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).float() / 255


def laplace_cdf(x: torch.Tensor, mu: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    z = (x - mu) / b
    return 0.5 - 0.5 * torch.sign(z) * torch.expm1(-z.abs())


class LatentFrame(nn.Module):
    """One frame as latent grids, a synthesis network and a context model."""

    def __init__(self, height: int, width: int, levels: int, hidden: int, arm_hidden: int):
        super().__init__()
        self.size = (height, width)
        self.latents = nn.ParameterList(
            nn.Parameter(torch.zeros(1, 1, math.ceil(height / 2 ** k), math.ceil(width / 2 ** k)))
            for k in range(levels))
        # Bicubic upsampling of each grid to full size as two matrices (rows, columns):
        # products are far cheaper to differentiate than interpolate's own kernel.
        self.upsample = [(_bicubic(g.shape[-2], height), _bicubic(g.shape[-1], width))
                         for g in self.latents]
        self.synthesis = nn.Sequential(
            nn.Linear(levels, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, 3))
        self.refine = nn.Conv2d(3, 3, 3, padding=1, padding_mode="replicate")
        nn.init.zeros_(self.refine.weight)
        nn.init.zeros_(self.refine.bias)
        self.arm = nn.Sequential(nn.Linear(CONTEXT, arm_hidden), nn.ReLU(),
                                 nn.Linear(arm_hidden, arm_hidden), nn.ReLU(),
                                 nn.Linear(arm_hidden, 2))

    def networks(self) -> dict[str, nn.Module]:
        return {"synthesis": self.synthesis, "refine": self.refine, "arm": self.arm}

    def coded_latents(self, mode: str) -> list[torch.Tensor]:
        """The latents as the decoder sees them: with noise (``noise``), rounded with a
        straight-through gradient (``ste``), or rounded (``round``)."""
        out = []
        for y in self.latents:
            if mode == "noise":
                out.append(y + torch.empty_like(y).uniform_(-0.5, 0.5))
            elif mode == "ste":
                out.append(y + (torch.round(y) - y).detach())
            else:
                out.append(torch.round(y))
        return out

    def rgb(self, latents: list[torch.Tensor]) -> torch.Tensor:
        """(H, W, 3) RGB in [0, 1], unclipped."""
        h, w = self.size
        stack = torch.stack([rows @ y[0, 0] @ cols.T for y, (rows, cols)
                             in zip(latents, self.upsample)], dim=-1)  # (H, W, levels)
        base = self.synthesis(stack).permute(2, 0, 1)[None]
        return (base + self.refine(base))[0].permute(1, 2, 0)

    def laplace(self, latents: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """Every latent, flat, with the mean and scale the context model gives it."""
        # Every grid's latents in one batch: the context model is shared by the grids.
        windows = torch.cat([F.unfold(F.pad(y, (2, 2, 2, 0)), (3, 5))[0, :CONTEXT].T
                             for y in latents])  # (latents, CONTEXT)
        flat = torch.cat([y.reshape(-1) for y in latents])
        mu, log_b = self.arm(windows).unbind(dim=1)
        return flat, mu, torch.exp(log_b).clamp(min=1e-2, max=1e2)

    def bits(self, latents: list[torch.Tensor]) -> torch.Tensor:
        """Ideal code length of the latents under the context model, in bits."""
        flat, mu, b = self.laplace(latents)
        p = laplace_cdf(flat + 0.5, mu, b) - laplace_cdf(flat - 0.5, mu, b)
        return (-torch.log2(p.clamp(min=MIN_PROBABILITY))).sum()


def _bicubic(n: int, size: int) -> torch.Tensor:
    """The (size, n) matrix of bicubic interpolation from n samples to size (as
    F.interpolate has it): column j is the interpolated unit vector j."""
    if n == size:
        return torch.eye(n)
    eye = torch.eye(n)[None, None]
    return F.interpolate(eye, size=(size, n), mode="bicubic", align_corners=False)[0, 0]


def distortion(rgb: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    err = ((rgb - target) @ YCBCR.T) ** 2
    return (err.mean(dim=(0, 1)) * PLANE_WEIGHTS).sum()


def fit(target: torch.Tensor, lam: float, iters: int, args) -> LatentFrame:
    h, w, _ = target.shape
    model = LatentFrame(h, w, args.levels, args.hidden, args.arm_hidden)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    pixels = h * w
    noise_until = int(iters * args.noise_share)
    for it in range(iters):
        for group in opt.param_groups:
            group["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * it / iters))
        latents = model.coded_latents("noise" if it < noise_until else "ste")
        loss = distortion(model.rgb(latents), target) + lam * model.bits(latents) / pixels
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model


@torch.no_grad()
def quantize_networks(model: LatentFrame, target: torch.Tensor, lam: float
                      ) -> tuple[float, dict[str, float]]:
    """Round each network's parameters to the step (a power of two) that minimises
    distortion + lambda x rate; returns the networks' bits and the steps chosen."""
    pixels = target.shape[0] * target.shape[1]
    latents = model.coded_latents("round")
    chosen, net_bits = {}, 0.0
    for name, net in model.networks().items():
        original = [p.detach().clone() for p in net.parameters()]
        best = None
        for shift in range(2, 13):
            step = 2.0 ** -shift
            symbols = [torch.round(p / step) for p in original]
            for p, s in zip(net.parameters(), symbols):
                p.copy_(s * step)
            rate = sum(tensor_stats(name, s.numpy()).entropy_bits for s in symbols) + 16
            cost = (float(distortion(model.rgb(latents), target))
                    + lam * (float(model.bits(latents)) + rate) / pixels)
            if best is None or cost < best[0]:
                best = (cost, step, rate)
        step = best[1]
        for p, o in zip(net.parameters(), original):
            p.copy_(torch.round(o / step) * step)
        chosen[name], net_bits = step, net_bits + best[2]
    return net_bits, chosen


def range_coded_bits(model: LatentFrame, latents: list[torch.Tensor]) -> int:
    """The latents' size when really range-coded (constriction) under the context model's
    Laplace distributions: the ideal code length's overhead, measured."""
    flat, mu, b = (t.double().numpy() for t in model.laplace(latents))
    symbols = flat.astype(np.int32)
    bound = int(np.abs(symbols).max()) + 1
    laplace = constriction.stream.model.QuantizedLaplace(-bound, bound)
    encoder = constriction.stream.queue.RangeEncoder()
    encoder.encode(symbols, laplace, mu, b)
    return 32 * len(encoder.get_compressed())


def latent_point(frame: np.ndarray, lam: float, args) -> dict:
    target = to_float(frame)
    start = time.perf_counter()
    torch.manual_seed(0)
    model = fit(target, lam, args.iters, args)
    fit_s = time.perf_counter() - start
    net_bits, steps = quantize_networks(model, target, lam)
    with torch.no_grad():
        latents = model.coded_latents("round")
        latent_bits = float(model.bits(latents))
        coded_bits = range_coded_bits(model, latents)
        decoded = (model.rgb(latents).clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
    h, w, _ = frame.shape
    return {
        "codec": "latent", "lambda": lam, "bpp": (latent_bits + net_bits) / (h * w),
        "latent_bpp": latent_bits / (h * w), "network_bpp": net_bits / (h * w),
        "range_coder_overhead": coded_bits / latent_bits - 1,
        "psnr_yuv420": psnr_yuv420(yuv420_planes(frame), yuv420_planes(decoded)),
        "psnr_rgb": psnr(to_float(decoded), target), "fit_s": round(fit_s, 1),
        "network_steps": steps,
    }


def x264_point(frame: np.ndarray, crf: int) -> dict:
    h, w, _ = frame.shape
    size, decoded, _, _, planes = code(frame[None], codec_settings("x264", crf, keyint=1),
                                       Fraction(25))
    return {"codec": "x264", "crf": crf, "bpp": size * 8 / (h * w),
            "psnr_yuv420": psnr_yuv420(yuv420_planes(frame), planes[0]),
            "psnr_rgb": psnr(to_float(decoded[0]), to_float(frame))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", nargs="+", default=["carphone", "city", "megamind", "tree"])
    ap.add_argument("--frame", type=int, default=10)
    ap.add_argument("--lambdas", type=float, nargs="+", default=[3e-3, 1e-3, 3e-4, 1e-4])
    ap.add_argument("--crfs", type=int, nargs="+", default=[17, 22, 27, 32, 37])
    ap.add_argument("--iters", type=int, default=3000)
    ap.add_argument("--levels", type=int, default=7)
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--arm-hidden", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--noise-share", type=float, default=0.7)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"args": {k: str(v) for k, v in vars(args).items()}, "clips": {}}
    for name in args.clips:
        frame = read_video(CLIPS / f"{name}.mkv", start=args.frame, count=1)[0][0]
        points = [x264_point(frame, crf) for crf in args.crfs]
        for lam in args.lambdas:
            points.append(latent_point(frame, lam, args))
            p = points[-1]
            print(f"{name} lambda {lam:g}: {p['bpp']:.3f} bpp ({p['network_bpp']:.3f} networks) "
                  f"{p['psnr_yuv420']:.2f} dB YUV420, {p['psnr_rgb']:.2f} dB RGB, "
                  f"{p['fit_s']} s", file=sys.stderr, flush=True)
        anchor = [p for p in points if p["codec"] == "x264"]
        test = [p for p in points if p["codec"] == "latent"]
        bd = {metric: bd_delta([p["bpp"] for p in anchor], [p[metric] for p in anchor],
                               [p["bpp"] for p in test], [p[metric] for p in test])
              for metric in ("psnr_yuv420", "psnr_rgb")}
        results["clips"][name] = {"points": points, "bd": bd}
        print(f"{name}: BD-rate against x264 intra {bd['psnr_yuv420']['bd_rate']} % "
              f"(PSNR-YUV420), {bd['psnr_rgb']['bd_rate']} % (PSNR-RGB)", file=sys.stderr,
              flush=True)
        (args.out / "latent_intra.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
