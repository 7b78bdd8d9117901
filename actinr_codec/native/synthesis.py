"""Rendering a frame from latent grids in C (synthesis.c): bicubic upsampling of every grid
to full size, the synthesis network, residual 3x3 refinement. PyTorch is the reference
(tests/test_native_synthesis.py) and the fallback where no C compiler is.
"""

from __future__ import annotations

import ctypes
import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import build

SOURCE = Path(__file__).with_name("synthesis.c")
FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-shared", "-fPIC"]
MAX_LEVELS = 16
MAX_HIDDEN = 64
TAPS = 4
# Bicubic convolution's parameter, as PyTorch's and OpenCV's bicubic interpolation use it.
CUBIC_A = -0.75

_P = ctypes.c_void_p


class _Synthesis(ctypes.Structure):
    _fields_ = [("levels", ctypes.c_int64), ("height", ctypes.c_int64),
                ("width", ctypes.c_int64), ("grid_h", _P), ("grid_w", _P), ("grids", _P),
                ("row_taps", _P), ("col_taps", _P), ("row_weights", _P),
                ("col_weights", _P), ("layers", ctypes.c_int64), ("widths", _P),
                ("weights", _P), ("biases", _P), ("first_bias", _P),
                ("refine_layers", ctypes.c_int64), ("refine_weights", _P),
                ("refine_biases", _P), ("threads", ctypes.c_int64)]


@dataclass(frozen=True)
class Synthesis:
    """The networks that turn latent grids into pixels: linear layers (weights (out, in),
    biases (out,)) with ReLUs between, the last giving RGB, then residual 3x3 convolutions
    over RGB (weights (3, 3, 3, 3), biases (3,)) with ReLUs between."""

    layers: tuple[tuple[np.ndarray, np.ndarray], ...]
    refine: tuple[tuple[np.ndarray, np.ndarray], ...] = ()


def bicubic_taps(n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Bicubic interpolation from n samples to size, as PyTorch's (align_corners=False,
    edges repeated): per output, TAPS source indices (int32) and weights (float32)."""
    src = (np.arange(size) + 0.5) * (n / size) - 0.5
    base = np.floor(src)
    t = (src - base)[:, None]
    d = np.abs(np.arange(-1, 3)[None] - t)  # distances to the four taps
    a = CUBIC_A
    weights = np.where(d <= 1, ((a + 2) * d - (a + 3)) * d * d + 1,
                       ((a * d - 5 * a) * d + 8 * a) * d - 4 * a)
    index = np.clip(base[:, None].astype(np.int64) + np.arange(-1, 3)[None], 0, n - 1)
    return index.astype(np.int32), weights.astype(np.float32)


def check(net: Synthesis, levels: int, first_bias: np.ndarray | None) -> list[int]:
    """The network's widths, levels first, after checking that its shapes chain and fit
    the renderer's limits (C reads them as they are)."""
    widths = [levels] + [np.shape(w)[0] for w, _ in net.layers]
    shapes_chain = all(np.shape(w) == (o, i) and np.shape(b) == (o,)
                       for (w, b), i, o in zip(net.layers, widths, widths[1:]))
    refine_fits = all(np.shape(w) == (3, 3, 3, 3) and np.shape(b) == (3,) for w, b in net.refine)
    bias_fits = first_bias is None or (len(widths) > 1 and np.shape(first_bias) == (widths[1],))
    if (not net.layers or not 1 <= levels <= MAX_LEVELS or max(widths[1:]) > MAX_HIDDEN
            or widths[-1] != 3 or not (shapes_chain and refine_fits and bias_fits)):
        raise ValueError(f"synthesis of widths {widths} does not chain or is beyond the "
                         "renderer's limits")
    return widths


@functools.cache
def library() -> ctypes.CDLL | None:
    """The C renderer, or None (with a warning) where it cannot be built."""
    lib = build.optional("synthesis", [SOURCE], [], FLAGS, "native synthesis",
                         "rendering latents with PyTorch")
    if lib is None:
        return None
    lib.latent_render.restype = ctypes.c_int64
    lib.latent_render.argtypes = [ctypes.POINTER(_Synthesis), ctypes.c_void_p]
    return lib


