"""Benchmark of the core model on a real clip: PSNR against fitting time, decode speed, slow motion.

    python bench/core_fit.py [--clip ../shared/clips/carphone.mkv] [--frames 16] [--seconds 120]

Prints one JSON object with everything it measured and the machine it ran on.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import actinr_codec as actinr  # noqa: E402
from actinr_codec.fitting.fit import fit_gop  # noqa: E402
from actinr_codec.media.videoio import read_video  # noqa: E402
from actinr_codec.metrics import psnr  # noqa: E402
from actinr_codec.model.render import render_gop  # noqa: E402
from actinr_codec.pipeline.options import EncodeOptions  # noqa: E402
from actinr_codec.pipeline.presets import settings_for  # noqa: E402
from actinr_codec.process import kernel_cores  # noqa: E402

DEFAULT_CLIP = Path(__file__).resolve().parents[2] / "shared" / "clips" / "carphone.mkv"


def machine() -> dict:
    """What the numbers were measured on."""
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__}


def median_seconds(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--gop", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=120.0, help="fitting budget per GOP")
    ap.add_argument("--runs", type=int, default=3, help="decode timing repetitions")
    args = ap.parse_args()
    if not args.clip.exists():
        sys.exit(f"error: clip not found: {args.clip}")
    video, _ = read_video(args.clip, count=args.frames)
    n, h, w, _ = video.shape
    # The real encoder at the product's settings, but for intra GOPs of the given length
    # and a fitting budget in seconds instead of steps.
    settings = settings_for(w * h, EncodeOptions(gop=args.gop, keyint=1))
    settings = dataclasses.replace(settings, fit=dataclasses.replace(
        settings.fit, iters=10**9, seconds=args.seconds))
    model_cfg, fit_cfg = settings.model, settings.fit
    report: dict = {
        "clip": args.clip.name, "frames": n, "size": [w, h], "gop": args.gop,
        "model": dataclasses.asdict(settings.model), "fit_seconds_budget": args.seconds,
        "machine": machine(),
        "gops": [],
    }

    def on_gop(event):
        if event.kind != "gop":
            return
        result = event.report.stats
        report["gops"].append({"psnr": round(result.psnr, 3), "iters": result.iters,
                               "seconds": round(result.seconds, 2), "params": result.params})
        print(f"gop {event.gop}: {result.psnr:.2f} dB in {result.seconds:.1f} s", file=sys.stderr)

    # This script owns its process, and gives its cores to the kernel as the command does.
    threads = kernel_cores("cpu")
    encoded = actinr.encode(video, None, actinr.EncodeOptions(threads=threads),
                            settings=settings, progress=on_gop)
    with actinr.open(encoded.data, "cpu", threads=threads) as decoded:
        model = decoded.gop_model(0)
        t1 = torch.arange(float(len(decoded.gops[0])))
    report["decode_s_per_frame_1x"] = median_seconds(
        lambda: render_gop(model, t1, h, w, threads=threads), args.runs) / len(t1)
    report["decode_s_per_frame_4x"] = median_seconds(
        lambda: render_gop(model, torch.tensor([0.5]), 4 * h, 4 * w, threads=threads), args.runs)

    # Slow motion: fit the even frames of the first 2 * gop - 1, render the odd ones.
    full = torch.tensor(video[: 2 * args.gop - 1]).float() / 255
    even, odd = full[0::2], full[1::2]
    res = fit_gop(even, model_cfg, fit_cfg, threads=threads)
    mid = render_gop(res.model, torch.arange(float(len(odd))) + 0.5, h, w,
                     threads=threads).clamp(0, 1)
    report["slow_motion"] = {
        "fit_psnr": round(res.psnr, 3),
        "bias_network": round(psnr(mid, odd), 3),
        "repeat_previous": round(psnr(even[:-1], odd), 3),
        "linear_blend": round(psnr((even[:-1] + even[1:]) / 2, odd), 3),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
