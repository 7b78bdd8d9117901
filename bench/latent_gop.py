"""Probe: latent grids for a group of pictures, with networks shared by its frames.

The single-frame probe (`latent_intra.py`) pays for its networks in every frame and codes
every frame's latents as if it were alone. ActINR's way is a model per GOP: the synthesis
and the context model are fitted to all the GOP's frames and coded once, each frame keeps
its own latent pyramid, and a small time-conditioned bias network gives each frame its
own biases in the synthesis (ActINR's bias modulation). The context model may also read
the previous frame's latents around the same place (a 3x3 window of the same grid, and a
flag saying whether there is a previous frame), the way C3 conditions on the frame
before. And only every N-th frame may keep latents, the frames between interpolating them
in time (a 3D grid coarse in t, which is also what lets a decoder ask for any time), or
sample the keys' latents displaced by a coarse motion field of their own (+warp), to
which they may add a latent pyramid of their own, a correction mostly zero, before the
synthesis (+res) or after it as pixels (+pres, as Cool-chic's video codes a residual
after motion); a later key may hold only a residual over the key before moved by a field
of its own (+kres). Or prediction may happen on decoded pictures, as a classic codec's
does (+px): a later key is the key before as decoded, moved by its field, plus pixels
from a residual pyramid (a P frame), and a frame between keys blends the keys' pictures
moved by its fields, plus its own correction (a B frame). A GOP may also take an earlier
fit's networks as coded (--networks), and its first key may read an earlier GOP's last
key as context (--key-reference) or be that key itself (--anchor: the GOP starts on the
frame the earlier one ended on), as parts of a scene coded as one chain. This probe
measures what each of these buys over the same frames coded one at a time, and x264
medium at its default keyint on the same frames, all scored as whole clips are (mean
PSNR-YUV420 over the frames, bits over all of them).

    python bench/latent_gop.py --clip carphone --frames 8 --out /tmp/gop

The model itself is latent_gop_model.py. Nothing here is part of the codec or its format
yet; see docs/experiments.md.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from latent_gop_model import FLOW_CELL, MOTION_PREDICTOR, LatentGOP, truncated  # noqa: E402
from latent_intra import CLIPS, add_fit_arguments, cropped, fit_frames, render, save_model, scored_point  # noqa: E402
from motion_search import block_search  # noqa: E402

from actinr_codec.media.videoio import read_video  # noqa: E402
from actinr_codec.model.latents import LatentFrame  # noqa: E402
from evaluation.baselines import code, codec_settings  # noqa: E402
from evaluation.bdrate import bd_delta  # noqa: E402
from evaluation.quality import BT601, psnr_yuv420, yuv420_planes  # noqa: E402

# Block search (+me): how far it looks, in pixels, and what it charges a block's mean
# squared error (8-bit luma) per pixel of displacement, so that flat blocks stay still.
SEARCH_RADIUS = 16
SEARCH_PENALTY = 0.5


@torch.no_grad()
def search_fields(model: LatentGOP, frames: np.ndarray, keys_only: bool = False) -> None:
    """Start every field where block search (motion_search.py) puts each cell in the
    picture it warps: a key's in the key before, a frame between's in each of its two
    references. An anchored GOP searches its anchor as decoded; the other references
    are the source frames, which an encoder has before it has coded them. With
    keys_only, the keys' fields alone start there."""
    if model.crossing or model.linear_motion:
        raise ValueError("+me starts a frame's own two fields: not with +cross or +lin")
    # The search compares luma, where most of the detail is.
    luma = BT601[0].numpy().astype(np.float32)
    pictures = list(frames.astype(np.float32) @ luma)
    if model.uncoded and model.pixel:
        pictures[0] = (model.anchor_picture * 255).round().numpy() @ luma
    h, w = model.size
    # Pixels to grid_sample's units.
    scale = np.array([2 / w, 2 / h], dtype=np.float32)[:, None, None]

    def search(source: int, target: int, cells: tuple[int, int]) -> torch.Tensor:
        return torch.from_numpy(scale * block_search(pictures[source], pictures[target], cells,
                                                     SEARCH_RADIUS, SEARCH_PENALTY))

    if model.key_flow is not None:
        for k in range(1, len(model.keys)):
            model.key_flow[k - 1] = search(model.keys[k - 1], model.keys[k],
                                           tuple(model.key_flow.shape[-2:]))
    if model.flow is not None and not keys_only:
        field = model.flow[0]
        for i, f in enumerate(model.between):
            for r, x in enumerate(model.pair_of[f]):
                field[i, r] = search(x, f, tuple(field.shape[-2:]))


