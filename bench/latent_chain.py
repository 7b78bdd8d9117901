"""Probe: a scene coded as a chain of latent GOPs, scored as a whole clip against x264.

bench/latent_gop.py scores one GOP against x264 coding the same frames alone, so x264
pays an intra frame in every window; on a whole clip it pays one. This adds up a chain
of GOP fits (the first fitting its networks, the later ones taking them with --networks
and starting on the frame before ended on with --anchor): bits over all the chain's
frames, mean PSNR-YUV420 over them, against x264 medium at its default keyint on the same
frames, and on each GOP's window as the GOP probe scores it.

    python bench/latent_chain.py --clip carphone /tmp/gop1 /tmp/gop2 /tmp/gop3 --out chain.json

Each folder holds a latent_gop.json with one variant and one lambda. Nothing here is part
of the codec or its format yet; see docs/experiments.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from latent_gop import x264_gop_point  # noqa: E402
from latent_intra import CLIPS  # noqa: E402

from actinr_codec.media.videoio import read_video  # noqa: E402


def point_against(anchor: list[dict], bpp: float, psnr: float) -> float | None:
    """Percent more bits than x264's curve (interpolated in log rate) at the same
    PSNR-YUV420, or None outside its range."""
    curve = sorted((p["psnr_yuv420"], np.log(p["bpp"])) for p in anchor)
    quality, log_rate = zip(*curve)
    if not quality[0] <= psnr <= quality[-1]:
        return None
    return round(100 * (bpp / float(np.exp(np.interp(psnr, quality, log_rate))) - 1), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default="carphone")
    ap.add_argument("gops", type=Path, nargs="+", help="the GOP probe's output folders, in order")
    ap.add_argument("--crfs", type=int, nargs="+", default=[22, 27, 32, 37])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    gops, first, last, bits, quality = [], None, None, 0.0, 0.0
    for folder in args.gops:
        run = json.loads((folder / "latent_gop.json").read_text())
        (variant, result), = run["variants"].items()
        p, = result["points"]
        start, count = int(run["args"]["start"]), int(run["args"]["frames"])
        # An anchored GOP's first frame is the one before scored; its point is the rest's.
        new = count - 1 if run["args"].get("anchor", "None") != "None" else count
        first = start if first is None else first
        if start + count - new != (first if last is None else last):
            raise SystemExit(f"{folder}: frames {start}.. do not follow the chain's {last}")
        last = start + count
        bits += p["bpp"] * new
        quality += p["psnr_yuv420"] * new
        gops.append({"folder": str(folder), "variant": variant, "lambda": p["lambda"],
                     "frames": [last - new, last], "bpp": p["bpp"],
                     "psnr_yuv420": p["psnr_yuv420"],
                     "against_x264_window": point_against(run["x264"], p["bpp"],
                                                          p["psnr_yuv420"])})
    frames = read_video(CLIPS / f"{args.clip}.mkv", start=first, count=last - first)[0]
    anchor = [x264_gop_point(frames, crf) for crf in args.crfs]
    n = last - first
    chain = {"frames": [first, last], "bpp": bits / n, "psnr_yuv420": quality / n}
    chain["against_x264"] = point_against(anchor, chain["bpp"], chain["psnr_yuv420"])
    args.out.write_text(json.dumps({"clip": args.clip, "chain": chain, "gops": gops,
                                    "x264": anchor}, indent=1))
    print(f"{args.clip} frames {first}-{last - 1}: {chain['bpp']:.4f} bpp "
          f"{chain['psnr_yuv420']:.2f} dB, {chain['against_x264']} % against x264 "
          f"(windows: {[g['against_x264_window'] for g in gops]})")


if __name__ == "__main__":
    main()
