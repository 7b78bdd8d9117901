"""Memory benchmark for long videos: peak resident memory of `actinr encode` on a short and
a ten times longer synthetic 640x360 clip, fitted with few steps per GOP.

    python bench/long_memory.py [--frames 100,1000] [--iters 2] [--out DIR]

Streaming input means peak memory follows the GOP being fitted, not the video: the
target is the long clip's peak within 20 % of the short one's. Each encode runs in a fresh
process through the CLI (`python -m cli.main encode ... --iters N`), and its own peak RSS
is read from the kernel (wait4). Prints one JSON object: per clip, frames, GOPs, encode
seconds and peak RSS; the ratio; and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from actinr_codec.media.videoio import VideoWriter  # noqa: E402
from bench.core_fit import machine  # noqa: E402

WIDTH, HEIGHT = 640, 360
TARGET = 1.2


def synthetic_clip(path: Path, frames: int) -> Path:
    """Smooth texture panning at a steady, sub-pixel speed (no scene cuts), as H.264."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    with VideoWriter(path, WIDTH, HEIGHT, Fraction(25), crf=12) as writer:
        for t in range(frames):
            xs, ys = x - 0.7 * t, y - 0.3 * t
            r = 0.5 + 0.4 * np.sin(2 * np.pi * (xs / 53 + ys / 71))
            g = 0.5 + 0.4 * np.cos(2 * np.pi * (xs / 37 - ys / 29))
            b = 0.5 + 0.4 * np.sin(2 * np.pi * (xs + ys) / 97)
            writer.write((np.stack([r, g, b], -1) * 255 + 0.5).astype(np.uint8))
    return path


def encode_peak(clip: Path, out: Path, iters: int) -> dict:
    """Encode in a fresh process; its wall seconds, peak RSS and GOP count."""
    began = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "encode", str(clip), str(out), "-y",
         "--iters", str(iters)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True)
    log = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"encode of {clip} failed:\n{log}")
    gops = sum(line.startswith("GOP ") for line in log.splitlines())
    return {"seconds": round(time.perf_counter() - began, 1), "gops": gops,
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", default="100,1000")
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch)
        out.mkdir(parents=True, exist_ok=True)
        runs = {}
        for frames in (int(f) for f in args.frames.split(",")):
            clip = synthetic_clip(out / f"pan{frames}.mp4", frames)
            runs[frames] = {"frames": frames,
                            **encode_peak(clip, out / f"pan{frames}.anr", args.iters)}
            print(json.dumps(runs[frames]), file=sys.stderr)
    short, long = runs[min(runs)], runs[max(runs)]
    ratio = long["peak_rss_mb"] / short["peak_rss_mb"]
    print(json.dumps({"clips": list(runs.values()), "iters": args.iters,
                      "peak_ratio": round(ratio, 3), "target": TARGET,
                      "meets_target": ratio <= TARGET, "machine": machine()}, indent=2))


if __name__ == "__main__":
    main()