@torch.no_grad()
def reuse_networks(model: LatentGOP, path: Path, names: tuple[str, ...]) -> None:
    """Take the named networks, as coded, from a fit saved with --save (of a GOP of the
    same shape before this one): a scene's later GOPs then fit only their latents and
    motion, and pay nothing for networks a decoder already holds. Names the model does
    not use (an anchored +px GOP draws no picture) are passed over."""
    saved = torch.load(path, weights_only=True)["state"]
    nets = model.networks()
    for name in (n for n in names if n in nets):
        prefix = _prefix(model, nets[name])
        for key, value in nets[name].state_dict().items():
            value.copy_(saved[prefix + key])


def _prefix(model: LatentGOP, net: nn.Module) -> str:
    """Where net's state sits in the model's state dict."""
    return next(f"{name}." for name, module in model.named_modules() if module is net)


def load_fit(path: Path) -> LatentFrame:
    """A model saved with --save (a GOP's or a single frame's), as it was coded."""
    saved = torch.load(path, weights_only=True)
    build = saved["build"]
    model = LatentGOP(**build) if "frames" in build else LatentFrame(**build)
    state = saved["state"]
    chained = sorted((k for k in state if k.startswith("first_reference.")),
                     key=lambda k: int(k.rsplit(".", 1)[1]))
    if chained:
        model.set_first_reference([state[k] for k in chained])
    model.load_state_dict(state)
    return model


@torch.no_grad()
def start_from(model: LatentGOP, path: Path) -> None:
    """Start from a fit saved with --save of these keys (a fit of the keys alone, --only,
    or of the whole window with +bw0): every parameter both hold alike (the keys'
    latents, their fields, the networks), the keys' pictures then held as they are."""
    saved = load_fit(path).state_dict()
    model.load_state_dict({name: saved[name] if name in saved and saved[name].shape == value.shape
                           else value for name, value in model.state_dict().items()})
    model.freeze_keys()


def last_frame(path: Path) -> np.ndarray:
    """The last frame a GOP fit saved with --save decodes to, (H, W, 3) uint8."""
    model = load_fit(path)
    latents, _ = model.coded_latents("round")
    return render(model, latents)[-1]


def last_key(path: Path) -> list[torch.Tensor]:
    """The last key's latents, rounded as coded, of a GOP fit saved with --save."""
    model = load_fit(path)
    return [torch.round(y.detach())
            for y in model.owner_latents(list(model.latents), len(model.keys) - 1)]


@torch.no_grad()
def owner_bpp(model: LatentGOP, pixels: int) -> dict[str, list[float]]:
    """Each key's and each correction's latents at their ideal code length, in bits per
    pixel of one frame: where a GOP's latent bits go."""
    latents, _ = model.coded_latents("round")
    per_latent = model.latent_bits(latents)
    sizes = [y.numel() for y in latents]
    per_grid = [float(b.sum()) for b in per_latent.split(sizes)]
    owners = [sum(per_grid[k:k + model.levels]) / pixels
              for k in range(0, len(per_grid), model.levels)]
    return {"keys": [round(b, 4) for b in owners[:len(model.keys)]],
            "corrections": [round(b, 4) for b in owners[len(model.keys):]]}


