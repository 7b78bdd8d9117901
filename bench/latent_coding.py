"""Probe: where the latents' coded size departs from the fit's ideal, on saved fits.

The latent probes report one "fixed-point overhead": the range-coded latents plus each
grid's stated symbol range, over the float context model's ideal code length. This
splits it, for a model fitted and saved by bench/latent_intra.py or bench/latent_gop.py
with --save (networks at their coded steps, latents rounded here), into:

- quantized context network: the ideal length under the coded (rounded) network,
  computed in float, against the float network's (from the probe's json, if given);
- mean and scale rounding: the same Laplace laws with the mean rounded to eighths and
  log2 of the scale to quarters, as the format takes them (still float, untruncated);
- integer arithmetic and tables: bitstream.latents' own ideal length (integer
  activations, truncated and normalised tables) against the rounded float laws;
- the range coder: the payload's size against that ideal length;
- the grids' stated ranges: Exp-Golomb codes (what the probes now count), against
  the 32 bits a grid the probes counted before, and one range for all grids.

It also prices finer resolutions (means in sixteenths, scales in eighths of an octave),
which would change the coding layer (and the format of picture GOPs, version 5).

    python bench/latent_coding.py /tmp/gop/temporal+biases+keys7+warp+presref_0.003.pt

See docs/experiments.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from latent_gop import load_fit  # noqa: E402

from actinr_codec.fitting.latents import coded_step, context_model  # noqa: E402
from actinr_codec.model.latents import MIN_PROBABILITY, LatentFrame, laplace_cdf  # noqa: E402
from bitstream.latents import SCALE_MAX, SCALE_MIN, encode_grids, ideal_bits, pack_ranges  # noqa: E402
from bitstream.models import PRECISION  # noqa: E402


@torch.no_grad()
def rounded_law_bits(flat: torch.Tensor, laws: torch.Tensor, mean_steps: int | None,
                     scale_steps: int | None, floor: float = MIN_PROBABILITY) -> float:
    """Ideal bits in float of the latents flat under the context model's laws (mean, log2
    scale) a row, the mean rounded to 1/mean_steps of a symbol and log2 of the scale to
    1/scale_steps (None: unrounded), no symbol's probability taken below floor."""
    mu, log2_b = laws.unbind(dim=1)
    log2_b = log2_b.clamp(min=SCALE_MIN / 4, max=SCALE_MAX / 4)
    if mean_steps is not None:
        mu = torch.round(mu * mean_steps) / mean_steps
    if scale_steps is not None:
        log2_b = torch.round(log2_b * scale_steps) / scale_steps
    b = torch.exp2(log2_b)
    p = laplace_cdf(flat + 0.5, mu, b) - laplace_cdf(flat - 0.5, mu, b)
    return float(-torch.log2(p.clamp(min=floor)).sum())


def range_side_bits(grids: list[np.ndarray]) -> dict[str, int]:
    """What stating each grid's symbol range [lo, hi] costs under several codes."""
    ranges = [(int(g.min()), int(g.max())) for g in grids]
    return {
        # two 16-bit numbers a grid, as the probes counted them before the eighth
        "two_i16": 32 * len(grids),
        "exp_golomb": 8 * len(pack_ranges(ranges)),
        # one range for every grid, stated once
        "one_range": 32,
    }


@torch.no_grad()
def split(model: LatentFrame, float_bits: float | None) -> dict:
    latents, _ = model.coded_latents("round")
    # An anchored GOP's first key is coded by the GOP before: none of it counts here.
    grids, references = model.coded_grids(latents)
    coder = context_model(model, coded_step(model.arm))
    pixels = int(np.prod(model.shape[:-1]))
    # The context model's laws once; each pricing below only rounds them.
    flat, laws = (t.double() for t in model.laws(latents))
    quantized = rounded_law_bits(flat, laws, None, None)
    rounded = rounded_law_bits(flat, laws, 8, 4)
    # The fit priced no latent above 16 bits before the eighth probe; the coder's tables
    # go down to 2**-24.
    floored = rounded_law_bits(flat, laws, 8, 4, 2.0 ** -PRECISION)
    integer = sum(ideal_bits(g, coder, r) for g, r in zip(grids, references))
    payload = 8 * len(encode_grids(grids, coder, references))
    sides = range_side_bits(grids)
    return {
        "float_network": None if float_bits is None else float_bits / pixels,
        "quantized_network": quantized / pixels,
        "mean_eighths_scale_quarters": rounded / pixels,
        "and_floor_2**-24": floored / pixels,
        "integer_tables": integer / pixels,
        "payload": payload / pixels,
        "finer": {f"mean_1/{m}_scale_1/{s}": rounded_law_bits(flat, laws, m, s) / pixels
                  for m, s in ((16, 4), (8, 8), (16, 8), (32, 16))},
        "range_sides": {k: v / pixels for k, v in sides.items()},
        "grids": len(grids), "constant_grids": sum(int(g.min() == g.max()) for g in grids),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", type=Path, nargs="+", help="saved fits (--save)")
    ap.add_argument("--results", type=Path,
                    help="the probe's json, for the float context model's ideal length")
    args = ap.parse_args()
    floats = {}
    if args.results:
        data = json.loads(args.results.read_text())
        for group in (data.get("variants") or data.get("clips")).values():
            for p in group["points"]:
                if p["codec"] == "latent":
                    floats[p["lambda"]] = p["latent_bpp"]
    out = {}
    for path in args.models:
        model = load_fit(path)
        float_bpp = floats.get(float(path.stem.rsplit("_", 1)[1]))
        pixels = int(np.prod(model.shape[:-1]))
        out[path.name] = split(model, None if float_bpp is None else float_bpp * pixels)
        print(json.dumps({path.name: out[path.name]}, indent=1))


if __name__ == "__main__":
    main()
