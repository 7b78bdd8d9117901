"""Speed benchmark of the latent-grid decoder's native parts on a synthetic 640x360 frame.

    python bench/latent_speed.py [--size 360 640] [--runs 5] [--reference] [--guard]

A pyramid of seven latent grids (Laplace-distributed integers, wider at coarser levels),
range-coded under an 8-wide context network, then decoded by the C decoder
(actinr_codec/native/latents.py) and rendered by the C synthesis (native/synthesis.py:
7 -> 40 -> 3 with two 3x3 refinement layers, the probes' best setting) at 1x and at 4x.
Prints one JSON object: seconds per decode (median of --runs), render frames per second
at each scale, a picture's frames per second at 1x (its latents decoded, then rendered:
a stream of pictures decodes latents for every frame), and the process's peak resident
memory; --reference also times the numpy reference decoder and PyTorch's render once each.

--guard checks the decode targets of issue 30 on what it measured and exits 1 naming each
one missed: rendering at least RENDER_FPS frames per second at 1x and RENDER_FPS_4X at 4x,
decoding a picture (its latents, then its render) at RENDER_FPS at 1x too, and at most
PEAK_GB of resident memory. The synthetic frame's payload is about four times a fitted
city frame's, so the pictures' guard is a pessimistic one. Guards live here, not
in the tests: they mean something only on the reference machine with nothing else running.
The fitted frames of bench/latent_intra.py record the same two timings
(latent_decode_s, native_render_s) on real latents and networks.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core_fit import median_seconds  # noqa: E402

from actinr_codec.native import latents as native_latents  # noqa: E402
from actinr_codec.native import synthesis  # noqa: E402
from bitstream import latents as reference_latents  # noqa: E402
from bitstream.latents import CONTEXT, ContextModel  # noqa: E402

RENDER_FPS = 25.0
RENDER_FPS_4X = 2.0
PEAK_GB = 1.5
LEVELS = 7


def frame(height: int, width: int, seed: int = 0):
    """A synthetic frame: integer latent grids, a context model and a synthesis."""
    rng = np.random.default_rng(seed)
    grids = [rng.laplace(0, 0.5 + 0.4 * k, (math.ceil(height / 2**k), math.ceil(width / 2**k)))
             .round().astype(np.int32) for k in range(LEVELS)]
    shift = 8
    sizes = [CONTEXT, 8, 8, 2]
    layers = [(rng.integers(-60, 61, (o, i)), rng.integers(-60, 61, o))
              for i, o in zip(sizes, sizes[1:])]
    # A scale near the grids' (log2 of about one, in the model's units) so that the
    # tables look like a fitted model's rather than uniform.
    layers[-1][1][1] = 2 << shift
    model = ContextModel(tuple(layers), shift)
    widths = [LEVELS, 40, 3]
    net = synthesis.Synthesis(
        tuple((rng.normal(0, 0.3, (o, i)), rng.normal(0, 0.1, o))
              for i, o in zip(widths, widths[1:])),
        tuple((rng.normal(0, 0.1, (3, 3, 3, 3)), rng.normal(0, 0.1, 3)) for _ in range(2)))
    return grids, model, net


def measure(args: argparse.Namespace) -> dict:
    height, width = args.size
    grids, model, net = frame(height, width)
    payload = reference_latents.encode_grids(grids, model)
    ranges = [(g.shape, int(g.min()), int(g.max())) for g in grids]
    decoded = native_latents.decode_grids(payload, ranges, model)
    if not all(np.array_equal(a, b) for a, b in zip(decoded, grids)):
        raise AssertionError("the native decoder did not give back the grids")
    floats = [g.astype(np.float32) for g in grids]
    big = (4 * height, 4 * width)
    out = {
        "size": [height, width], "payload_bytes": len(payload),
        "latent_decode_s": median_seconds(
            lambda: native_latents.decode_grids(payload, ranges, model), args.runs),
        "render_fps_1x": 1 / median_seconds(lambda: synthesis.render(floats, net), args.runs),
        "render_fps_4x": 1 / median_seconds(lambda: synthesis.render(floats, net, size=big),
                                            max(1, args.runs // 2)),
    }
    # A picture (format version 5) decodes its own latents for each frame it shows.
    out["picture_fps_1x"] = 1 / (out["latent_decode_s"] + 1 / out["render_fps_1x"])
    if args.reference:
        out["reference_latent_decode_s"] = median_seconds(
            lambda: reference_latents.decode_grids(payload, ranges, model), 1)
        out["pytorch_render_fps_1x"] = 1 / median_seconds(
            lambda: synthesis.render_torch(floats, net), 1)
    out["peak_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    out["machine"] = f"{platform.machine()} {platform.processor()}".strip()
    return out


def missed_guards(result: dict) -> list[str]:
    missed = []
    if result["render_fps_1x"] < RENDER_FPS:
        missed.append(f"render at 1x {result['render_fps_1x']:.1f} < {RENDER_FPS} frames/s")
    if result["picture_fps_1x"] < RENDER_FPS:
        missed.append(f"pictures at 1x {result['picture_fps_1x']:.1f} < {RENDER_FPS} frames/s")
    if result["render_fps_4x"] < RENDER_FPS_4X:
        missed.append(f"render at 4x {result['render_fps_4x']:.2f} < {RENDER_FPS_4X} frames/s")
    if result["peak_gb"] > PEAK_GB:
        missed.append(f"peak memory {result['peak_gb']:.2f} > {PEAK_GB} GB")
    return missed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, nargs=2, default=[360, 640], metavar=("H", "W"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--reference", action="store_true",
                    help="also time the numpy decoder and PyTorch's render")
    ap.add_argument("--guard", action="store_true")
    args = ap.parse_args()
    result = measure(args)
    print(json.dumps(result, indent=1))
    if args.guard:
        missed = missed_guards(result)
        for line in missed:
            print(f"guard missed: {line}", file=sys.stderr)
        sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