def bd_against(anchor: list[dict], points: list[dict]) -> dict:
    """BD-rate and BD-PSNR (PSNR-YUV420) of points against an anchor's, each a dict with
    bpp and psnr_yuv420 (bd_delta's warning for fewer than two)."""
    return bd_delta([p["bpp"] for p in anchor], [p["psnr_yuv420"] for p in anchor],
                    [p["bpp"] for p in points], [p["psnr_yuv420"] for p in points])


def gop_point(frames: np.ndarray, crf: int, codec: str = "x264") -> dict:
    """A baseline (x264 or x265 medium, default keyint, yuv420p) on frames (N, H, W, 3)."""
    n, h, w, _ = frames.shape
    size, _, _, _, planes = code(frames, codec_settings(codec, crf), Fraction(25))
    return {"codec": codec, "crf": crf, "bpp": size * 8 / (n * h * w),
            "psnr_yuv420": float(np.mean([psnr_yuv420(yuv420_planes(f), p)
                                          for f, p in zip(frames, planes)]))}


def gop_build(variant: str, args, frames: int, coded: int, h: int, w: int) -> dict:
    """What builds a LatentGOP of the named variant (main's --variants) for frames of
    h x w, coded of them coded (the rest lookahead), with the fit's architecture."""
    keys = re.search(r"keys(\d+)", variant)
    weight = re.search(r"\+kw([\d.]+)", variant)
    between = re.search(r"\+bw([\d.]+)", variant)
    cell = re.search(r"\+cell(\d+)", variant)
    key_cell = re.search(r"\+kcell(\d+)", variant)
    fine_cell = re.search(r"\+fine(\d+)", variant)
    residual = re.search(r"\+(p?)res(ref)?", variant)
    field_step = re.search(r"\+fq(\d*)", variant)
    field_lr = re.search(r"\+flr([\d.]+)", variant)
    return dict(frames=frames, coded=coded, height=h, width=w, levels=args.levels,
                hidden=args.hidden, arm_hidden=args.arm_hidden, temporal="temporal" in variant,
                biases="biases" in variant, key_every=int(keys[1]) if keys else 1,
                warp="warp" in variant,
                residual=residual and ("pixel" if residual[1] else "latent"),
                residual_reference=bool(residual and residual[2]),
                key_warp="kres" in variant, flow_rate="+fr" in variant,
                key_context="kctx" in variant, anchored=bool(args.anchor),
                pixel="+px" in variant, linear_motion="+lin" in variant,
                motion_coded="+mc" in variant, crossing="+cross" in variant,
                key_weight=float(weight[1]) if weight else 1.0, bicubic="+bic" in variant,
                between_weight=float(between[1]) if between else 1.0,
                flow_cell=int(cell[1]) if cell else FLOW_CELL,
                key_cell=int(key_cell[1]) if key_cell else None,
                fine_cell=int(fine_cell[1]) if fine_cell else None,
                hierarchical="+hier" in variant, spatial_head="+ph3" in variant,
                block_motion="+blk" in variant,
                key_block_motion="+kblk" in variant,
                dense_motion="+dm" in variant, conditional="+cond" in variant,
                prediction_context="+pctx" in variant,
                motion_predictor="spatial" if "+mcs" in variant else MOTION_PREDICTOR,
                field_step=2.0 ** -int(field_step[1] or 9) if field_step else None,
                field_lr=float(field_lr[1]) if field_lr else None,
                depth=args.depth, refine_layers=args.refine_layers,
                learned_upsampling=args.learned_upsampling)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default="carphone")
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--variants", nargs="+", default=["shared", "temporal", "temporal+biases"],
                    help="shared: networks shared, latents coded alone; temporal: the context "
                         "model reads the previous frame; +biases: per-frame biases; +keysN: "
                         "latents on every N-th frame, interpolated between; +warp: the "
                         "frames between warp the keys' latents by a coarse field each; "
                         "+res: and add latents of their own (with +warp), +pres: the same "
                         "added as pixels; +resref, +presref: whose context reads the "
                         "previous frame's (with temporal); +kres: a key after the first "
                         "is the key before's latents moved by a field of its own plus a "
                         "residual; +kctx: a key after the first is coded whole, the key "
                         "before moved by a field of its own as its context; +px (with "
                         "+warp and +pres): prediction on decoded pictures, a later key "
                         "the key before moved plus a residual, the frames between the "
                         "keys' pictures moved and blended plus their corrections; +lin "
                         "(with +px or +kctx): the frames between start from the motion "
                         "the key's field implies at their time, their fields holding "
                         "what departs from it; +fr: the fit prices the motion fields; "
                         "+mc: fields coded as residuals of a prediction from values "
                         "coded before them, the fit pricing those (with +fr); +cross "
                         "(with +warp): one field a frame between keys, the motion across "
                         "their interval, shared out by the frame's place in time; +kwW: the "
                         "keys' errors weigh W times a frame between's in the fit; +bic: warps "
                         "read between pixels with a cubic kernel, not bilinearly; +cellN: "
                         "a motion vector per N x N pixels (default 32); +kcellN: the same for "
                         "the keys' fields alone; +fineN: a second grid of vectors per N x N "
                         "pixels added to the frames between's fields, priced as they are; "
                         "+hier (with +px): a "
                         "frame between is predicted from the nearest frames coded before "
                         "it, the middle ones first; +ph3 (with +px): the pixel head's last "
                         "layer reads a 3x3 window; +blk: each field's vector moves its whole "
                         "block (cell), not a bilinear blend of the vectors around; +me: "
                         "the fields start where block search puts each cell, not at zero; "
                         "+kblk, +kme: the same for the keys' fields alone; +bwW: the "
                         "frames between's errors weigh W (0: the keys fitted alone); "
                         "+dm (with +px): the pixel head also draws "
                         "a displacement per pixel, added to the coarse fields; +cond (with "
                         "+px): the pixel head also reads the prediction it corrects; +mcs "
                         "(with +mc): the fit prices the fields' spatial prediction residuals; "
                         "+pctx (with +px, temporal): a residual's context model reads how "
                         "busy its prediction is there; +fqN: every field fitted on a step "
                         "of 2**-N (+fq: 2**-9), straight-through; +flrX: the fields fitted "
                         "at a learning rate of X pixels a step")
    ap.add_argument("--lambdas", type=float, nargs="+", default=[3e-3, 1e-3, 3e-4])
    ap.add_argument("--crfs", type=int, nargs="+", default=[22, 27, 32, 37])
    add_fit_arguments(ap)
    ap.add_argument("--networks", type=Path,
                    help="a fit saved with --save whose networks (--reuse) this GOP takes as "
                         "they were coded, instead of fitting and coding its own")
    ap.add_argument("--reuse", nargs="+", dest="reused",
                    default=["synthesis", "refine", "arm", "residual_head", "bias_net"],
                    help="the networks taken from --networks")
    ap.add_argument("--start-networks", type=Path,
                    help="a fit saved with --save whose context network and pixel head "
                         "this GOP starts from, fitting and coding them as its own: a "
                         "random start can leave the pixel head reading no full-size level")
    ap.add_argument("--only", type=int, nargs="+",
                    help="fit only these frames of the window (offsets from --start, the "
                         "first 0): its keys alone, as a chain of P frames, for --start-fit")
    ap.add_argument("--start-fit", type=Path,
                    help="a fit saved with --save of this window's keys alone (--only, "
                         "or +bw0) whose state this one starts from, its keys' pictures "
                         "held as they are: the frames between fitted on coded keys")
    ap.add_argument("--key-reference", type=Path,
                    help="a fit saved with --save (of the GOP before this one) whose last key "
                         "is the context of this GOP's first key (with temporal)")
    ap.add_argument("--anchor", type=Path,
                    help="a fit saved with --save (of the GOP before this one, ending on "
                         "--start) whose last key, as coded, is this GOP's first key: the "
                         "GOP's first frame is then that GOP's, and only the others are "
                         "scored and priced (x264 too codes only them)")
    ap.add_argument("--hold-head", type=int, default=0, metavar="STEPS",
                    help="hold the pixel head's first layer as it started for the fit's "
                         "first STEPS steps, so that the latents learn to draw through "
                         "every level before the head may drop one (it kept the level "
                         "and did not pay on carphone)")
    ap.add_argument("--seed", type=int, default=0,
                    help="the networks' initial values and the fit's noise: fits differing "
                         "only here say how far apart two fits of one variant land")
    ap.add_argument("--lookahead", type=int, default=0,
                    help="frames after the GOP fitted with it but not coded, keys placed on "
                         "them as the next GOP will: the last key is fitted as the next "
                         "GOP's reference it will be")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.reused = tuple(args.reused) if args.networks else ()
    args.out.mkdir(parents=True, exist_ok=True)
    seen = cropped(read_video(CLIPS / f"{args.clip}.mkv", start=args.start,
                              count=args.frames + args.lookahead)[0], args.crop)
    if args.only:
        if args.lookahead or args.only[0] != 0:
            raise SystemExit("--only starts at 0 and takes no --lookahead")
        seen = seen[args.only]
    frames = seen[:args.frames]
    n, h, w, _ = frames.shape
    scored = frames[1:] if args.anchor else frames
    anchor = [gop_point(scored, crf) for crf in args.crfs]
    results = {"args": {k: str(v) for k, v in vars(args).items()}, "x264": anchor,
               "variants": {}}
    for variant in args.variants:
        points = []
        for lam in args.lambdas:
            torch.manual_seed(args.seed)
            build = gop_build(variant, args, len(seen), n, h, w)
            model = LatentGOP(**build)
            model.hold_steps = args.hold_head
            if args.lookahead and not model.pixel:
                # The frame bias reads a frame's time over the GOP's length, so cutting a
                # GOP that draws its frames would move them all; with +px only the first
                # key is drawn, at time 0.
                raise SystemExit("--lookahead needs +px")
            if args.networks:
                reuse_networks(model, args.networks, args.reused)
            if args.start_networks:
                reuse_networks(model, args.start_networks, ("arm", "pixel_head"))
            if args.key_reference:
                model.set_first_reference(last_key(args.key_reference))
            if args.anchor and model.pixel:
                model.set_anchor_picture(last_frame(args.anchor))
            elif args.anchor:
                model.set_anchor(last_key(args.anchor))
            if "+me" in variant or "+kme" in variant:
                search_fields(model, seen, keys_only="+kme" in variant)
            if args.start_fit:
                start_from(model, args.start_fit)
            kept_step, fit_s = fit_frames(seen, model, lam, args)
            if args.lookahead:
                model = truncated(model, build, n)
                build = dict(build, frames=n, coded=None)
            points.append(scored_point(frames, model, lam, args, kept_step, fit_s))
            if args.anchor:
                # The anchor frame is the earlier GOP's, scored there: this GOP's point
                # is its new frames', its bits over them.
                p = points[-1]
                p["bpp_all_frames"], p["psnr_yuv420_all_frames"] = p["bpp"], p["psnr_yuv420"]
                p["bpp"] *= n / (n - 1)
                p["psnr_yuv420"] = float(np.mean(p["frame_psnr_yuv420"][1:]))
            if args.save:
                save_model(args.out / f"{variant}_{lam:g}.pt", model, build)
            p = points[-1]
            p["owner_bpp"] = owner_bpp(model, h * w)
            print(f"{args.clip} {variant} lambda {lam:g}: {p['bpp']:.3f} bpp "
                  f"({p['network_bpp']:.3f} networks) {p['psnr_yuv420']:.2f} dB YUV420, "
                  f"{p['fit_s']} s", file=sys.stderr, flush=True)
        bd = bd_against(anchor, points)
        results["variants"][variant] = {"points": points, "bd_yuv420": bd}
        print(f"{args.clip} {variant}: BD-rate against x264 {bd['bd_rate']} % (PSNR-YUV420)",
              file=sys.stderr, flush=True)
        (args.out / "latent_gop.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
