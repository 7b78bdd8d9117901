"""Motion fields coded as the integer grids they are: each value predicted from values a
decoder holds already, the residuals under one integer model.

A GOP's fields (bench/latent_gop.py) are small grids, one vector per 32x32 cell, at a
step of a fraction of a pixel: a frame between keys has two (from the key before and the
one after), a later key one. Coded as a plain tensor, every value pays for its size
alone (4.1 bits a value on carphone, docs/experiments.md, "tenth probe"). Neighbouring
cells move alike and a frame moves much as the frame before it did, which a prediction
from the causal neighbours (the median edge detector of LOCO-I, over the left, top and
top-left values), from the same cell of the frame before, or both, turns into residuals
near zero. The predictions are integer arithmetic on integers, the same on every machine.

    python bench/latent_motion.py /tmp/gop/fit.pt

reports what each prediction costs a saved fit's fields. Nothing here is part of the
codec or its format yet; see docs/experiments.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from latent_intra import coded_step  # noqa: E402
from latent_model import tensor_bits  # noqa: E402

# A file would name the prediction a field uses by its index here, in 2 bits.
PREDICTORS = ("none", "spatial", "temporal", "change")


def time_grids(field: torch.Tensor) -> torch.Tensor:
    """A GOP's fields as (time, grids, h, w): a frame-between field (frames, 2 keys, 2,
    h, w) or the keys' (keys - 1, 2, h, w), in the order a decoder meets them."""
    return field.reshape(field.shape[0], -1, *field.shape[-2:])


def spatial(grids: torch.Tensor) -> torch.Tensor:
    """Each value's median-edge prediction from its left, top and top-left neighbours
    (zeros outside the grid, so that the first row predicts from the left and the first
    column from the top)."""
    padded = F.pad(grids, (1, 0, 1, 0))
    left, top, corner = padded[..., 1:, :-1], padded[..., :-1, 1:], padded[..., :-1, :-1]
    return torch.stack([left, top, left + top - corner]).median(dim=0).values


def predictions(grids: torch.Tensor, predictor: str) -> torch.Tensor:
    """Each value's prediction, (time, grids, h, w), from values coded before it: none,
    its causal neighbours (spatial), the same cell a frame before (temporal), or the
    frame before plus the spatial prediction of the change since (change)."""
    before = torch.cat([torch.zeros_like(grids[:1]), grids[:-1]])
    if predictor == "none":
        return torch.zeros_like(grids)
    if predictor == "spatial":
        return spatial(grids)
    if predictor == "temporal":
        return before
    if predictor == "change":
        return before + spatial(grids - before)
    raise ValueError(f"unknown predictor {predictor!r}")


def residuals(field: torch.Tensor, predictor: str) -> torch.Tensor:
    """What a file codes for a field under a predictor: the values less their predictions."""
    grids = time_grids(field)
    return grids - predictions(grids, predictor)


def predictor_bits(symbols: torch.Tensor) -> dict[str, float]:
    """A quantized field's (integer values) bits under each prediction: its residuals'
    integer model and payload."""
    return {p: tensor_bits(residuals(symbols, p).reshape(-1)) for p in PREDICTORS}


def field_bits(symbols: torch.Tensor) -> tuple[float, str]:
    """A quantized field's cheapest code, with the 2 bits naming its prediction."""
    costs = predictor_bits(symbols)
    best = min(costs, key=costs.get)
    return costs[best] + 2, best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fits", type=Path, nargs="+", help="GOP fits saved with --save")
    args = ap.parse_args()
    report = {}
    for path in args.fits:
        state = torch.load(path, weights_only=True)["state"]
        for name in ("flow.0", "key_flow"):
            if name not in state:
                continue
            field = state[name].double()
            step = coded_step(torch.nn.ParameterList([field]))
            symbols = torch.round(field / step)
            costs = {p: round(b) for p, b in predictor_bits(symbols).items()}
            report[f"{path}:{name}"] = {"values": symbols.numel(), "step": step,
                                        "mean_abs": round(float(symbols.abs().mean()), 2),
                                        "bits": costs}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
