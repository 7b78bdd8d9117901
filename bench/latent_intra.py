"""Probe: how well entropy-coded latent grids code one still frame, against x264 intra.

The representation issue (30) asks whether latents under a context model, as Cool-chic
and C3 have them, code a picture far better than actinr's tiled coordinate MLP. This
probe answers it for single frames before anything goes into the codec. A frame is held
as a pyramid of one-channel latent grids (full size, 1/2, 1/4, ...), each upsampled to
full size (bicubic); a small per-pixel network with a 3x3 refinement turns the stacked
latents into RGB. Latents are coded under an auto-regressive model: a tiny network reads
each latent's causal neighbours (two rows above, two to the left, the same grid) and
gives the mean and scale of a Laplace distribution over the integer latent. The fit
minimises distortion (YCbCr, 6:1:1, BT.601; chroma at full resolution or as the 2x2 means
that yuv420p keeps) plus lambda times the latents' bits, with
soft rounding around uniform noise (or plain noise) standing in for rounding for most of
it and straight-through rounding at the end, where --ste-lr-scale 0.01 keeps that phase
from undoing the fit (as Cool-chic's last phase runs at 1e-4). The networks are then
quantized with a searched step per network, each network's parameters priced as one
tensor in the codec's coder. The model itself is in bench/latent_model.py.

The rate is what a file would hold: the latents range-coded by bitstream.latents, whose
context model runs in fixed point so that every decoder computes the same probabilities
(the probe decodes them back and checks), each grid's symbol range in Exp-Golomb codes
(bitstream.latents.pack_ranges; probes before 2026-12-06's eighth counted 32 bits a grid),
plus the networks' coded size and 2 bytes of step per network. The float model's ideal
code length is reported beside it, and so the cost of fixed point (bench/latent_coding.py
splits it). Distortion is measured as the codec would: the decoded frame rounded to 8-bit
RGB, converted to yuv420p as x264's input is, PSNR-YUV420 against the source's planes.
x264 medium intra (keyint 1) codes the same frame at several crf values, and the BD-rate
is reported. The defaults are the best settings measured so far; the fit runs on --device
(cuda when one is lent), the coding and scoring on the CPU.

    python bench/latent_intra.py --clips carphone tree --frame 10 --out /tmp/latent
    python bench/latent_intra.py --clips megamind --lambdas 1e-4 3e-5 1e-5 --device cuda --out /tmp/m

Nothing here is part of the codec or its format yet; see docs/experiments.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from latent_model import LatentFrame  # noqa: E402

from actinr_codec.media.videoio import read_video  # noqa: E402
from actinr_codec.metrics import psnr  # noqa: E402
from actinr_codec.native.latents import decode_grids  # noqa: E402
from actinr_codec.native.synthesis import Synthesis  # noqa: E402
from actinr_codec.native.synthesis import render as render_latents  # noqa: E402
from bitstream.latents import ContextModel, encode_grids, pack_ranges  # noqa: E402
from evaluation.baselines import code, codec_settings  # noqa: E402
from evaluation.bdrate import bd_delta  # noqa: E402
from evaluation.quality import psnr_yuv420, yuv420_planes  # noqa: E402

CLIPS = Path(__file__).resolve().parents[2] / "shared" / "clips"
# RGB in [0, 1] to Y, Cb, Cr (BT.601), and the 6:1:1 weights of PSNR-YUV420.
YCBCR = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5],
                      [0.5, -0.418688, -0.081312]])
PLANE_WEIGHTS = torch.tensor([6.0, 1.0, 1.0]) / 8


def to_float(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).float() / 255


def distortion(rgb: torch.Tensor, target: torch.Tensor, chroma: str = "444",
               frame_weights: torch.Tensor | None = None) -> torch.Tensor:
    """6:1:1-weighted squared error of Y, Cb and Cr, frames (..., H, W, 3); with chroma
    "420", Cb and Cr are compared as 2x2 means, the grid PSNR-YUV420 scores them on.
    frame_weights (N,) scale each of N frames' squared errors."""
    ycbcr, weights = YCBCR.to(rgb), PLANE_WEIGHTS.to(rgb)
    err = (rgb - target) @ ycbcr.T
    if frame_weights is not None:
        # Errors scaled by the root: squares, and 2x2 means of chroma, scale by the weight.
        err = err * frame_weights.sqrt().view(-1, 1, 1, 1)
    if chroma == "444":
        return ((err ** 2).reshape(-1, 3).mean(dim=0) * weights).sum()
    planes = err.reshape(-1, *err.shape[-3:]).permute(0, 3, 1, 2)  # (N, 3, H, W)
    chroma_mse = (F.avg_pool2d(planes[:, 1:], 2, ceil_mode=True) ** 2).mean(dim=(0, 2, 3))
    return weights[0] * (planes[:, 0] ** 2).mean() + (chroma_mse * weights[1:]).sum()


