"""Speed and memory benchmark: encode and decode a clip through the CLI's own code paths.

    python bench/speed.py encode [--clip ../shared/clips/city.mkv] [--out DIR]
    python bench/speed.py encode --clip carphone.mkv --preset fast,medium,slow --before old.json
    python bench/speed.py decode --anr DIR/city.anr [--runs 3]

encode: per preset (medium by default), wall seconds per frame, bits per pixel and PSNR of
the decoded video against the source, and the fitting loop's matrix-product FLOP/s as a
fraction of this machine's float32 matmul peak, measured in the same run. With several
presets it also plots PSNR against encode seconds (with --before: an earlier run's JSON).
decode: `actinr decode` at 1x and at 4x (--scale 4) in fresh processes: wall time with
start-up, frames per second of the render-and-write loop, and peak resident memory.
Prints one JSON object with everything it measured and the machine it ran on.

--guard checks the speed targets (the rate-distortion issue's) on what it measured and
exits 1 naming each one missed: encoding at most ENCODE_S_PER_FRAME seconds per 640x360
frame (scaled by pixel count for other sizes), decoding at 1x at least DECODE_FPS frames
per second, and at most PEAK_GB of resident memory in either. Guards live here, not in the
tests, because they only mean something on the reference machine with nothing else
running.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import actinr_codec as actinr  # noqa: E402
from actinr_codec.media.videoio import read_video  # noqa: E402
from actinr_codec.metrics import psnr  # noqa: E402
from actinr_codec.model.network import GOPModel  # noqa: E402
from actinr_codec.pipeline.options import EncodeOptions  # noqa: E402
from actinr_codec.pipeline.presets import settings_for  # noqa: E402
from actinr_codec.runtime import resolve_device  # noqa: E402
from bench.core_fit import machine, median_seconds  # noqa: E402
from bitstream.container import AnrReader  # noqa: E402

DEFAULT_CLIP = Path(__file__).resolve().parents[2] / "shared" / "clips" / "city.mkv"
ENCODE_S_PER_FRAME = 5.0  # per 640x360 frame, two cores, preset medium
DECODE_FPS = 25.0  # at 1x
PEAK_GB = 1.5


def matmul_peak(n: int = 1024, runs: int = 20) -> float:
    """float32 GFLOP/s of an n x n matrix product on this machine, median of runs."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    return 2 * n**3 / median_seconds(lambda: a @ b, runs) / 1e9


def step_flops(model: GOPModel, frames: int, points: int) -> float:
    """Matrix-product FLOPs of one fitting step, forward and backward.

    The first layer's product is shared by the frames and needs no input gradient; every
    other layer costs one product forward and two backward (input and weight gradients).
    """
    dims, tiles = model.dims, model.tiling.count
    first = 2 * dims[0] * dims[1] * tiles * points * 2
    rest = sum(2 * a * b for a, b in zip(dims[1:-1], dims[2:])) * tiles * points * frames * 3
    return float(first + rest)


def encode(args: argparse.Namespace) -> dict:
    # This script owns its process: it tunes it as `actinr encode` does, which it measures.
    # Older encoders, which it measures too, tuned their process themselves.
    args.pool = {}  # the library's threads option, where it has one
    try:
        from actinr_codec.process import freeze_long_lived, kernel_cores, tune_allocator
    except ImportError:
        pass
    else:
        tune_allocator()
        freeze_long_lived()
        args.pool = {"threads": kernel_cores(args.device)}
    video, info = read_video(args.clip, count=args.frames)
    runs = [encode_one(args, video, info.fps, preset) for preset in args.preset.split(",")]
    if len(runs) > 1:
        from evaluation.plots import plot_presets

        series = {f"this commit ({_commit()})": runs}
        if args.before is not None:
            before = json.loads(args.before.read_text())
            series[f"before ({before['commit']})"] = before["runs"]
        plot_presets(args.out / f"presets_{args.clip.stem}.png", args.clip.stem, series)
    return {"runs": runs}


def encode_one(args: argparse.Namespace, video: np.ndarray, fps, preset: str) -> dict:
    n, h, w, _ = video.shape
    # Only pass --compile on: encoders before it existed are measured with this script too.
    forced = {} if args.compile is None else {"compile": args.compile}
    settings = settings_for(w * h, EncodeOptions(quality=args.quality, preset=preset,
                                                 gop=args.gop, **forced))
    # Probed before and after the encode: on a shared machine one probe can catch a busy
    # moment (102 against 191 GFLOP/s, seen), and the higher is the machine's peak.
    probes = [matmul_peak()]
    # Older encoders, which this script measures too, had no native kernel.
    native = getattr(settings.fit, "native", False) and _native_kernel_applies(settings, args.device)
    out = args.out / f"{args.clip.stem}.{preset}.anr"
    start = time.perf_counter()
    reports = actinr.encode(video, out, actinr.EncodeOptions(device=args.device, **args.pool),
                            fps=fps, settings=settings).gops
    seconds = time.perf_counter() - start
    probes.append(matmul_peak())
    peak = max(probes)
    with actinr.open(out, args.device, **args.pool) as anr:
        decoded = anr.render()
        # A step fits one of fit.groups(frames) interleaved groups of the GOP's frames.
        flops = sum(step_flops(anr.gop_model(k), len(r.frames) / settings.fit.groups(len(r.frames)),
                               settings.fit.points) * r.stats.iters
                    for k, r in enumerate(reports))
    fit_seconds = sum(r.stats.seconds for r in reports)
    return {
        "clip": args.clip.name, "frames": n, "width": w, "height": h,
        "preset": preset, "quality": args.quality, "gop": args.gop,
        "native": native,
        "compiled": getattr(settings.fit, "compile", False) and not native,
        "encode_s": round(seconds, 1), "encode_s_per_frame": round(seconds / n, 2),
        "bpp": round(out.stat().st_size * 8 / (n * h * w), 4),
        "psnr": round(psnr(torch.from_numpy(decoded).float() / 255,
                           torch.from_numpy(video).float() / 255), 3),
        "gops": [{"frames": f"{r.frames.start}-{r.frames.stop - 1}", "steps": r.stats.iters,
                  "fit_s": round(r.stats.seconds, 1), "psnr": round(r.stats.psnr, 3)}
                 for r in reports],
        "fit_gflops": round(flops / fit_seconds / 1e9, 2),
        "matmul_peak_gflops": round(peak, 1),
        "matmul_probes_gflops": [round(p, 1) for p in probes],
        "fit_fraction_of_peak": round(flops / fit_seconds / 1e9 / peak, 3),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
    }


