"""The denoising protocol: actinr --denoise against tuned FFmpeg denoisers on noisy clips.

The noise is the ActINR paper code's Poisson-Gaussian model on x in [0, 1], per channel:
y = (Poisson(30 x) + N(0, 1)) / 30, seeded, then rounded and clipped to 8 bits, since an
encoder reads 8-bit video. Everything is scored against the clean clip.
"""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from actinr_codec.pipeline.options import EncodeOptions
from actinr_codec.restoration.noise import estimate_noise

from .baselines import filter_video
from .protocols import actinr_code
from .quality import summarize

PHOTONS = 30.0
READ_NOISE = 1.0
# FFmpeg denoisers and the strengths each is tried at (100 is fftdnoiz's maximum); the
# best against the clean clip is reported. hqdn3d is GPL and missing from PyAV's FFmpeg
# build, so fftdnoiz (3D FFT shrinkage over the previous, current and next frame) stands
# in as the spatio-temporal one. Both run on yuv444p, where they denoise better than on
# RGB planes.
DENOISERS = {
    "nlmeans": ("nlmeans=s={}", (2, 4, 6, 8, 12, 16, 24)),
    "fftdnoiz": ("fftdnoiz=sigma={}:prev=1:next=1", (5, 10, 20, 30, 40, 60, 80, 100)),
}


def add_noise(frames: np.ndarray, seed: int) -> np.ndarray:
    """The protocol's Poisson-Gaussian noise on (N, H, W, 3) uint8 frames, back in uint8."""
    rng = np.random.default_rng(seed)
    x = frames / 255.0
    y = (rng.poisson(PHOTONS * x) + rng.normal(0.0, READ_NOISE, x.shape)) / PHOTONS
    return np.clip(np.round(y * 255), 0, 255).astype(np.uint8)


def tuned_filter(name: str, clean: np.ndarray, noisy: np.ndarray, fps: Fraction
                 ) -> tuple[str, float, np.ndarray, list[dict]]:
    """The best setting of one denoiser against the clean clip: (spec, seconds of that
    setting, its output, the sweep as [{setting, psnr_rgb}])."""
    template, strengths = DENOISERS[name]
    best, sweep = None, []
    for strength in strengths:
        spec = template.format(strength)
        start = time.perf_counter()
        out = filter_video(noisy, fps, spec)
        seconds = time.perf_counter() - start
        score = summarize(clean, out)["psnr_rgb"]
        sweep.append({"setting": spec, "psnr_rgb": score})
        if best is None or score > best[0]:
            best = (score, spec, seconds, out)
    return best[1], best[2], best[3], sweep


def denoise_clip(clip: str, clean: np.ndarray, fps: Fraction, quality: int,
                 options: EncodeOptions, anr_dir: Path, seed: int, plain: bool = True
                 ) -> list[dict]:
    """Rows for one clip: the noisy input, each tuned denoiser, actinr --denoise with the
    noise level it estimates, and (with ``plain``) actinr without --denoise."""
    noisy = add_noise(clean, seed)
    true_rms = float(np.sqrt(np.mean((noisy / 255.0 - clean / 255.0) ** 2))) * 255
    estimated = float(np.sqrt(np.mean(estimate_noise(noisy) ** 2))) * 255
    n, height, width, _ = clean.shape
    common = {"clip": clip, "width": width, "height": height, "frames": n, "noise_seed": seed,
              "noise_rms": true_rms, "noise_estimated": estimated}
    rows = [{**common, "method": "noisy", **summarize(clean, noisy)}]
    for name in DENOISERS:
        spec, seconds, out, sweep = tuned_filter(name, clean, noisy, fps)
        rows.append({**common, "method": name, "setting": spec, "seconds": seconds,
                     "sweep": sweep, **summarize(clean, out)})
    runs = [("actinr --denoise", estimated, "denoise")] + [("actinr", None, "plain")] * plain
    for method, level, tag in runs:
        measured, decoded = actinr_code(noisy, fps, quality, options,
                                        anr_dir / f"{clip}.{tag}.q{quality}.anr", denoise=level)
        rows.append({**common, "method": method, **measured, **summarize(clean, decoded)})
    return rows
