"""Probe: one predicted frame (a P frame) against x264's P frame from the same reference.

The chain's same-anchor score (latent_chain.py) found a GOP's inter coding 27-55 % dearer
than x264's, and its first P key the dearest part of it. This fits that part alone: a
two-frame anchored GOP of latent_gop.py's model (the reference picture as decoded, the
target frame predicted from it: the reference moved by the key's field plus the pixel
head's residual), at several lambdas, and x264 medium coding the same target after an
exact copy of the same reference picture. Both curves are over the target alone, so
their BD-rate is what the inter coding costs against x264's, whatever the reference is
worth, in a minute or two a point instead of a GOP's quarter hour.

The networks a GOP shares (context model, pixel head) are fitted here for one frame; the
point prices them at 1/--share of their bits, as a GOP of that many predicted frames
would share them (the fields and residual latents in full).

    python bench/latent_inter.py --clip carphone --reference /tmp/f0/carphone_0.0003.pt \\
        --reference-frame 0 --target 4 --out /tmp/inter

Nothing here is part of the codec or its format; see docs/experiments.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from latent_chain import point_against, same_anchor_curve  # noqa: E402
from latent_gop import bd_against, gop_build, last_frame, search_fields  # noqa: E402
from latent_gop_model import LatentGOP  # noqa: E402
from latent_intra import CLIPS, add_fit_arguments, fit_frames, scored_point  # noqa: E402

from actinr_codec.fitting.latents import coded_step  # noqa: E402
from actinr_codec.media.videoio import read_video  # noqa: E402
from evaluation.quality import psnr_yuv420, yuv420_planes  # noqa: E402

# The model of the keys4 chains (docs/experiments.md, fourteenth probe) for one P frame.
DEFAULT_VARIANT = "temporal+warp+px+fr+mc+kcell16+kme"


@torch.no_grad()
def field_bits(model: LatentGOP) -> float:
    """The key's field as coded, in bits: its values at the step quantization chose (a
    field is one tensor, one step, which costs 16 bits)."""
    step = coded_step(model.networks()["key_flow"])
    return model.network_bits("key_flow", [torch.round(model.key_flow / step)]) + 16


@torch.no_grad()
def prediction_psnr(model: LatentGOP, target: np.ndarray) -> float:
    """The target's PSNR-YUV420 from its prediction alone: the reference moved by the
    fitted field, no residual."""
    moved = model._moved(model.anchor_picture.permute(2, 0, 1)[None], model.key_flow[0], 0)
    picture = (moved[0].permute(1, 2, 0).clamp(0, 1) * 255 + 0.5).floor().byte().numpy()
    return psnr_yuv420(yuv420_planes(target), yuv420_planes(picture))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default="carphone")
    ap.add_argument("--reference", type=Path, required=True,
                    help="a fit saved with --save whose last frame, as decoded, is the "
                         "reference picture")
    ap.add_argument("--reference-frame", type=int, default=0,
                    help="the source frame that fit coded")
    ap.add_argument("--target", type=int, default=4, help="the source frame predicted")
    ap.add_argument("--variants", nargs="+", default=[DEFAULT_VARIANT],
                    help="latent_gop.py's variants (with +px)")
    ap.add_argument("--lambdas", type=float, nargs="+", default=[3e-3, 1e-3, 3e-4])
    ap.add_argument("--share", type=int, default=14,
                    help="predicted frames sharing the networks' bits")
    ap.add_argument("--seed", type=int, default=0)
    add_fit_arguments(ap)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    # latent_gop's build reads these: the GOP is anchored, and takes no network as coded.
    args.anchor, args.reused = args.reference, ()
    args.out.mkdir(parents=True, exist_ok=True)
    source = read_video(CLIPS / f"{args.clip}.mkv",
                        count=max(args.reference_frame, args.target) + 1)[0]
    frames = source[[args.reference_frame, args.target]]
    _, h, w, _ = frames.shape
    pixels = h * w
    reference = last_frame(args.reference)
    x264 = same_anchor_curve(reference, frames[1:])
    results = {"args": {k: str(v) for k, v in vars(args).items()},
               "reference_psnr_yuv420": psnr_yuv420(yuv420_planes(frames[0]),
                                                    yuv420_planes(reference)),
               "x264": x264, "variants": {}}
    for variant in args.variants:
        if "+px" not in variant:
            raise SystemExit(f"{variant}: a P frame needs +px")
        points = []
        for lam in args.lambdas:
            torch.manual_seed(args.seed)
            model = LatentGOP(**gop_build(variant, args, 2, 2, h, w))
            model.set_anchor_picture(reference)
            if "+me" in variant or "+kme" in variant:
                search_fields(model, frames, keys_only=True)
            kept_step, fit_s = fit_frames(frames, model, lam, args)
            p = scored_point(frames, model, lam, args, kept_step, fit_s)
            fields = field_bits(model)
            networks = p["network_bpp"] * 2 * pixels - fields
            latents = p["coded_latent_bpp"] * 2 * pixels
            point = {"lambda": lam, "bpp": (latents + fields + networks / args.share) / pixels,
                     "psnr_yuv420": p["frame_psnr_yuv420"][1],
                     "latent_bpp": latents / pixels, "field_bpp": fields / pixels,
                     "network_bpp": networks / pixels,
                     "prediction_psnr_yuv420": prediction_psnr(model, frames[1]),
                     "fit_s": p["fit_s"], "kept_step": kept_step}
            point["against_x264"] = point_against(x264, point["bpp"], point["psnr_yuv420"])
            points.append(point)
            print(f"{args.clip} {args.target} {variant} lambda {lam:g}: {point['bpp']:.3f} bpp "
                  f"(latents {point['latent_bpp']:.3f}, field {point['field_bpp']:.3f}, "
                  f"networks {point['network_bpp']:.3f}) {point['psnr_yuv420']:.2f} dB "
                  f"(prediction {point['prediction_psnr_yuv420']:.2f}), against x264 "
                  f"{point['against_x264']} %, {p['fit_s']} s", file=sys.stderr, flush=True)
        bd = bd_against(x264, points)
        results["variants"][variant] = {"points": points, "bd_yuv420": bd}
        print(f"{args.clip} {args.target} {variant}: BD-rate against x264's P frame {bd}",
              file=sys.stderr, flush=True)
        (args.out / "latent_inter.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
