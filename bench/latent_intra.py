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
tensor in the codec's coder. The model is actinr_codec/model/latents.py, its fit
actinr_codec/fitting/latents.py.

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

The model and its fit are the codec's own (a picture GOP of format version 5,
`actinr encode --representation latent`); the probe adds the choices the codec does not
offer (learned upsampling, 4:2:0 chroma, other schedules, a fit started from the
previous frame's picture with --warm-steps) and x264 beside it; every point reports its
Y, Cb and Cr PSNRs beside PSNR-YUV420. See docs/experiments.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actinr_codec.fitting.latents import (  # noqa: E402
    LatentFitConfig,
    context_model,
    fit,
    quantize_networks,
)
from actinr_codec.media.videoio import read_video  # noqa: E402
from actinr_codec.metrics import psnr  # noqa: E402
from actinr_codec.model.latents import LatentFrame  # noqa: E402
from actinr_codec.native.latents import decode_grids  # noqa: E402
from actinr_codec.native.synthesis import Synthesis  # noqa: E402
from actinr_codec.native.synthesis import render as render_latents  # noqa: E402
from bitstream.latents import encode_grids, pack_ranges  # noqa: E402
from evaluation.baselines import code, codec_settings  # noqa: E402
from evaluation.bdrate import bd_delta  # noqa: E402
from evaluation.quality import plane_psnrs, psnr_yuv420, yuv420_planes  # noqa: E402

CLIPS = Path(__file__).resolve().parents[2] / "shared" / "clips"
def to_float(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).float() / 255


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


def yuv420_scores(reference: list, decoded: np.ndarray) -> tuple[list[float], list[float]]:
    """Each frame's PSNR-YUV420 and the mean PSNR of Y, Cb and Cr over the frames, for
    decoded frames (N, H, W, 3) uint8 against the source's yuv420p planes (converted once
    per point: the conversion is the scoring's dearest part)."""
    coded = [yuv420_planes(d) for d in decoded]
    planes = [plane_psnrs(r, c) for r, c in zip(reference, coded, strict=True)]
    return ([psnr_yuv420(r, c) for r, c in zip(reference, coded)],
            np.mean(planes, axis=0).round(3).tolist())


def latent_point(frames: np.ndarray, model: LatentFrame, lam: float, args) -> dict:
    """Fit, quantize and score a model of frames, (N, H, W, 3) uint8; PSNRs are the
    frames' means and the rate is counted over all of them."""
    kept_step, fit_s = fit_frames(frames, model, lam, args)
    return scored_point(frames, model, lam, args, kept_step, fit_s)


def warm_start(model: LatentFrame, previous: np.ndarray, lam: float, args) -> None:
    """Fit the model to the previous frame, (H, W, 3) uint8, as a picture of its own
    (--warm-steps from nothing) and leave it as a file holds that picture (networks on
    their coded steps, latents rounded): where a warm-started fit of the next frame
    begins, so that an encoder could start from the picture a decoder already has."""
    cold = argparse.Namespace(**{**vars(args), "iters": args.warm_steps})
    fit_frames(previous[None], model, lam, cold)
    target = to_float(previous[None]).reshape(model.shape)
    quantize_networks(model, target, lam, args.chroma, args.tensor_steps, args.reused,
                      args.planes)
    with torch.no_grad():
        for y in model.latents:
            y.round_()


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
    reference = [yuv420_planes(f) for f in frames]
    # The same with the networks still in float: what their quantization costs in PSNR.
    unquantized = float(np.mean(yuv420_scores(reference, render(model, latents))[0]))
    net_bits, steps = quantize_networks(model, target, lam, args.chroma, args.tensor_steps,
                                        args.reused, args.planes)
    decoded = render(model, latents)
    pixels = frames[..., 0].size
    coded_bits, decode_s = range_code(model, latents, steps["arm"])
    frame_psnrs, planes = yuv420_scores(reference, decoded)
    return {
        "codec": "latent", "lambda": lam, "bpp": (coded_bits + net_bits) / pixels,
        "coded_latent_bpp": coded_bits / pixels, "latent_decode_s": round(decode_s, 2),
        "fixed_point_overhead": coded_bits / latent_bits - 1,
        "latent_bpp": latent_bits / pixels, "network_bpp": net_bits / pixels,
        "psnr_yuv420": float(np.mean(frame_psnrs)), "frame_psnr_yuv420": frame_psnrs,
        "planes": planes,
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
    reference = yuv420_planes(frame)
    return {"codec": "x264", "crf": crf, "bpp": size * 8 / (h * w),
            "psnr_yuv420": psnr_yuv420(reference, planes[0]),
            "planes": np.round(plane_psnrs(reference, planes[0]), 3).tolist(),
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
    # The defaults are the codec's (LatentFitConfig, where their measurements are cited).
    d = LatentFitConfig()
    ap.add_argument("--iters", type=int, default=d.iters)
    ap.add_argument("--levels", type=int, default=d.levels)
    ap.add_argument("--hidden", type=int, default=d.hidden, help="the synthesis' width")
    ap.add_argument("--depth", type=int, default=d.depth, help="the synthesis' hidden layers")
    ap.add_argument("--refine-layers", type=int, default=d.refine_layers,
                    help="residual 3x3 convolutions after the synthesis")
    ap.add_argument("--tensor-steps", action=argparse.BooleanOptionalAction,
                    default=d.tensor_steps,
                    help="a quantization step per weight and bias where it pays")
    ap.add_argument("--learned-upsampling", action="store_true",
                    help="2x upsampling steps with fitted kernels instead of bicubic")
    ap.add_argument("--arm-hidden", type=int, default=d.arm_hidden)
    ap.add_argument("--lr", type=float, default=d.lr)
    ap.add_argument("--latent-lr", type=float, default=d.latent_lr)
    ap.add_argument("--quantizer", choices=("noise", "soft"), default=d.quantizer)
    ap.add_argument("--noise-share", type=float, default=d.noise_share)
    ap.add_argument("--ste-lr-scale", type=float, default=d.ste_lr_scale,
                    help="learning rates in the straight-through phase, as a share of the "
                         "schedule's")
    ap.add_argument("--keep-best", action=argparse.BooleanOptionalAction, default=d.keep_best,
                    help="return the fit's best state under true rounding, checked 100 times")
    ap.add_argument("--device", default="cpu",
                    help="where the fit runs (cuda when lent); coding and scoring stay on the CPU")
    ap.add_argument("--chroma", choices=("444", "420"), default=d.chroma,
                    help="fit Cb and Cr at full resolution, or as the 2x2 means yuv420p keeps")
    ap.add_argument("--planes", choices=("sum", "geometric"), default=d.planes,
                    help="the planes' squared errors summed 6:1:1, or their 6:1:1 geometric "
                         "mean (the mean of the planes' PSNRs, as PSNR-YUV420 takes it)")
    ap.add_argument("--floor-bits", type=int, default=d.floor_bits,
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
    ap.add_argument("--warm-steps", type=int, default=0,
                    help="start from the previous frame's picture, fitted in this many steps "
                         "(0: from nothing)")
    ap.add_argument("--warm-lr-scale", type=float, default=1.0,
                    help="the learning rates of a warm-started fit, as a share of --lr's")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.reused = ()
    scale = args.warm_lr_scale if args.warm_steps else 1.0
    warm_args = argparse.Namespace(**{**vars(args), "lr": args.lr * scale,
                                      "latent_lr": args.latent_lr * scale})
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"args": {k: str(v) for k, v in vars(args).items()}, "clips": {}}
    for name in args.clips:
        frame = read_video(CLIPS / f"{name}.mkv", start=args.frame, count=1)[0][0]
        frame = cropped(frame[None], args.crop)[0]
        points = [x264_point(frame, crf) for crf in args.crfs]
        if args.warm_steps:
            previous = read_video(CLIPS / f"{name}.mkv", start=args.frame - 1, count=1)[0][0]
            previous = cropped(previous[None], args.crop)[0]
        for lam in args.lambdas:
            torch.manual_seed(0)
            h, w, _ = frame.shape
            build = dict(height=h, width=w, levels=args.levels, hidden=args.hidden,
                         arm_hidden=args.arm_hidden, depth=args.depth,
                         refine_layers=args.refine_layers,
                         learned_upsampling=args.learned_upsampling)
            model = LatentFrame(**build)
            if args.warm_steps:
                warm_start(model, previous, lam, args)
            points.append(latent_point(frame[None], model, lam, warm_args))
            if args.save:
                save_model(args.out / f"{name}_{lam:g}.pt", model, build)
            p = points[-1]
            print(f"{name} lambda {lam:g}: {p['bpp']:.3f} bpp ({p['network_bpp']:.3f} networks) "
                  f"{p['psnr_yuv420']:.2f} dB YUV420 {p['planes']}, {p['psnr_rgb']:.2f} dB RGB, "
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
