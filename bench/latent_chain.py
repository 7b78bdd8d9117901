"""Probe: a scene coded as a chain of latent GOPs, scored as a whole clip against x264.

bench/latent_gop.py scores one GOP against x264 coding the same frames alone, so x264
pays an intra frame in every window; on a whole clip it pays one. This adds up a chain
of fits (a GOP fitting its networks, or a first frame fitted alone by
bench/latent_intra.py, then GOPs starting on the frame before ended on with --anchor,
fitting networks of their own or taking them with --networks): bits over all the chain's
frames, mean PSNR-YUV420 over them, against x264 medium at its default keyint on the same
frames (x265 medium's points beside it), on each GOP's window as the GOP probe scores
it, and for each anchored GOP against x264 coding the same frames after the same anchor
picture (what the GOP's own coding costs, whatever its anchor is worth).

    python bench/latent_chain.py --clip carphone /tmp/gop1 /tmp/gop2 /tmp/gop3 --out chain.json
    python bench/latent_chain.py --curve chain1.json chain2.json chain3.json --out curve.json

The second form takes chains of the same frames at several lambdas as one curve: its
BD-rate (PSNR-YUV420) against x264 and x265 medium at their default keyint.

With --recode-fields, GOPs fitted before the eighteenth probe (their fields priced under
one integer table each) are scored with their fields as bitstream/fields.py codes them:
the same decoded pictures, the fields' bits recounted.

Each folder holds a latent_gop.json with one variant and one lambda, or (the first) a
latent_intra.json with one clip and one lambda. Nothing here is part of the codec or its
format yet; see docs/experiments.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from latent_gop import gop_point, last_frame  # noqa: E402
from latent_intra import CLIPS  # noqa: E402
from latent_motion import recoded_saving  # noqa: E402

from actinr_codec.media.videoio import read_video  # noqa: E402
from evaluation.baselines import codec_settings, decode, encode  # noqa: E402
from evaluation.bdrate import bd_delta  # noqa: E402
from evaluation.quality import frame_planes, psnr_yuv420, yuv420_planes  # noqa: E402

# x264's crfs for its curve given a GOP's own anchor: wide enough to hold every GOP's PSNR.
SAME_ANCHOR_CRFS = range(16, 44, 2)


def point_against(anchor: list[dict], bpp: float, psnr: float) -> float | None:
    """Percent more bits than x264's curve (interpolated in log rate) at the same
    PSNR-YUV420, or None outside its range."""
    curve = sorted((p["psnr_yuv420"], np.log(p["bpp"])) for p in anchor)
    quality, log_rate = zip(*curve)
    if not quality[0] <= psnr <= quality[-1]:
        return None
    return round(100 * (bpp / float(np.exp(np.interp(psnr, quality, log_rate))) - 1), 1)


def same_anchor(anchor: np.ndarray, frames: np.ndarray, bpp: float, psnr: float) -> float | None:
    """Percent more bits than x264 medium spends on frames (N, H, W, 3) after the same
    anchor picture, at the same mean PSNR-YUV420 (None outside its curve): what a GOP's
    own coding costs against x264's P and B frames, whatever its anchor is worth."""
    return point_against(same_anchor_curve(anchor, frames), bpp, psnr)


def same_anchor_curve(anchor: np.ndarray, frames: np.ndarray) -> list[dict]:
    """x264 medium's points (bpp, mean PSNR-YUV420) on frames (N, H, W, 3) coded after an
    anchor picture (H, W, 3): the anchor is x264's first frame, coded at QP 0 (62-66 dB
    from it on carphone: a copy), and its packet is not counted."""
    fps, n, (h, w) = Fraction(25), len(frames), frames.shape[1:3]
    both = np.concatenate([anchor[None], frames])
    curve = []
    for crf in SAME_ANCHOR_CRFS:
        settings = codec_settings("x264", crf)
        settings["options"] = {**settings["options"], "x264-params": "zones=0,0,q=0"}
        packets = encode(both, settings, fps)
        planes = [frame_planes(f) for f in decode(packets, settings, n + 1)[1:]]
        # The anchor's packet (the first, with the parameter sets) is left out.
        curve.append({"crf": crf, "bpp": 8 * sum(p.size for p in packets[1:]) / (n * h * w),
                      "psnr_yuv420": float(np.mean([psnr_yuv420(yuv420_planes(f), p)
                                                    for f, p in zip(frames, planes)]))})
    return curve