def fit(model: LatentFrame, target: torch.Tensor, lam: float, iters: int, args) -> int:
    """Fit the model's latents and networks to the target, (H, W, 3) or (frames, H, W, 3);
    the rate is priced per pixel of the target. Returns the step whose state the model
    holds at the end (the last, or with keep_best the best one)."""
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
        loss = (distortion(model.rgb(seen), target, args.chroma, model.frame_weights)
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
                cost = float(distortion(model.rgb(rounded), target, args.chroma,
                                            model.frame_weights)
                             + lam * (model.bits(rounded) + model.side_bits()) / pixels)
            if cost < best[0]:
                best = (cost, copy.deepcopy(model.state_dict()), it + 1)
    if best[1] is not None:
        model.load_state_dict(best[1])
    return best[2]


@torch.no_grad()
def quantize_networks(model: LatentFrame, target: torch.Tensor, lam: float, chroma: str,
                      tensor_steps: bool = False, reused: tuple[str, ...] = ()
                      ) -> tuple[float, dict[str, object]]:
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
                                 chroma)

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
                  target: torch.Tensor, lam: float, chroma: str) -> tuple[float, float]:
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
    return (float(distortion(model.rgb(latents), target, chroma, model.frame_weights))
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


def range_code(model: LatentFrame, latents: list[torch.Tensor], step: float
               ) -> tuple[int, float]:
    """The latents range-coded under the fixed-point context model, decoded back and
    checked: their size in bits with what a file says of each grid beside the payload
    (its symbol range; the shapes follow from the frame's), and the decode's seconds."""
    coder = context_model(model, step)
    grids, references = model.coded_grids(latents)
    payload = encode_grids(grids, coder, references)
    start = time.perf_counter()
    decoded = decode_grids(payload, [(g.shape, int(g.min()), int(g.max())) for g in grids],
                           coder, references)
    decode_s = time.perf_counter() - start
    if not all(np.array_equal(a, b) for a, b in zip(decoded, grids)):
        raise AssertionError("latents did not decode to what was coded")
    ranges = pack_ranges([(int(g.min()), int(g.max())) for g in grids])
    return 8 * (len(payload) + len(ranges)), decode_s


@torch.no_grad()
def render(model: LatentFrame, latents: list[torch.Tensor]) -> np.ndarray:
    """The model's frames from rounded latents, as 8-bit RGB in the model's shape."""
    rgb = (model.rgb(latents).clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
    return rgb.reshape(-1, *model.size, 3)


def native_render_s(model: LatentFrame, latents: list[torch.Tensor]) -> float | None:
    """Seconds the C renderer takes for one frame of the model (median of 5), checked
    against PyTorch's render; None for models it does not cover (a GOP's warps, learned
    upsampling)."""
    if type(model) is not LatentFrame or model.upsampling is not None:
        return None
    layers = tuple((m.weight.detach().numpy(), m.bias.detach().numpy())
                   for m in model.synthesis if isinstance(m, nn.Linear))
    refine = tuple((c.weight.detach().numpy(), c.bias.detach().numpy())
                   for c in model.refine.convs)
    grids = [y[0, 0].numpy() for y in latents]
    net = Synthesis(layers, refine)
    seconds = []
    for _ in range(5):
        start = time.perf_counter()
        rgb = render_latents(grids, net)
        seconds.append(time.perf_counter() - start)
    with torch.no_grad():
        want = model.rgb(latents).numpy()
    if not np.allclose(rgb, want, atol=1e-3):
        raise AssertionError("the C renderer disagrees with the model")
    return round(float(np.median(seconds)), 4)


def yuv420_psnr(frames: np.ndarray, decoded: np.ndarray) -> float:
    """Mean PSNR-YUV420 over frames, (N, H, W, 3) uint8 each."""
    return float(np.mean([psnr_yuv420(yuv420_planes(f), yuv420_planes(d))
                          for f, d in zip(frames, decoded)]))


def latent_point(frames: np.ndarray, model: LatentFrame, lam: float, args) -> dict:
    """Fit, quantize and score a model of frames, (N, H, W, 3) uint8; PSNRs are the
    frames' means and the rate is counted over all of them."""
    kept_step, fit_s = fit_frames(frames, model, lam, args)
    return scored_point(frames, model, lam, args, kept_step, fit_s)


def fit_frames(frames: np.ndarray, model: LatentFrame, lam: float, args) -> tuple[int, float]:
    """Fit a model of frames, (N, H, W, 3) uint8, on --device, leaving it on the CPU;
    returns the step it kept and the fit's seconds."""
    target = to_float(frames).reshape(model.shape)
    start = time.perf_counter()
    # The fit runs on --device; quantization, coding and scoring on the CPU, as a decoder.
    device = torch.device(args.device)
    model.floor = 2.0 ** -args.floor_bits
    model.to(device)
    kept_step = fit(model, target.to(device), lam, args.iters, args)
    model.cpu()
    return kept_step, time.perf_counter() - start


def scored_point(frames: np.ndarray, model: LatentFrame, lam: float, args, kept_step: int,
                 fit_s: float) -> dict:
    """Quantize and score a fitted model of frames; PSNRs are the frames' means and the
    rate is counted over all of them."""
    target = to_float(frames).reshape(model.shape)
    with torch.no_grad():
        latents, _ = model.coded_latents("round")
        latent_bits = float(model.bits(latents))
    # The same with the networks still in float: what their quantization costs in PSNR.
    unquantized = yuv420_psnr(frames, render(model, latents))
    net_bits, steps = quantize_networks(model, target, lam, args.chroma, args.tensor_steps,
                                        args.reused)
    decoded = render(model, latents)
    pixels = frames[..., 0].size
    coded_bits, decode_s = range_code(model, latents, steps["arm"])
    return {
        "codec": "latent", "lambda": lam, "bpp": (coded_bits + net_bits) / pixels,
        "coded_latent_bpp": coded_bits / pixels, "latent_decode_s": round(decode_s, 2),
        "fixed_point_overhead": coded_bits / latent_bits - 1,
        "latent_bpp": latent_bits / pixels, "network_bpp": net_bits / pixels,
        "psnr_yuv420": yuv420_psnr(frames, decoded),
        "frame_psnr_yuv420": [yuv420_psnr(f[None], d[None]) for f, d in zip(frames, decoded)],
        "psnr_yuv420_float_networks": unquantized,
        "psnr_rgb": float(np.mean([psnr(to_float(d), to_float(f))
                                   for f, d in zip(frames, decoded)])),
        "fit_s": round(fit_s, 1), "kept_step": kept_step, "network_steps": steps,
        "native_render_s": native_render_s(model, latents),
    }


def save_model(path: Path, model: LatentFrame, build: dict) -> None:
    """Keep a fitted model (its networks at their coded steps) and what rebuilds it, so
    that the coding layer can be studied on it without fitting again."""
    torch.save({"build": build, "state": model.state_dict()}, path)


def x264_point(frame: np.ndarray, crf: int) -> dict:
    h, w, _ = frame.shape
    size, decoded, _, _, planes = code(frame[None], codec_settings("x264", crf, keyint=1),
                                       Fraction(25))
    return {"codec": "x264", "crf": crf, "bpp": size * 8 / (h * w),
            "psnr_yuv420": psnr_yuv420(yuv420_planes(frame), planes[0]),
            "psnr_rgb": psnr(to_float(decoded[0]), to_float(frame))}


def cropped(frames: np.ndarray, box: list[int] | None) -> np.ndarray:
    """Frames (N, H, W, 3) cut to the window box = (x, y, width, height), if one is given."""
    if box is None:
        return frames
    x, y, w, h = box
    return np.ascontiguousarray(frames[:, y:y + h, x:x + w])


def add_fit_arguments(ap: argparse.ArgumentParser) -> None:
    """The model's size and the fit's schedule, and the window coded, shared with the
    GOP probe."""
    ap.add_argument("--crop", type=int, nargs=4, metavar=("X", "Y", "W", "H"),
                    help="code only this window of the frames (a cheaper probe of a big clip)")
    # The defaults are the best settings measured so far (docs/experiments.md, "sixth
    # probe"); the first probes' were 3000 steps, 16 -> 16 -> 3 and one 3x3, a context
    # network 16 wide, noise, rates 1e-2, no per-tensor steps and no kept state.
    ap.add_argument("--iters", type=int, default=10000)
    ap.add_argument("--levels", type=int, default=7)
    ap.add_argument("--hidden", type=int, default=40, help="the synthesis' width")
    ap.add_argument("--depth", type=int, default=1, help="the synthesis' hidden layers")
    ap.add_argument("--refine-layers", type=int, default=2,
                    help="residual 3x3 convolutions after the synthesis")
    ap.add_argument("--tensor-steps", action=argparse.BooleanOptionalAction, default=True,
                    help="a quantization step per weight and bias where it pays")
    ap.add_argument("--learned-upsampling", action="store_true",
                    help="2x upsampling steps with fitted kernels instead of bicubic")
    ap.add_argument("--arm-hidden", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--latent-lr", type=float, default=3e-2)
    ap.add_argument("--quantizer", choices=("noise", "soft"), default="soft")
    ap.add_argument("--noise-share", type=float, default=0.7)
    ap.add_argument("--ste-lr-scale", type=float, default=0.01,
                    help="learning rates in the straight-through phase, as a share of the "
                         "schedule's")
    ap.add_argument("--keep-best", action=argparse.BooleanOptionalAction, default=True,
                    help="return the fit's best state under true rounding, checked 100 times")
    ap.add_argument("--device", default="cpu",
                    help="where the fit runs (cuda when lent); coding and scoring stay on the CPU")
    ap.add_argument("--chroma", choices=("444", "420"), default="444",
                    help="fit Cb and Cr at full resolution, or as the 2x2 means yuv420p keeps")
    ap.add_argument("--floor-bits", type=int, default=24,
                    help="the most bits the rate term prices a latent at: the coder's tables "
                         "go to 24 (probes before the eighth priced at most 16)")
    ap.add_argument("--save", action="store_true",
                    help="keep every fitted model in --out (its state and what rebuilds it)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", nargs="+", default=["carphone", "city", "megamind", "tree"])
    ap.add_argument("--frame", type=int, default=10)
    ap.add_argument("--lambdas", type=float, nargs="+", default=[3e-3, 1e-3, 3e-4, 1e-4])
    ap.add_argument("--crfs", type=int, nargs="+", default=[17, 22, 27, 32, 37])
    add_fit_arguments(ap)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.reused = ()
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"args": {k: str(v) for k, v in vars(args).items()}, "clips": {}}
    for name in args.clips:
        frame = read_video(CLIPS / f"{name}.mkv", start=args.frame, count=1)[0][0]
        frame = cropped(frame[None], args.crop)[0]
        points = [x264_point(frame, crf) for crf in args.crfs]
        for lam in args.lambdas:
            torch.manual_seed(0)
            h, w, _ = frame.shape
            build = dict(height=h, width=w, levels=args.levels, hidden=args.hidden,
                         arm_hidden=args.arm_hidden, depth=args.depth,
                         refine_layers=args.refine_layers,
                         learned_upsampling=args.learned_upsampling)
            model = LatentFrame(**build)
            points.append(latent_point(frame[None], model, lam, args))
            if args.save:
                save_model(args.out / f"{name}_{lam:g}.pt", model, build)
            p = points[-1]
            print(f"{name} lambda {lam:g}: {p['bpp']:.3f} bpp ({p['network_bpp']:.3f} networks) "
                  f"{p['psnr_yuv420']:.2f} dB YUV420, {p['psnr_rgb']:.2f} dB RGB, "
                  f"{p['fit_s']} s, state of step {p['kept_step']}", file=sys.stderr, flush=True)
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
