"""The native fitting kernel: builds tile_mlp.c for this CPU and runs it as an autograd op.

The C kernel computes a step's loss and the gradients of every tile network's weights and
per-frame biases in one pass (see tile_mlp.c). It is compiled once per hidden width with
the system's C compiler, for this machine's instruction set, and cached. Where it cannot
be used (CUDA, an activation other than sine, no compiler) the fit keeps its PyTorch path.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import subprocess
import sys
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from .config import ModelConfig

SOURCE = Path(__file__).with_name("tile_mlp.c")
MAX_DEPTH = 8  # the C kernel's fixed limit
# -fno-trapping-math lets the compiler vectorise the sine's float-to-int rounding.
FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-shared", "-fPIC"]
_lock = threading.Lock()


def cache_dir() -> Path:
    """Where built kernels are kept: $ACTINR_CACHE, else the user's cache directory."""
    if "ACTINR_CACHE" in os.environ:
        return Path(os.environ["ACTINR_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "actinr"


def _cpu_identity() -> str:
    # -march=native code can crash on another CPU, so a cache shared between machines
    # (a network home directory) keys its builds on the CPU's model and feature flags.
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return "\n".join(sorted({ln for ln in lines if ln.startswith(("model name", "flags"))}))
    except OSError:
        return platform.processor() + platform.machine()


def _compiler() -> str:
    return os.environ.get("CC", "cc")


@functools.cache
def library(width: int) -> ctypes.CDLL | None:
    """The kernel built for hidden width ``width``, or None (with a warning) if it cannot
    be built here."""
    if sys.platform == "win32":
        return None
    source = SOURCE.read_bytes()
    key = hashlib.sha256(b"\0".join([source, " ".join(FLAGS).encode(), _compiler().encode(),
                                     _cpu_identity().encode(), str(width).encode()]))
    target = cache_dir() / f"tile_mlp_{width}_{key.hexdigest()[:16]}.so"
    with _lock:
        if not target.exists():
            try:
                _build(width, target)
            except (OSError, subprocess.SubprocessError) as exc:
                detail = getattr(exc, "stderr", None) or exc
                warnings.warn(f"native fitting kernel unavailable ({str(detail).strip()[:200]}); "
                              "fitting with PyTorch", stacklevel=3)
                return None
    lib = ctypes.CDLL(str(target))
    lib.tile_mlp_loss_grad.restype = None
    return lib


def _build(width: int, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename, so that concurrent encoders never load half a file.
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        subprocess.run([_compiler(), *FLAGS, f"-DWIDTH={width}", str(SOURCE), "-o", tmp],
                       check=True, capture_output=True, text=True, timeout=120)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def supported(cfg: ModelConfig, device: torch.device) -> bool:
    """Whether the native kernel can fit this model on this device."""
    return (device.type == "cpu" and cfg.activation == "sine" and cfg.depth <= MAX_DEPTH
            and library(cfg.width) is not None)


def _pointers(tensors: list[torch.Tensor]) -> ctypes.Array:
    return (ctypes.c_void_p * len(tensors))(*[t.data_ptr() for t in tensors])


class _TileLoss(torch.autograd.Function):
    """Mean squared error of the tile networks; its backward returns the kernel's gradients."""

    @staticmethod
    def forward(ctx, coords, target, weight, width, pool, chunks, biases, *weights):
        weights = [w.detach().contiguous() for w in weights]
        biases = biases.detach().contiguous()
        tiles, points, frames = coords.shape[0], coords.shape[1], biases.shape[1]
        # The sampler's (T, 3, F, P) targets are views of (T, P, F, 3) arrays.
        target = target.permute(0, 3, 2, 1).contiguous()
        if weight is None:
            count = float(target.numel())
        else:
            weight = weight[:, 0].transpose(1, 2).contiguous()  # (T, P, F)
            count = max(3.0 * float(weight.sum()), 1.0)
        grad_weights = [torch.empty_like(w) for w in weights]
        grad_biases = torch.empty_like(biases)
        errors = torch.empty(tiles, dtype=torch.float64)
        coords = coords.contiguous()
        args = (ctypes.c_int64(frames), ctypes.c_int64(points), ctypes.c_int64(len(weights) - 1),
                ctypes.c_void_p(coords.data_ptr()), ctypes.c_void_p(target.data_ptr()),
                ctypes.c_void_p(None if weight is None else weight.data_ptr()),
                _pointers(weights), ctypes.c_void_p(biases.data_ptr()), ctypes.c_float(2.0 / count),
                _pointers(grad_weights), ctypes.c_void_p(grad_biases.data_ptr()),
                ctypes.c_void_p(errors.data_ptr()))
        run = library(width).tile_mlp_loss_grad
        bounds = [tiles * k // chunks for k in range(chunks + 1)]
        # ctypes releases the GIL during the call, so the chunks run on separate cores.
        jobs = [pool.submit(run, ctypes.c_int64(a), ctypes.c_int64(b), *args)
                for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        for job in jobs:
            job.result()
        ctx.grads = [grad_biases, *grad_weights]
        return torch.tensor(float(errors.sum()) / count, dtype=coords.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        grads = ctx.grads if bool(grad_out == 1) else [g * grad_out for g in ctx.grads]
        return (None,) * 6 + tuple(grads)


def native_tile_loss(coords: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None,
                     weights: list[torch.Tensor], biases: torch.Tensor, cfg: ModelConfig,
                     pool: ThreadPoolExecutor, chunks: int) -> torch.Tensor:
    """fit.tile_loss computed by the native kernel: the same value, and its gradients.

    The tiles are split into ``chunks`` runs of the kernel on ``pool``.
    """
    return _TileLoss.apply(coords, target, weight, cfg.width, pool, chunks, biases, *weights)
