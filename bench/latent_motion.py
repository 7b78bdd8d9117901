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
The residuals are coded by bitstream/fields.py, bin by bin under learnt odds ("adaptive");
before the eighteenth probe, under one integer table per field, as a network's tensor is
("table", kept to rescore the fits priced so).

    python bench/latent_motion.py /tmp/gop/fit.pt

reports what each prediction costs a saved fit's fields under each coder, and checks that
the adaptive coder's stream decodes to them. Nothing here is part of the codec or its
format yet; see docs/experiments.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actinr_codec.fitting.latents import coded_step  # noqa: E402
from actinr_codec.model.latents import tensor_bits  # noqa: E402
from bitstream import fields as coder  # noqa: E402

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


def residual_bits(residual: torch.Tensor, kind: str) -> float:
    """The bits of a field's integer residuals (as residuals() gives them) under a
    coder: adaptive (bitstream/fields.py, its ideal code length) or table (an integer
    model and its payload)."""
    if kind == "table":
        return tensor_bits(residual.reshape(-1))
    return coder.field_bits([residual.numpy().astype(np.int64)])


def predictor_bits(symbols: torch.Tensor, kind: str = "adaptive") -> dict[str, float]:
    """A quantized field's (integer values) bits under each prediction and a coder."""
    return {p: residual_bits(residuals(symbols, p), kind) for p in PREDICTORS}


def field_bits(symbols: torch.Tensor, kind: str = "adaptive") -> tuple[float, str]:
    """A quantized field's cheapest code, with the 2 bits naming its prediction."""
    costs = predictor_bits(symbols, kind)
    best = min(costs, key=costs.get)
    return costs[best] + 2, best


def saved_fields(path: Path) -> dict[str, torch.Tensor]:
    """A saved GOP fit's fields as the integers a file codes (values over their step)."""
    state = torch.load(path, weights_only=True)["state"]
    out = {}
    for name in ("flow.0", "key_flow", "fine_flow"):
        if name in state:
            field = state[name].double()
            out[name] = torch.round(field / coded_step(torch.nn.ParameterList([field])))
    return out


def recoded_saving(path: Path) -> float:
    """Bits the adaptive coder saves on a saved fit's fields, against the table coder
    its fit priced them with (a fit with motion_coded, before the eighteenth probe)."""
    return sum(field_bits(s, "table")[0] - field_bits(s)[0]
               for s in saved_fields(path).values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fits", type=Path, nargs="+", help="GOP fits saved with --save")
    args = ap.parse_args()
    report = {}
    for path in args.fits:
        for name, symbols in saved_fields(path).items():
            grids = [residuals(symbols, p).numpy().astype(np.int64)
                     for p in PREDICTORS]
            payload = coder.encode_fields(grids)
            decoded = coder.decode_fields(payload, [g.shape for g in grids])
            if not all(np.array_equal(d, g) for d, g in zip(decoded, grids)):
                raise SystemExit(f"{path}:{name}: the field's stream did not decode to it")
            report[f"{path}:{name}"] = {
                "values": symbols.numel(), "mean_abs": round(float(symbols.abs().mean()), 2),
                "bits": {kind: {p: round(b) for p, b in predictor_bits(symbols, kind).items()}
                         for kind in ("table", "adaptive")},
                "stream_bits_all_predictions": 8 * len(payload)}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