def _native_kernel_applies(settings, device: str) -> bool:
    try:
        from actinr_codec.native.kernel import supported
    except ImportError:
        return False
    return supported(settings.model, resolve_device(device))


def decode_run(anr: Path, out: Path, scale: int, end: float | None) -> tuple[float, float, int]:
    """One `actinr decode` in a fresh process: wall seconds, loop frames/s, frames."""
    cmd = [sys.executable, "-m", "cli.main", "decode", str(anr), str(out), "-y",
           "--scale", str(scale)] + ([] if end is None else ["--end", f"{end:.6f}"])
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parents[1])
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"decode failed: {done.stderr.strip()}")
    frames = int(re.search(r"(\d+) frames", done.stderr).group(1))
    loop = re.search(r"in ([\d.]+)s", done.stderr)  # older decoders did not print it
    return wall, frames / float(loop.group(1)) if loop else float("nan"), frames


def decode(args: argparse.Namespace) -> dict:
    report = {"anr": str(args.anr)}
    with AnrReader(args.anr) as reader:
        fps = reader.info.fps_num / reader.info.fps_den
    for scale in (1, 4):
        # Super-resolution decodes the first --sr-frames frames only, to bound the run time.
        end = args.sr_frames / fps if scale > 1 and args.sr_frames else None
        runs = [decode_run(args.anr, args.out / f"decoded_{scale}x.mp4", scale, end)
                for _ in range(args.runs)]
        report[f"{scale}x"] = {
            "frames": runs[0][2],
            "wall_s": round(statistics.median(r[0] for r in runs), 2),
            "loop_fps": round(statistics.median(r[1] for r in runs), 2),
        }
    # The children's peak: the largest resident set of any decode above.
    report["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20, 3)
    return report


def missed_guards(what: str, result: dict) -> list[str]:
    """The speed targets this measurement misses, one line each."""
    missed = []
    if what == "encode":
        for run in result["runs"]:
            per_360p = run["encode_s_per_frame"] * 640 * 360 / (run["width"] * run["height"])
            if per_360p > ENCODE_S_PER_FRAME:
                missed.append(f"encode ({run['preset']}): {per_360p:.2f} s per 640x360 frame "
                              f"> {ENCODE_S_PER_FRAME}")
            if run["peak_rss_gb"] >= PEAK_GB:
                missed.append(f"encode ({run['preset']}): peak {run['peak_rss_gb']} GB >= {PEAK_GB}")
    else:
        if result["1x"]["loop_fps"] < DECODE_FPS:
            missed.append(f"decode at 1x: {result['1x']['loop_fps']} frames/s < {DECODE_FPS}")
        if result["peak_rss_gb"] >= PEAK_GB:
            missed.append(f"decode: peak {result['peak_rss_gb']} GB >= {PEAK_GB}")
    return missed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["encode", "decode"])
    ap.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--preset", default=EncodeOptions().preset, help="one or more, comma-separated")
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                    help="force torch.compile on or off (default: the encoder's own choice)")
    ap.add_argument("--before", type=Path, help="an earlier encode JSON to plot against")
    ap.add_argument("--quality", type=int, default=EncodeOptions().quality)
    ap.add_argument("--gop", type=int, default=EncodeOptions().gop)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--anr", type=Path, help="file to decode")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sr-frames", type=int, default=16, help="frames decoded at 4x (0: all)")
    ap.add_argument("--out", type=Path, default=Path("bench_out"))
    ap.add_argument("--guard", action="store_true",
                    help="exit 1 if a speed or memory target is missed")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.what == "encode" and not args.clip.exists():
        sys.exit(f"error: clip not found: {args.clip}")
    if args.what == "decode" and (args.anr is None or not args.anr.exists()):
        sys.exit("error: decode needs --anr FILE")
    result = encode(args) if args.what == "encode" else decode(args)
    print(json.dumps({"machine": machine(), "commit": _commit(), **result}, indent=1))
    if args.guard:
        missed = missed_guards(args.what, result)
        for line in missed:
            print(f"guard missed: {line}", file=sys.stderr)
        if missed:
            sys.exit(1)


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          cwd=Path(__file__).parents[1])
    return done.stdout.strip() or "unknown"


if __name__ == "__main__":
    main()
