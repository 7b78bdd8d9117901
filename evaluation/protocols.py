"""The evaluation protocols: rate-distortion sweeps, slow motion and super-resolution.

Each returns plain dicts (one per point) holding what was measured and the settings that
produced it. actinr runs through the library and the CLI's own encode and render paths;
its rate always comes from the .anr file written to disk.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

import actinr_codec as actinr
from actinr_codec.metrics import frame_psnrs
from actinr_codec.pipeline.options import EncodeOptions

from . import baselines
from .quality import summarize


def actinr_code(frames: np.ndarray, fps: Fraction, quality: int, options: EncodeOptions,
                path: Path, scale: int = 1, fps_scale: int = 1, denoise: float | None = None,
                mask: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
    """Encode frames into ``path``, then load it and render as ``actinr decode`` would.

    Returns the rate, timings and settings, and the decoded frames (at ``scale`` times
    the size and ``fps_scale`` times the frames, like --scale and --fps-scale).
    denoise and mask: as ``actinr encode --denoise LEVEL --mask``, the level in 8-bit
    levels and the mask (N, H, W) bool, True where unknown.
    """
    n, height, width, _ = frames.shape
    encoded = actinr.encode(frames, path, dataclasses.replace(options, quality=quality,
                                                              denoise=denoise),
                            fps=fps, mask=mask)
    start = time.perf_counter()
    with actinr.open(path, options.device, threads=options.threads) as video:
        times, _ = video.times(fps_scale=fps_scale if fps_scale > 1 else None)
        decoded = video.render(times, scale=scale)
    decode_s = time.perf_counter() - start
    nbytes = path.stat().st_size
    return {
        "bytes": nbytes, "bpp": nbytes * 8 / (width * height * n),
        "encode_s": encoded.seconds, "decode_s": decode_s,
        "settings": {"codec": "actinr", **dataclasses.asdict(options), "quality": quality,
                     "file": path.name,
                     "gop_iters": [r.stats.iters for r in encoded.gops],
                     "encoder": dataclasses.asdict(encoded.plan.settings)},
    }, decoded


def rd_clip(clip: str, frames: np.ndarray, fps: Fraction, qualities: list[int],
            crfs: list[int], codecs: list[str], options: EncodeOptions,
            anr_dir: Path, keyint: int | None = None) -> list[dict]:
    """Rate-distortion points of actinr at each quality and each baseline at each crf.

    keyint: the baselines' GOP length; None for their own default (250, scene cuts on).
    """
    n, height, width, _ = frames.shape
    points = []

    def add(codec: str, setting: int, measured: dict, decoded: np.ndarray,
            planes: list | None = None) -> None:
        points.append({"clip": clip, "codec": codec, "setting": setting, "width": width,
                       "height": height, "frames": n, **measured,
                       **summarize(frames, decoded, planes)})

    # Baselines first: they are quick, and fail early on frames they cannot code.
    for codec in codecs:
        for crf in crfs:
            settings = baselines.codec_settings(codec, crf, keyint)
            nbytes, decoded, encode_s, decode_s, planes = baselines.code(frames, settings, fps)
            add(codec, crf, {"bytes": nbytes, "bpp": nbytes * 8 / (width * height * n),
                             "encode_s": encode_s, "decode_s": decode_s,
                             "settings": settings}, decoded, planes)
    for quality in qualities:
        measured, decoded = actinr_code(frames, fps, quality, options,
                                        anr_dir / f"{clip}.q{quality}.anr")
        add("actinr", quality, measured, decoded)
    return points


@dataclass
class Shown:
    """One frame of a restoration task as the original has it and as each method made it
    (people judge interpolation by eye): its index and (label, RGB image) pairs."""

    frame: int
    pictures: list[tuple[str, np.ndarray]]


def downscale_area(frames: np.ndarray, factor: int) -> np.ndarray:
    """Mean of each factor x factor block (area resampling); sizes must be multiples."""
    n, h, w, c = frames.shape
    blocks = frames.reshape(n, h // factor, factor, w // factor, factor, c)
    return np.round(blocks.mean(axis=(2, 4))).astype(np.uint8)


def _baseline_restorations(low: np.ndarray, scale: int, step: int, fps: Fraction,
                           height: int, width: int):
    """(name, seconds, restored frames) of every upscaler and interpolator combination.

    Upscaling comes first, so that minterpolate estimates motion at full resolution.
    """
    spatial = baselines.UPSCALERS if scale > 1 else {"": None}
    temporal = {"repeat": baselines.repeat_frames, "blend": baselines.blend_frames,
                "minterpolate": lambda f, k: baselines.minterpolate(f, k, fps)}
    for up in spatial:
        for interp, fn in (temporal.items() if step > 1 else [("", None)]):
            start = time.perf_counter()
            out = baselines.upscale(low, height, width, up) if up else low
            out = fn(out, step) if fn else out
            yield "+".join(filter(None, (up, interp))), time.perf_counter() - start, out


def restore_clip(clip: str, frames: np.ndarray, fps: Fraction, scale: int, step: int,
                 quality: int, options: EncodeOptions, anr_dir: Path
                 ) -> tuple[list[dict], Shown]:
    """One restoration task: keep every ``step``-th frame at 1/``scale`` of the size,
    encode that with actinr, decode at --scale ``scale`` and --fps-scale ``step``, and
    compare with the originals; the baselines restore the same low-resolution frames.

    The frames are cut to whole multiples: the height and width to multiples of ``scale``,
    the count to 1 + a multiple of ``step``. Slow motion scores only the dropped frames.
    Returns a row per method, and the middle scored frame as each method made it.
    """
    n = (len(frames) - 1) // step * step + 1
    height, width = frames.shape[1] // scale * scale, frames.shape[2] // scale * scale
    if scale == step == 1 or (step > 1 and n < 2) or not (height and width):
        raise ValueError(f"{clip}: nothing to restore at scale {scale}, step {step} "
                         f"from {len(frames)} frames of {frames.shape[2]}x{frames.shape[1]}")
    truth = frames[:n, :height, :width]
    low = downscale_area(truth[::step], scale) if scale > 1 else truth[::step]
    scored = [j for j in range(n) if j % step] if step > 1 else list(range(n))
    task = "combined" if scale > 1 and step > 1 else "superres" if scale > 1 else "slowmo"
    common = {"clip": clip, "task": task, "scale": scale, "step": step,
              "width": width, "height": height, "frames_scored": len(scored)}
    path = anr_dir / f"{clip}.{task}.s{scale}.k{step}.anr"
    measured, decoded = actinr_code(low, fps / step, quality, options, path,
                                    scale=scale, fps_scale=step)
    if scale == 1:
        coded = decoded[::step]
    else:
        with actinr.open(path, options.device, threads=options.threads) as video:
            coded = video.render()
    # How faithfully actinr holds the frames it was given: restored frames and pixels are
    # bounded by it, while the baselines start from those frames uncompressed.
    coded_psnr = float(np.mean(frame_psnrs(torch.from_numpy(low).double() / 255,
                                           torch.from_numpy(coded).double() / 255)))
    rows = [{**common, "method": "actinr", **measured, "coded_psnr_rgb": coded_psnr,
             **summarize(truth[scored], decoded[scored])}]
    shown_index = scored[len(scored) // 2]
    shown = Shown(shown_index, [("original", truth[shown_index]),
                                ("actinr", decoded[shown_index])])

    def baseline_rows(source: np.ndarray, prefix: str, **extra):
        """(row, the shown frame) of every baseline restoring source."""
        for method, seconds, restored in _baseline_restorations(source, scale, step, fps / step,
                                                                height, width):
            yield ({**common, "method": prefix + method, "seconds": seconds, **extra,
                    **summarize(truth[scored], restored[scored])}, restored[shown_index])

    def add_best_shown(pairs: list) -> None:
        """Rows for every baseline of ``pairs``, and the picture of the best of them."""
        rows.extend(row for row, _ in pairs)
        best, picture = max(pairs, key=lambda pair: pair[0]["psnr_rgb"])
        shown.pictures.append((best["method"], picture))

    for row, picture in baseline_rows(low, ""):
        rows.append(row)
        shown.pictures.append((row["method"], picture))
    # The same filters on actinr's own 1x decode: what a user gets who decodes at 1x and
    # runs FFmpeg, from the information actinr coded. Against these rows actinr's
    # restoration is judged as a method; against the rows above it also pays its coding
    # loss. The picture shows the best of them.
    add_best_shown(list(baseline_rows(coded, f"{baselines.DECODED_INPUT}+")))
    # What a user would otherwise do with the same bytes: x264 in no more than actinr's
    # file, decoded, then slowed or upscaled by the same filters.
    within = baselines.code_within(low, fps / step, measured["bytes"])
    if within is not None:
        crf, nbytes, x264_decoded = within
        add_best_shown(list(baseline_rows(x264_decoded, f"{baselines.EQUAL_BYTES}+", crf=crf,
                                          bytes=nbytes, bpp=nbytes * 8 / low[..., 0].size)))
    return rows, shown
