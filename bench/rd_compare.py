"""BD-rate of one `actinr eval rd` run's actinr curve against another's, per clip.

    python bench/rd_compare.py BEFORE/rd.json AFTER/rd.json

Prints, for PSNR-RGB and PSNR-YUV, the Bjontegaard rate and PSNR deltas of AFTER's actinr
points against BEFORE's (negative rate: AFTER needs fewer bits), with both runs' commits,
and each run's points.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation.bdrate import bd_delta  # noqa: E402


def curve(run: dict, clip: str, metric: str) -> tuple[list[float], list[float]]:
    points = sorted((r["bpp"], r[metric]) for r in run["rows"]
                    if r["clip"] == clip and r["codec"] == "actinr")
    return [p[0] for p in points], [p[1] for p in points]


def main(before_path: str, after_path: str) -> None:
    before, after = (json.loads(Path(p).read_text()) for p in (before_path, after_path))
    for name, run in (("before", before), ("after", after)):
        print(f"{name}: commit {run['provenance']['git_commit'][:10]}, "
              f"{run['provenance']['date']}")
    clips = sorted({r["clip"] for r in after["rows"]} & {r["clip"] for r in before["rows"]})
    for clip in clips:
        for name, run in (("before", before), ("after", after)):
            rows = sorted((r for r in run["rows"] if r["clip"] == clip and r["codec"] == "actinr"),
                          key=lambda r: r["setting"])
            print(f"  {clip} {name}: " + ", ".join(
                f"q{r['setting']} {r['bpp']:.4f} bpp {r['psnr_rgb']:.2f} dB "
                f"({r['encode_s'] / r['frames']:.2f} s/frame)" for r in rows))
        for metric in ("psnr_rgb", "psnr_yuv"):
            delta = bd_delta(*curve(before, clip, metric), *curve(after, clip, metric))
            rate = "-" if delta["bd_rate"] is None else f"{delta['bd_rate']:+.1f} %"
            psnr = "-" if delta["bd_psnr"] is None else f"{delta['bd_psnr']:+.2f} dB"
            note = f" ({delta['warning']})" if delta["warning"] else ""
            print(f"{clip} {metric}: BD-rate {rate}, BD-PSNR {psnr}{note}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
