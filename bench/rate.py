"""Benchmark of quantization and entropy coding on a real clip, at several quality settings.

    python bench/rate.py [--clip ../shared/clips/carphone.mkv] [--frames 16] [--qualities 2 4 7]

For each quality: parameter count, coded bytes per tensor group, bpp of the real file,
PSNR before and after quantization (plain rounding and after quantization-aware
fine-tuning), and the coded payload against the chosen models' ideal code length, against
the symbols' empirical entropy (model mismatch included) and against zstd.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import actinr_codec as actinr  # noqa: E402
from actinr_codec.media.videoio import read_video  # noqa: E402
from bench.core_fit import DEFAULT_CLIP, machine  # noqa: E402
from bitstream.entropy import encode_symbols  # noqa: E402
from bitstream.models import fit_model  # noqa: E402
from bitstream.stats import measure  # noqa: E402


def group_of(name: str) -> str:
    """weights, base_biases, latents, or bias_network."""
    return "bias_network" if name.startswith("bias_") else name.split(".")[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--qualities", type=int, nargs="+", default=[2, 4, 7])
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--gop", type=int, default=8)
    args = ap.parse_args()
    if not args.clip.exists():
        sys.exit(f"error: clip not found: {args.clip}")
    video, source = read_video(args.clip, count=args.frames)
    n, h, w, _ = video.shape
    report = {"clip": args.clip.name, "frames": n, "size": [w, h], "gop": args.gop,
              "preset": args.preset, "machine": machine(), "settings": []}
    for q in args.qualities:
        encoded = actinr.encode(video, None, actinr.EncodeOptions(
            quality=q, preset=args.preset, gop=args.gop), fps=source.fps)
        settings, reports, size = encoded.plan.settings, encoded.gops, encoded.size
        groups: dict[str, dict[str, float]] = {}
        totals = {"coded_bits": 0.0, "side_bits": 0.0, "entropy_bits": 0.0, "zstd_bytes": 0.0,
                  "ideal_bits": 0.0}
        payload_bits = 0
        for r in reports:
            record = r.coded.record()
            # As in the file: all of a GOP's tensors share one range-coder stream.
            payload_bits += 8 * len(encode_symbols(
                [(t.symbols, fit_model(t.symbols)[0]) for t in record.tensors]))
            for s in measure(record):
                g = groups.setdefault(group_of(s.name), {"params": 0, "bytes": 0.0})
                g["params"] += s.elements
                g["bytes"] += (s.coded_bits + s.side_bits) / 8
                for key in totals:
                    totals[key] += getattr(s, key)
        entry = {
            "quality": q, "width": settings.model.width, "noise_db": settings.noise_db,
            "params": sum(r.stats.params for r in reports), "file_bytes": size,
            "bpp": size * 8 / (w * h * n), "encode_seconds": round(encoded.seconds, 1),
            "psnr_float": [round(r.stats.psnr_float, 2) for r in reports],
            "psnr_quantized": [round(r.stats.psnr_quantized, 2) for r in reports],
            "psnr_after_qat": [round(r.stats.psnr, 2) for r in reports],
            "bytes_per_group": {k: round(v["bytes"]) for k, v in groups.items()},
            "params_per_group": {k: v["params"] for k, v in groups.items()},
            "payload_vs_model_ideal": payload_bits / totals["ideal_bits"] - 1,
            "payload_vs_entropy": payload_bits / totals["entropy_bits"] - 1,
            "side_info_bytes": totals["side_bits"] / 8,
            "zstd_vs_coder": totals["zstd_bytes"] * 8 / (totals["coded_bits"] + totals["side_bits"]) - 1,
        }
        report["settings"].append(entry)
        print(json.dumps(entry), file=sys.stderr)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
