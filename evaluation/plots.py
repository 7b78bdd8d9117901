"""PNG figures of the results: PSNR against bpp per clip, restoration PSNR per method, and
one restored frame per method side by side."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from . import require
from .baselines import DECODED_INPUT
from .report import atomic_write

if TYPE_CHECKING:
    import numpy as np


def _figure(width: float, height: float):
    """A matplotlib figure drawn by Agg, independent of pyplot's global backend."""
    require("matplotlib")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=120, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic_write(path, buffer.getvalue())


def plot_rd(path: Path, clip: str, points: list[dict]) -> None:
    """PSNR-RGB against bpp, one line per codec, each point labelled with its setting."""
    figure = _figure(6.4, 4.8)
    axes = figure.add_subplot()
    for codec in dict.fromkeys(p["codec"] for p in points):
        curve = sorted((p for p in points if p["codec"] == codec), key=lambda p: p["bpp"])
        label = "actinr (quality)" if codec == "actinr" else f"{codec} (crf)"
        axes.plot([p["bpp"] for p in curve], [p["psnr_rgb"] for p in curve], "o-", label=label)
        for p in curve:
            axes.annotate(str(p["setting"]), (p["bpp"], p["psnr_rgb"]), fontsize=7,
                          textcoords="offset points", xytext=(3, 3))
    first = points[0]
    axes.set_title(f"{clip}: {first['width']}x{first['height']}, {first['frames']} frames")
    axes.set_xlabel("bits per pixel")
    axes.set_ylabel("PSNR-RGB (dB)")
    axes.grid(alpha=0.3)
    axes.legend()
    _save(figure, path)


def _bar_colour(method: str) -> str:
    """actinr red, the filters on actinr's 1x decode light red, the others grey."""
    return ("tab:red" if method == "actinr"
            else "lightcoral" if method.startswith(DECODED_INPUT) else "tab:gray")


def plot_restore(path: Path, clip: str, rows: list[dict]) -> None:
    """One panel per restoration task: PSNR-RGB of each method, actinr first."""
    tasks = list(dict.fromkeys((r["task"], r["scale"], r["step"]) for r in rows))
    figure = _figure(3.2 * len(tasks) + 1, 4.2)
    panels = figure.subplots(1, len(tasks), squeeze=False)[0]
    for axes, (task, scale, step) in zip(panels, tasks):
        chosen = [r for r in rows if (r["task"], r["scale"], r["step"]) == (task, scale, step)]
        names = [r["method"] for r in chosen]
        bars = axes.barh(names, [r["psnr_rgb"] for r in chosen],
                         color=[_bar_colour(n) for n in names])
        axes.bar_label(bars, fmt="%.2f", fontsize=7, padding=2)
        axes.invert_yaxis()
        axes.set_title(f"{task}: {scale}x size, {step}x frames", fontsize=9)
        axes.set_xlabel("PSNR-RGB (dB)")
        low = min(r["psnr_rgb"] for r in chosen)
        axes.set_xlim(max(0.0, low - 3), max(r["psnr_rgb"] for r in chosen) + 1)
    figure.suptitle(clip)
    _save(figure, path)


# The most of a frame plot_pictures shows, (height, width): large frames' centres, so
# that a row of methods stays a small file and each pixel stays visible.
PICTURE_CROP = (180, 240)


def plot_pictures(path: Path, title: str, pictures: list[tuple[str, np.ndarray]]) -> None:
    """Labelled RGB images in a row, the centre PICTURE_CROP of each, drawn at its own
    pixels (nearest-neighbour, no smoothing that would hide a method's artefacts)."""
    full_h, full_w = pictures[0][1].shape[:2]
    height, width = min(full_h, PICTURE_CROP[0]), min(full_w, PICTURE_CROP[1])
    top, left = (full_h - height) // 2, (full_w - width) // 2
    pictures = [(label, image[top:top + height, left:left + width])
                for label, image in pictures]
    if (height, width) != (full_h, full_w):
        title += f" (centre {width}x{height} of {full_w}x{full_h})"
    scale = max(1.0, 240 / height)  # small clips drawn larger, every pixel still square
    figure = _figure(len(pictures) * width * scale / 120 + 0.2, height * scale / 120 + 0.5)
    for axes, (label, image) in zip(figure.subplots(1, len(pictures), squeeze=False)[0],
                                    pictures):
        axes.imshow(image, interpolation="nearest")
        axes.set_title(label, fontsize=8)
        axes.set_axis_off()
    figure.suptitle(title, fontsize=9)
    _save(figure, path)


def plot_presets(path: Path, clip: str, series: dict[str, list[dict]]) -> None:
    """PSNR against encode seconds, one line per series (a code version), a point per preset."""
    figure = _figure(6.4, 4.8)
    axes = figure.add_subplot()
    for name, runs in series.items():
        runs = sorted(runs, key=lambda r: r["encode_s"])
        axes.plot([r["encode_s"] for r in runs], [r["psnr"] for r in runs], "o-", label=name)
        for r in runs:
            axes.annotate(f"{r['preset']} {r['bpp']:.2f} bpp", (r["encode_s"], r["psnr"]),
                          fontsize=7, textcoords="offset points", xytext=(3, -9))
    axes.set_xscale("log")
    axes.set_xlabel("encode wall time (s)")
    axes.set_ylabel("PSNR of the decoded video (dB)")
    axes.set_title(f"{clip}: quality against encode time per preset")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    _save(figure, path)
