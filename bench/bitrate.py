"""Benchmark of rate control: how close ``--bitrate`` lands on its target, whole clips.

    python bench/bitrate.py [--clips ../shared/clips/*.mkv] [--preset medium] [--out F]

Each clip is encoded at the rate x264 medium reaches at crf 23 on it (its default keyint,
yuv420p, bitrate from the real coded size over the clip's duration), and at half of it;
the JSON gives target, reached rate and its error, PSNR-RGB, encode seconds and which GOPs
were fitted again, with provenance.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import actinr_codec as actinr  # noqa: E402
from actinr_codec.media.videoio import read_video  # noqa: E402
from actinr_codec.process import kernel_cores  # noqa: E402
from evaluation.baselines import code, codec_settings  # noqa: E402
from evaluation.report import provenance  # noqa: E402

CLIPS = Path(__file__).resolve().parents[2] / "shared" / "clips"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=Path, nargs="+",
                    default=[CLIPS / f"{n}.mkv" for n in ("carphone", "tree", "city", "megamind")])
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.5])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    threads = kernel_cores("cpu")  # torch on one thread, the cores to the native kernel
    rows = []
    for clip in args.clips:
        video, info = read_video(clip)
        size = code(video, codec_settings("x264", 23), info.fps)[0]
        anchor = size * 8 * info.fps / len(video)
        for fraction in args.fractions:
            target = float(anchor * fraction)
            began = time.perf_counter()
            report = actinr.encode(clip, None, actinr.EncodeOptions(
                bitrate=target, preset=args.preset, threads=threads))
            row = {"clip": clip.stem, "frames": len(video), "target_bps": target,
                   "x264_crf23_bps": float(anchor), "fraction": fraction,
                   "reached_bps": report.bitrate, "error": report.bitrate / target - 1,
                   "bpp": report.bpp, "psnr_rgb_gop_mean": report.psnr,
                   "width": report.plan.settings.model.width,
                   "prices": [g.stats.rate_weight for g in report.gops],
                   "gop_bytes": [len(g.coded.chunk) for g in report.gops],
                   "seconds": time.perf_counter() - began}
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {"rows": rows, "provenance": provenance()}
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
