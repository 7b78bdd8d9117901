"""The inpainting protocol: actinr --mask against simple fills, on two fixed masks.

The masked pixels are blacked out before anything sees the clip, so no method can read
them; every method's output is scored on the whole frame and on the masked pixels alone.
"""

from __future__ import annotations

import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from actinr_codec.pipeline.options import EncodeOptions

from .baselines import filter_video
from .protocols import actinr_code
from .quality import region_psnr, summarize

# Conjugate-gradient iterations at most, and the relative residual that ends them early.
CG_ITERS = 2000
CG_TOLERANCE = 1e-6


def _box(unknown: np.ndarray, cy: float, cx: float, height: int, width: int) -> None:
    top, left = round(cy - height / 2), round(cx - width / 2)
    unknown[max(top, 0) : top + height, max(left, 0) : left + width] = True


def protocol_masks(height: int, width: int) -> dict[str, np.ndarray]:
    """The two masks, (H, W) bool with True unknown: ``squares``, five squares of side
    min(H, W) / 8 (rounded) centred at (1/2, 1/2) and at the four (1/4 or 3/4, 1/4 or 3/4)
    points; ``box``, one H/4 x W/4 box (rounded) in the centre."""
    side = round(min(height, width) / 8)
    squares = np.zeros((height, width), bool)
    for fy, fx in [(0.5, 0.5), (0.25, 0.25), (0.25, 0.75), (0.75, 0.25), (0.75, 0.75)]:
        _box(squares, fy * height, fx * width, side, side)
    box = np.zeros((height, width), bool)
    _box(box, height / 2, width / 2, round(height / 4), round(width / 4))
    return {"squares": squares, "box": box}


def constant_fill(frames: np.ndarray, unknown: np.ndarray) -> np.ndarray:
    """Unknown pixels set to their frame's mean known colour."""
    out = frames.copy()
    for frame, hole in zip(out, unknown):
        frame[hole] = np.round(frame[~hole].mean(axis=0)).astype(np.uint8)
    return out


def _neighbour_sum(v: np.ndarray) -> np.ndarray:
    """Sum of each pixel's 4 neighbours inside the frame, for (N, H, W, C) arrays."""
    padded = np.pad(v, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return padded[:, :-2, 1:-1] + padded[:, 2:, 1:-1] + padded[:, 1:-1, :-2] + padded[:, 1:-1, 2:]


def harmonic_fill(frames: np.ndarray, unknown: np.ndarray) -> np.ndarray:
    """Unknown pixels solved so that each is the mean of its in-frame 4-neighbours.

    The discrete Laplace equation with the known pixels as boundary, per frame and channel
    (what MATLAB's regionfill computes): the smoothest fill that meets the hole's edge.
    Solved by conjugate gradients on the unknown pixels (the system is symmetric positive
    definite wherever a hole touches a known pixel).
    """
    x = frames.astype(np.float64)
    hole = unknown[..., None]
    degree = _neighbour_sum(np.ones_like(x[:1, ..., :1]))
    b = np.where(hole, _neighbour_sum(np.where(hole, 0.0, x)), 0.0)

    def apply(v: np.ndarray) -> np.ndarray:
        return np.where(hole, degree * v - _neighbour_sum(v), 0.0)

    def dot(a: np.ndarray, c: np.ndarray) -> np.ndarray:
        return (a * c).sum(axis=(1, 2), keepdims=True)

    v, r = np.zeros_like(x), b.copy()
    p, rr = r.copy(), dot(r, r)
    stop = CG_TOLERANCE**2 * np.maximum(dot(b, b), 1e-30)
    for _ in range(CG_ITERS):
        if np.all(rr <= stop):
            break
        ap = apply(p)
        alpha = np.divide(rr, dot(p, ap), out=np.zeros_like(rr), where=rr > stop)
        v += alpha * p
        r -= alpha * ap
        rr_next = dot(r, r)
        p = r + np.divide(rr_next, rr, out=np.zeros_like(rr), where=rr > 0) * p
        rr = rr_next
    return np.where(hole, np.clip(np.round(v), 0, 255), x).astype(np.uint8)


def removelogo(frames: np.ndarray, unknown: np.ndarray, fps: Fraction) -> np.ndarray:
    """FFmpeg's removelogo (blurs each hole pixel from the nearest known ones), on RGB
    planes; it reads a fixed mask from an image file, so the mask must be the same in
    every frame."""
    if not (unknown == unknown[:1]).all():
        raise ValueError("removelogo needs the same mask in every frame")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mask.png"
        plane = unknown[0].astype(np.uint8) * 255
        av.VideoFrame.from_ndarray(plane, format="gray").to_image().save(path)
        return filter_video(frames, fps, f"removelogo=f={path}", "gbrp")


FILLS = {"constant": constant_fill, "harmonic": harmonic_fill}


def inpaint_clip(clip: str, frames: np.ndarray, fps: Fraction, quality: int,
                 options: EncodeOptions, anr_dir: Path) -> list[dict]:
    """Rows for one clip: each mask case filled by actinr --mask and by every baseline."""
    n, height, width, _ = frames.shape
    rows = []
    for case, plane in protocol_masks(height, width).items():
        unknown = np.broadcast_to(plane, (n, height, width))
        holed = np.where(unknown[..., None], np.uint8(0), frames)
        common = {"clip": clip, "mask": case, "width": width, "height": height, "frames": n,
                  "masked_fraction": float(plane.mean())}

        def add(method: str, measured: dict, out: np.ndarray, common=common,
                unknown=unknown) -> None:
            rows.append({**common, "method": method, **measured,
                         "psnr_masked": region_psnr(frames, out, unknown),
                         **summarize(frames, out)})

        fills = {**FILLS, "removelogo": lambda f, u: removelogo(f, u, fps)}
        for method, fill in fills.items():
            start = time.perf_counter()
            out = fill(holed, unknown)
            add(method, {"seconds": time.perf_counter() - start}, out)
        measured, decoded = actinr_code(holed, fps, quality, options,
                                        anr_dir / f"{clip}.{case}.q{quality}.anr", mask=unknown)
        add("actinr --mask", measured, decoded)
    return rows
