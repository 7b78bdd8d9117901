"""The model layer of picture GOPs (format version 5): a fitted latent-grid frame
(model/latents.py) as the integers a picture record holds, and a picture record back to
pixels at any size (docs/bitstream.md, "Picture GOPs")."""

from __future__ import annotations

import math

import numpy as np
import torch

from bitstream.pictures import PictureRecord

from ..native.synthesis import Synthesis, render
from .latents import LatentFrame


def picture_record(model: LatentFrame, steps: dict[str, float | list[float]]) -> PictureRecord:
    """The picture a file holds for a fitted model whose networks lie on ``steps``
    (fitting.latents.quantize_networks: a step per network, or one per tensor)."""
    shifts, networks = [], []
    for net, step in ((model.synthesis, steps["synthesis"]), (model.refine, steps["refine"]),
                      (model.arm, steps["arm"])):
        params = list(net.parameters())
        per_tensor = step if isinstance(step, list) else [step] * len(params)
        net_shifts = [round(-math.log2(s)) for s in per_tensor]
        symbols = [torch.round(p.detach() * 2.0 ** s).long().numpy()
                   for p, s in zip(params, net_shifts, strict=True)]
        for p, q, s in zip(params, symbols, net_shifts):
            if not torch.equal(torch.from_numpy(q).double() * 2.0 ** -s, p.detach().double()):
                raise ValueError("the networks are not on their coded steps")
        shifts.append(net_shifts)
        networks.append(symbols)
    with torch.no_grad():
        latents, _ = model.coded_latents("round")
    grids = [y[0, 0].numpy().astype(np.int32) for y in latents]
    return PictureRecord(shifts, networks, grids)


def synthesis(picture: PictureRecord) -> Synthesis:
    """The picture's synthesis and refinement networks in float."""
    def values(k: int) -> list[np.ndarray]:
        return [np.ldexp(t.astype(np.float64), -s).astype(np.float32)
                for t, s in zip(picture.networks[k], picture.shifts[k], strict=True)]

    layers, refine = values(0), values(1)
    return Synthesis(tuple(zip(layers[::2], layers[1::2])), tuple(zip(refine[::2], refine[1::2])))


def render_picture(picture: PictureRecord, size: tuple[int, int] | None = None,
                   threads: int | None = None) -> np.ndarray:
    """(H, W, 3) float32 RGB, unclipped: at the picture's size, or at ``size`` (H, W), where
    every grid is interpolated to the output's pixels (super-resolution)."""
    return render([g.astype(np.float32) for g in picture.grids], synthesis(picture), None, size,
                  threads)