def render(grids: list[np.ndarray], net: Synthesis, first_bias: np.ndarray | None = None,
           size: tuple[int, int] | None = None, threads: int | None = None) -> np.ndarray:
    """(H, W, 3) float32 RGB, unclipped, from grids at halving resolutions: at the first
    grid's size, or at ``size`` (H, W), every grid interpolated to it (super-resolution);
    on ``threads`` threads, by default one per core."""
    widths = check(net, len(grids), first_bias)
    lib = library()
    if lib is None:
        return render_torch(grids, net, first_bias, size)
    height, width = size or grids[0].shape
    keep = []  # every array handed to C, alive until the call returns

    def ptr(a: np.ndarray, dtype) -> int:
        keep.append(np.ascontiguousarray(a, dtype))
        return keep[-1].ctypes.data

    def ptrs(arrays: list[np.ndarray | None], dtype) -> int:
        table = (ctypes.c_void_p * max(1, len(arrays)))(
            *[None if a is None else ptr(a, dtype) for a in arrays])
        keep.append(table)
        return ctypes.addressof(table)

    # A grid at the output's size is copied (C reads a null pointer as "no taps").
    same = [g.shape == (height, width) for g in grids]
    rows = [(None, None) if k else bicubic_taps(g.shape[0], height) for g, k in zip(grids, same)]
    cols = [(None, None) if k else bicubic_taps(g.shape[1], width) for g, k in zip(grids, same)]
    args = _Synthesis(
        len(grids), height, width, ptr([g.shape[0] for g in grids], np.int64),
        ptr([g.shape[1] for g in grids], np.int64), ptrs(grids, np.float32),
        ptrs([i for i, _ in rows], np.int32), ptrs([i for i, _ in cols], np.int32),
        ptrs([w for _, w in rows], np.float32), ptrs([w for _, w in cols], np.float32),
        len(net.layers), ptr(widths, np.int64), ptrs([w for w, _ in net.layers], np.float32),
        ptrs([b for _, b in net.layers], np.float32),
        None if first_bias is None else ptr(first_bias, np.float32), len(net.refine),
        ptr(np.concatenate([w.ravel() for w, _ in net.refine] or [np.zeros(0)]), np.float32),
        ptr(np.concatenate([b.ravel() for _, b in net.refine] or [np.zeros(0)]), np.float32),
        threads or os.cpu_count() or 1)
    out = np.empty((3, height, width), np.float32)
    if lib.latent_render(ctypes.byref(args), out.ctypes.data):
        raise MemoryError("native synthesis ran out of memory")
    return out.transpose(1, 2, 0)


@torch.no_grad()
def render_torch(grids: list[np.ndarray], net: Synthesis, first_bias: np.ndarray | None = None,
                 size: tuple[int, int] | None = None) -> np.ndarray:
    """The same frame computed with PyTorch's own operations."""
    height, width = size or grids[0].shape
    stack = torch.cat([
        F.interpolate(torch.from_numpy(np.asarray(g, np.float32))[None, None],
                      size=(height, width), mode="bicubic", align_corners=False)
        for g in grids], dim=1)
    x = stack[0].permute(1, 2, 0)
    for k, (w, b) in enumerate(net.layers):
        x = x @ torch.from_numpy(np.asarray(w, np.float32)).T + torch.from_numpy(
            np.asarray(b, np.float32))
        if k == 0 and first_bias is not None:
            x = x + torch.from_numpy(np.asarray(first_bias, np.float32))
        if k < len(net.layers) - 1:
            x = torch.relu(x)
    x = x.permute(2, 0, 1)[None]
    for k, (w, b) in enumerate(net.refine):
        x = x + F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"),
                         torch.from_numpy(np.asarray(w, np.float32)),
                         torch.from_numpy(np.asarray(b, np.float32)))
        if k < len(net.refine) - 1:
            x = torch.relu(x)
    return x[0].permute(1, 2, 0).numpy()
