"""The demo command: a generated natural-looking clip, coded by actinr and by x264 in the
same number of bytes, with pictures that compare them."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import click
import numpy as np
import torch

import actinr_codec as actinr
from actinr_codec.media.videoio import VideoWriter
from actinr_codec.metrics import psnr
from evaluation.baselines import code_within, upscale

from .errors import refuse_overwrite
from .progress import EncodeProgress

WIDTH, HEIGHT, FRAMES, FPS = 128, 96, 16, Fraction(25)
# The camera's pan, in pixels per frame (down, right).
PAN = (0.4, 1.3)
ZOOM = 4
GAP = 4  # white pixels between the pictures of a comparison

OUTPUTS = ("source.mkv", "demo.anr", "compare.png", "slowmo.png", "zoom4x.png",
           "scale2.mp4", "slowmo2.mp4")


def generated_clip(times: list[float], height: int = HEIGHT, width: int = WIDTH,
                   seed: int = 0) -> np.ndarray:
    """A camera panning over a generated landscape, at any frame times (fractional ones
    too), as (N, H, W, 3) uint8.

    The landscape is colour noise with about the amplitude spectrum of natural images
    (1/f^1.25: their 1/f, a little smoother): a luminance field and two fainter colour
    fields. A frame at time t is the landscape
    shifted by t x PAN, exactly (a phase ramp of its spectrum), so that the true picture
    between two frames is known and slow motion can be scored against it.
    """
    rng = np.random.default_rng(seed)
    size = (2 * height, 2 * width)  # periodic: twice the frame, so the pan never wraps
    fy, fx = np.fft.fftfreq(size[0])[:, None], np.fft.fftfreq(size[1])[None, :]
    radius = np.hypot(fy, fx)
    radius[0, 0] = np.inf  # no mean: the brightness is set below
    fields = [np.fft.fft2(rng.standard_normal(size)) / radius ** 1.25 for _ in range(3)]
    # Luminance, and two colour differences at a quarter of its contrast.
    mixing = np.array([[1.0, 0.25, 0.0], [1.0, -0.15, 0.18], [1.0, -0.07, -0.3]])

    def view(t: float) -> np.ndarray:
        """The whole periodic landscape shifted by t x PAN."""
        phase = np.exp(-2j * np.pi * (fy * PAN[0] * t + fx * PAN[1] * t))
        return np.stack([np.fft.ifft2(f * phase).real for f in fields], axis=-1) @ mixing.T

    # One mapping to 8 bits for every time, from the whole landscape, which a shift keeps.
    scale = 0.2 / np.std(view(0.0))
    video = np.stack([view(t)[:height, :width] for t in times])
    return np.clip((video * scale + 0.45) * 255 + 0.5, 0, 255).astype(np.uint8)


def side_by_side(pictures: list[np.ndarray]) -> np.ndarray:
    """Pictures of one height in a row, GAP white pixels apart."""
    gap = np.full((pictures[0].shape[0], GAP, 3), 255, np.uint8)
    row = [pictures[0]]
    for picture in pictures[1:]:
        row += [gap, picture]
    return np.concatenate(row, axis=1)


def write_png(path: Path, rgb: np.ndarray) -> None:
    with av.open(str(path), "w", format="image2", options={"update": "1"}) as container:
        stream = container.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = rgb.shape[1], rgb.shape[0], "rgb24"
        container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return psnr(torch.from_numpy(a).float() / 255, torch.from_numpy(b).float() / 255)


def run_demo(outdir: Path, preset: str, iters: int | None = None,
             overwrite: bool = False) -> None:
    """Write the demo's files (OUTPUTS) into outdir; files already there are replaced
    only with ``overwrite``, as every other output of the command."""
    for name in OUTPUTS:
        refuse_overwrite(outdir / name, overwrite)
    outdir.mkdir(parents=True, exist_ok=True)
    clip = generated_clip(list(range(FRAMES)))
    n, h, w, _ = clip.shape
    source = outdir / "source.mkv"
    with VideoWriter(source, w, h, FPS, lossless=True) as writer:
        for frame in clip:
            writer.write(frame)
    anr = outdir / "demo.anr"
    progress = EncodeProgress()
    actinr.encode(clip, anr, actinr.EncodeOptions(preset=preset, iters=iters), fps=FPS,
                  progress=progress)
    progress.finish()
    size = anr.stat().st_size
    mid = n // 2
    with actinr.open(anr) as video:
        decoded = video.render()
        between = video.frame(mid + 0.5)
        zoomed = video.frame(mid, scale=ZOOM)
    x264 = code_within(clip, FPS, size)
    truth = generated_clip([mid + 0.5])[0]
    crop = (slice(h // 4, h // 4 + h // 2), slice(w // 4, w // 4 + w // 2))
    big = (slice(crop[0].start * ZOOM, crop[0].stop * ZOOM),
           slice(crop[1].start * ZOOM, crop[1].stop * ZOOM))
    pictures = {"compare.png": [clip[mid], decoded[mid]],
                "slowmo.png": [truth, between], "zoom4x.png": [zoomed[big]]}
    lines = [f"  actinr      {anr}: {size} bytes, {size * 8 / (w * h * n):.3f} bpp, "
             f"PSNR {_psnr(decoded, clip):.2f} dB"]
    slow = f"actinr {_psnr(between, truth):.2f} dB"
    if x264 is None:
        lines.append("  x264        needs more bytes than actinr's file even at crf 51")
    else:
        crf, x264_size, x264_decoded = x264
        # Slow motion and zoom as a user of x264 would get them: blending two decoded
        # frames, and a Lanczos upscale.
        blend = ((x264_decoded[mid].astype(np.uint16) + x264_decoded[mid + 1] + 1) // 2
                 ).astype(np.uint8)
        x264_zoomed = upscale(x264_decoded[mid:mid + 1], h * ZOOM, w * ZOOM, "lanczos")[0]
        pictures["compare.png"].append(x264_decoded[mid])
        pictures["slowmo.png"].append(blend)
        pictures["zoom4x.png"].append(x264_zoomed[big])
        lines.append(f"  x264 crf {crf:<2} {x264_size} bytes (medium, yuv420p), "
                     f"PSNR {_psnr(x264_decoded, clip):.2f} dB")
        slow += f", x264 + blend {_psnr(blend, truth):.2f} dB"
    for name, row in pictures.items():
        write_png(outdir / name, side_by_side(row))
    scale2, slowmo2 = outdir / "scale2.mp4", outdir / "slowmo2.mp4"
    actinr.decode(anr, scale2, scale=2.0)
    actinr.decode(anr, slowmo2, fps_scale=2.0)
    click.echo(f"demo: {n} frames {w}x{h}, a camera panning over a generated landscape "
               f"({source})")
    for line in lines:
        click.echo(line)
    click.echo(f"  {outdir / 'compare.png'}  frame {mid}: original | actinr | x264, same bytes")
    click.echo(f"  {outdir / 'slowmo.png'}   time {mid + 0.5}, between two frames: true "
               f"picture | actinr | x264 + blend ({slow})")
    click.echo(f"  {outdir / 'zoom4x.png'}   frame {mid}, centre at 4x: actinr --scale 4 | "
               f"x264 + lanczos")
    click.echo(f"  {scale2} (2x scale), {slowmo2} (2x slow motion)")