def _fit(folder: Path, clip: str) -> tuple[str, dict, dict, int, int, int]:
    """One fit of the chain: its variant, its point, its run (with the x264 points of
    its window), its first frame, its frames and how many of them it scores."""
    if (folder / "latent_intra.json").exists():
        run = json.loads((folder / "latent_intra.json").read_text())
        points = run["clips"][clip]["points"]
        p, = (q for q in points if q["codec"] == "latent")
        run["x264"] = [q for q in points if q["codec"] == "x264"]
        return "intra", p, run, int(run["args"]["frame"]), 1, 1
    run = json.loads((folder / "latent_gop.json").read_text())
    (variant, result), = run["variants"].items()
    p, = result["points"]
    start, count = int(run["args"]["start"]), int(run["args"]["frames"])
    # An anchored GOP's first frame is the one before scored; its point is the rest's.
    new = count - 1 if run["args"].get("anchor", "None") != "None" else count
    return variant, p, run, start, count, new


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default="carphone")
    ap.add_argument("fits", type=Path, nargs="+",
                    help="the fits' output folders, in order (with --curve, chain JSONs)")
    ap.add_argument("--curve", action="store_true",
                    help="score chains of the same frames (this script's JSONs) as one curve")
    ap.add_argument("--crfs", type=int, nargs="+", default=[22, 27, 32, 37])
    ap.add_argument("--recode-fields", action="store_true",
                    help="recount fields priced under a table each with the adaptive coder")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    result = (curve(args.fits) if args.curve
              else chain(args.clip, args.fits, args.crfs, args.recode_fields))
    args.out.write_text(json.dumps(result, indent=1))


def chain(clip: str, folders: list[Path], crfs: list[int], recode: bool = False) -> dict:
    """A chain of fits scored as one clip, with x264 and x265 on the same frames; with
    recode, GOPs' fields recounted under the adaptive coder (recoded_saving)."""
    gops, first, last, bits, quality = [], None, None, 0.0, 0.0
    h, w = read_video(CLIPS / f"{clip}.mkv", count=1)[0].shape[1:3]
    # GOPs that start on an earlier fit's picture, with that fit: scored once the
    # chain's frames are read.
    anchored = []
    for folder in folders:
        variant, p, run, start, count, new = _fit(folder, clip)
        first = start if first is None else first
        if start + count - new != (first if last is None else last):
            raise SystemExit(f"{folder}: frames {start}.. do not follow the chain's {last}")
        last = start + count
        if recode and variant != "intra":
            if "+mc" not in variant:
                raise SystemExit(f"{folder}: only fields coded with +mc were priced by table")
            pt, = folder.glob("*.pt")
            p = {**p, "bpp": p["bpp"] - recoded_saving(pt) / (new * h * w)}
        bits += p["bpp"] * new
        quality += p["psnr_yuv420"] * new
        gops.append({"folder": str(folder), "variant": variant, "lambda": p["lambda"],
                     "frames": [last - new, last], "bpp": p["bpp"],
                     "psnr_yuv420": p["psnr_yuv420"],
                     "against_x264_window": point_against(run["x264"], p["bpp"],
                                                          p["psnr_yuv420"])})
        if new < count:
            anchored.append((gops[-1], Path(run["args"]["anchor"])))
    frames = read_video(CLIPS / f"{clip}.mkv", start=first, count=last - first)[0]
    for gop, anchor in anchored:
        a, b = (f - first for f in gop["frames"])
        gop["against_x264_same_anchor"] = same_anchor(last_frame(anchor), frames[a:b],
                                                      gop["bpp"], gop["psnr_yuv420"])
    anchors = {codec: [gop_point(frames, crf, codec) for crf in crfs]
               for codec in ("x264", "x265")}
    n = last - first
    result = {"frames": [first, last], "bpp": bits / n, "psnr_yuv420": quality / n}
    result["against_x264"] = point_against(anchors["x264"], result["bpp"],
                                           result["psnr_yuv420"])
    print(f"{clip} frames {first}-{last - 1}: {result['bpp']:.4f} bpp "
          f"{result['psnr_yuv420']:.2f} dB, {result['against_x264']} % against x264 "
          f"(windows: {[g['against_x264_window'] for g in gops]}; given their anchors: "
          f"{[g.get('against_x264_same_anchor') for g in gops]})")
    return {"clip": clip, "chain": result, "gops": gops, **anchors}


def curve(paths: list[Path]) -> dict:
    """Chains of the same frames at several lambdas as one curve, BD-rated against the
    baselines of the first (x265 where it has them)."""
    runs = [json.loads(p.read_text()) for p in paths]
    if len({(r["clip"], tuple(r["chain"]["frames"])) for r in runs}) != 1:
        raise SystemExit("the chains do not cover the same frames of one clip")
    points = sorted((r["chain"] for r in runs), key=lambda c: c["bpp"])
    result = {"clip": runs[0]["clip"], "frames": points[0]["frames"], "points": points}
    for codec in ("x264", "x265"):
        anchor = runs[0].get(codec)
        if anchor:
            result[f"bd_yuv420_{codec}"] = bd_delta(
                [p["bpp"] for p in anchor], [p["psnr_yuv420"] for p in anchor],
                [p["bpp"] for p in points], [p["psnr_yuv420"] for p in points])
            print(f"{result['clip']}: BD-rate against {codec} "
                  f"{result[f'bd_yuv420_{codec}']['bd_rate']} % (PSNR-YUV420)")
    return result


if __name__ == "__main__":
    main()
