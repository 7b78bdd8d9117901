"""Bjontegaard deltas between two rate-distortion curves, with an overlap check.

BD-rate is the mean difference of log10(rate) over the PSNR range both curves cover, as a
percentage (negative: the test codec needs fewer bits for the same PSNR); BD-PSNR is the
mean PSNR difference over the shared log-rate range. Both curves are interpolated with
piecewise cubic Hermite polynomials (pchip) by the ``bjontegaard`` package.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from . import require

# Below this share of the narrower curve's range the deltas are extrapolation in all but name.
MIN_OVERLAP = 0.5


def overlap(a: list[float], b: list[float]) -> float:
    """Length of the intersection of two value ranges (each of nonzero width) over the
    length of the narrower one: 1 when one range holds the other, 0 when they are apart."""
    shared = min(max(a), max(b)) - max(min(a), min(b))
    return max(0.0, shared) / min(max(a) - min(a), max(b) - min(b))


def _problem(name: str, rates: list[float], psnrs: list[float]) -> str | None:
    """Why a curve cannot enter a Bjontegaard integral, or None."""
    if len(rates) != len(psnrs) or len(rates) < 2:
        return f"{name} needs at least two rate-distortion points"
    if not all(r > 0 and math.isfinite(r) for r in rates):
        return f"{name} has a rate that is not positive"
    if len(set(rates)) < len(rates) or len(set(psnrs)) < len(psnrs):
        return f"{name} repeats a rate or a PSNR value"
    return None


def bd_delta(anchor_rates: list[float], anchor_psnrs: list[float],
             test_rates: list[float], test_psnrs: list[float]) -> dict:
    """BD-rate (%) and BD-PSNR (dB) of the test curve against the anchor.

    Returns bd_rate and bd_psnr (None where they cannot be computed), the PSNR and
    log-rate overlaps, and ``warning``: a sentence when a result is missing, comes from
    curves overlapping less than MIN_OVERLAP, or from a curve whose PSNR does not rise
    with rate.
    """
    result = {"bd_rate": None, "bd_psnr": None, "psnr_overlap": None, "rate_overlap": None,
              "warning": None}
    problem = (_problem("anchor", anchor_rates, anchor_psnrs)
               or _problem("test", test_rates, test_psnrs))
    if problem:
        result["warning"] = problem
        return result
    result["psnr_overlap"] = overlap(anchor_psnrs, test_psnrs)
    result["rate_overlap"] = overlap(np.log10(anchor_rates).tolist(),
                                     np.log10(test_rates).tolist())
    notes = []
    for name, rates, psnrs in (("anchor", anchor_rates, anchor_psnrs),
                               ("test", test_rates, test_psnrs)):
        order = np.argsort(rates)
        if np.any(np.diff(np.asarray(psnrs)[order]) <= 0):
            notes.append(f"{name} PSNR does not rise with rate")
    bj = require("bjontegaard")
    # (function, overlap key, its axis, the point column pchip needs increasing)
    deltas = {"bd_rate": (bj.bd_rate, "psnr_overlap", "PSNR", 1),
              "bd_psnr": (bj.bd_psnr, "rate_overlap", "rate", 0)}
    # The package warns on its own overlap measure (over the union of the ranges); ours
    # is reported in the result instead.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for key, (fn, shared, axis, column) in deltas.items():
            if result[shared] == 0:
                notes.append(f"curves share no {axis} range, so {key} is undefined")
                continue
            if result[shared] < MIN_OVERLAP:
                notes.append(f"curves share only {result[shared]:.0%} of the narrower "
                             f"{axis} range, so {key} is unreliable")
            anchor = sorted(zip(anchor_rates, anchor_psnrs), key=lambda p: p[column])
            test = sorted(zip(test_rates, test_psnrs), key=lambda p: p[column])
            result[key] = float(fn(*zip(*anchor), *zip(*test), method="pchip",
                                   require_matching_points=False, min_overlap=0))
    result["warning"] = "; ".join(notes) or None
    return result


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def bd_table(points: list[dict], test: str = "actinr",
             metrics: tuple[str, ...] = ("psnr_yuv420", "psnr_rgb", "psnr_yuv")) -> list[dict]:
    """Deltas of ``test`` against every other codec in ``points``, per clip and metric,
    then their mean over the clips (clip "mean") where defined."""
    clips = list(dict.fromkeys(p["clip"] for p in points))
    anchors = [c for c in dict.fromkeys(p["codec"] for p in points) if c != test]

    def curve(clip: str, codec: str, metric: str) -> tuple[list[float], list[float]]:
        chosen = [p for p in points if p["clip"] == clip and p["codec"] == codec]
        return [p["bpp"] for p in chosen], [p[metric] for p in chosen]

    rows = []
    for anchor in anchors:
        for metric in metrics:
            per_clip = [{"clip": clip, "anchor": anchor, "test": test, "metric": metric,
                         **bd_delta(*curve(clip, anchor, metric), *curve(clip, test, metric))}
                        for clip in clips]
            rows += per_clip
            mean, notes = {"clip": "mean", "anchor": anchor, "test": test, "metric": metric}, []
            for key in ("bd_rate", "bd_psnr"):
                mean[key] = _mean([r[key] for r in per_clip])
                counted = sum(r[key] is not None for r in per_clip)
                if counted < len(clips):
                    notes.append(f"{key} defined for {counted} of {len(clips)} clips")
            rows.append({**mean, "warning": "; ".join(notes) or None})
    return rows
