"""The native kernel: builds tile_mlp.c for this CPU and runs its fitting step as an
autograd op and its forward pass for rendering.

The C kernel computes a fitting step's loss and the gradient of every model parameter in
one pass: tile networks and bias network (see tile_mlp.c and bias_net.c). It is compiled
once per hidden width with the system's C compiler, for this machine's instruction set,
and cached. Where it cannot be used (CUDA, an activation other than sine, no compiler, a
build whose step_args differs from _StepArgs) fitting and rendering keep their PyTorch
paths.
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

from ..model.activations import input_scale
from ..model.config import MAX_DEPTH, ModelConfig
from ..model.network import MOTION_SCALE, GOPModel
from .sampler import Sampler

_Floats = ctypes.POINTER(ctypes.c_float)
_Layers = _Floats * (MAX_DEPTH + 1)
SOURCES = [Path(__file__).with_name(n) for n in ("tile_mlp.c", "bias_net.c")]
HEADER = Path(__file__).with_name("kernel.h")
# kernel.h's KERNEL_VERSION: the interface _StepArgs and the calls below are written for.
INTERFACE_VERSION = 3
# Tiles per chunk of work: small enough that the threads finish a step at about the same time.
TILES_PER_CHUNK = 8
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
    be built here or its interface disagrees with this module's."""
    if sys.platform == "win32":
        return None
    parts = [f.read_bytes() for f in [*SOURCES, HEADER]]
    parts += [s.encode() for s in (" ".join(_flags(width)), _compiler(), _cpu_identity())]
    key = hashlib.sha256(b"\0".join(parts)).hexdigest()[:16]
    target = cache_dir() / f"tile_mlp_{width}_{key}.so"
    with _lock:
        try:
            if not target.exists():
                _build(width, target)
            lib = ctypes.CDLL(str(target))
        except (OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, "stderr", None) or exc
            warnings.warn(f"native kernel unavailable ({str(detail).strip()[:200]}); "
                          "fitting and rendering with PyTorch", stacklevel=3)
            return None
    mismatch = _interface_mismatch(lib)
    if mismatch:
        warnings.warn(f"native kernel interface mismatch ({mismatch}); fitting and rendering "
                      "with PyTorch",
                      stacklevel=3)
        return None
    lib.tile_step.restype = ctypes.c_int
    lib.tile_step.argtypes = [ctypes.POINTER(_StepArgs), ctypes.c_int64, ctypes.c_int64,
                              ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    lib.tile_render.restype = None
    lib.tile_render.argtypes = [*[ctypes.c_int64] * 5, ctypes.c_float, _Layers,
                                *[_Floats] * 4]
    return lib


def _flags(width: int) -> list[str]:
    return [*FLAGS, f"-DWIDTH={width}", f"-DMAX_DEPTH={MAX_DEPTH}"]


def _build(width: int, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename, so that concurrent encoders never load half a file.
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        subprocess.run([_compiler(), *_flags(width), *map(str, SOURCES), "-o", tmp],
                       check=True, capture_output=True, text=True, timeout=120)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def supported(cfg: ModelConfig, device: torch.device) -> bool:
    """Whether the native kernel can fit and render this model on this device."""
    return (device.type == "cpu" and cfg.activation == "sine" and cfg.depth <= MAX_DEPTH
            and library(cfg.width) is not None)


class _StepArgs(ctypes.Structure):
    """kernel.h's struct step_args."""

    _fields_ = [
        *[(n, ctypes.c_int64) for n in ("frames", "points", "depth", "n_time", "n_latent",
                                        "hidden", "n_bias", "n_motion")],
        ("input_scale", ctypes.c_float), ("loss_scale", ctypes.c_float),
        ("uniform_y", _Floats), ("uniform_x", _Floats), ("boxes", ctypes.POINTER(ctypes.c_int64)),
        ("row_coords", _Floats), ("col_coords", _Floats),
        *[(n, ctypes.c_int64) for n in ("row_stride", "col_stride", "frame_width",
                                        "pixel_frames", "frame_first", "frame_step")],
        ("pixels", _Floats), ("pixel_weight", _Floats),
        ("weights", _Layers), ("base", _Layers),
        *[(n, _Floats) for n in ("latents", "time_features", "w_in", "b_in", "w_mid", "b_mid",
                                 "w_out", "b_out", "base_scale", "offset_scale")],
        ("grad_weights", _Layers), ("grad_base", _Layers), ("grad_latents", _Floats),
        ("loss", ctypes.POINTER(ctypes.c_double)),
    ]


def _interface_mismatch(lib: ctypes.CDLL) -> str | None:
    """What differs between the library's step_args and _StepArgs, or None. A kernel that
    disagrees would read its arguments from the wrong places and crash or fit garbage."""
    names = [name for name, _ in _StepArgs._fields_]
    # In kernel_layout's order; the field count comes before the offsets, so that these
    # are compared only when both sides have the same fields.
    expected = [("version {} in C, {} in Python", INTERFACE_VERSION),
                ("MAX_DEPTH is {} in C, {} in Python", MAX_DEPTH),
                ("step_args is {} bytes in C, {} in Python", ctypes.sizeof(_StepArgs)),
                ("step_args has {} fields in C, {} in Python", len(names)),
                *((f"step_args.{name} is at byte {{}} in C, {{}} in Python",
                   getattr(_StepArgs, name).offset) for name in names)]
    if not hasattr(lib, "kernel_layout"):
        return "the library does not report its layout"
    reported = (ctypes.c_int64 * len(expected))()
    lib.kernel_layout.restype = ctypes.c_int64
    lib.kernel_layout.argtypes = [ctypes.POINTER(ctypes.c_int64), ctypes.c_int64]
    lib.kernel_layout(reported, len(expected))
    return next((text.format(got, want) for got, (text, want) in zip(reported, expected)
                 if got != want), None)


def _ptr(t: torch.Tensor | None) -> ctypes.c_void_p:
    return ctypes.cast(None if t is None else t.data_ptr(), _Floats)


def _layers(tensors: list[torch.Tensor]) -> ctypes.Array:
    return _Layers(*[_ptr(t) for t in tensors])


class _Step(torch.autograd.Function):
    """The loss of fit.tile_loss at a draw of the sampler, from the model's raw parameters;
    the kernel computes the gradients along with it, and backward hands them out."""

    @staticmethod
    def forward(ctx, ry, rx, sampler, frames_of, cfg, pool, threads, feats, base_scale, offset_scale,
                *params):
        n = cfg.depth + 1
        params = [p.detach().contiguous() for p in params]
        weights, base, (latents, w_in, b_in, w_mid, b_mid, w_out, b_out) = (
            params[:n], params[n:2 * n], params[2 * n:])
        tiles, points, frames = ry.shape[0], ry.shape[1], feats.shape[0]
        count = tiles * points * frames * 3.0
        if sampler.weight is not None:
            count = max(3.0 * sampler.weight_sum(ry, rx, frames_of), 1.0)
        grads = [torch.empty_like(p) for p in params[:2 * n + 1]]
        errors = torch.empty(tiles, dtype=torch.float64)
        # The kernel reads raw pointers: every array it gets must be contiguous and stay
        # referenced here until it returns.
        ry, rx, feats = ry.contiguous(), rx.contiguous(), feats.contiguous()
        n_bias = base_scale.shape[0]
        args = _StepArgs(
            frames, points, cfg.depth, feats.shape[1], cfg.latent_dim, cfg.bias_hidden,
            n_bias, w_out.shape[0] - n_bias, input_scale(cfg), 2.0 / count,
            _ptr(ry), _ptr(rx), ctypes.cast(sampler.boxes.data_ptr(), ctypes.POINTER(ctypes.c_int64)),
            _ptr(sampler.row_coords), _ptr(sampler.col_coords), sampler.row_coords.shape[1],
            sampler.col_coords.shape[1], sampler.width, sampler.frames, frames_of.start,
            frames_of.step, _ptr(sampler.pixels), _ptr(sampler.weight),
            _layers(weights), _layers(base),
            *map(_ptr, (latents, feats, w_in, b_in, w_mid, b_mid, w_out, b_out, base_scale,
                        offset_scale)),
            _layers(grads[:n]), _layers(grads[n:2 * n]), _ptr(grads[2 * n]),
            ctypes.cast(errors.data_ptr(), ctypes.POINTER(ctypes.c_double)))
        # The bias network's gradients are sums over all tiles: one buffer per chunk of
        # tiles, added up in a fixed order. Chunks of a fixed size, not one per thread, so
        # that the result is the same whatever the number of threads.
        bias_net = (w_in, b_in, w_mid, b_mid, w_out, b_out)
        length = sum(p.numel() for p in bias_net)
        shared = torch.empty(-(-tiles // TILES_PER_CHUNK), length)  # each chunk writes its row
        next_chunk = torch.zeros(1, dtype=torch.int64)
        run = library(cfg.width).tile_step
        # One call per thread, taking chunks in turn; ctypes releases the GIL during calls.
        jobs = [pool.submit(run, ctypes.byref(args), tiles, TILES_PER_CHUNK, next_chunk.data_ptr(),
                            shared.data_ptr(), length) for _ in range(threads)]
        if any(job.result() != 0 for job in jobs):
            raise MemoryError("native fitting kernel: out of memory")
        sums = shared.sum(dim=0).split([p.numel() for p in bias_net])
        ctx.grads = grads + [g.view_as(p) for g, p in zip(sums, bias_net)]
        return torch.tensor(float(errors.sum()) / count)

    @staticmethod
    def backward(ctx, grad_out):
        grads = ctx.grads if bool(grad_out == 1) else [g * grad_out for g in ctx.grads]
        return (None,) * 10 + tuple(grads)


def step_inputs(model: GOPModel, t: torch.Tensor) -> list[torch.Tensor]:
    """What native_tile_loss reads of a model at local times t: its time features and
    bias scales, then every parameter.

    A displacement head (ModelConfig.motion) goes to the kernel as two more rows of the
    bias network's output layer, scaled by MOTION_SCALE; autograd hands their gradients
    back to the head."""
    out_weight, out_bias, offset_scale = model.bias_out.weight, model.bias_out.bias, model.offset_scale
    if model.motion_out is not None:
        out_weight = torch.cat([out_weight, model.motion_out.weight])
        out_bias = torch.cat([out_bias, model.motion_out.bias])
        offset_scale = torch.cat([offset_scale, offset_scale.new_full((2,), MOTION_SCALE)])
    params = [*model.weights, *model.base_biases, model.latents,
              *(p for layer in (model.bias_in, model.bias_mid) for p in (layer.weight, layer.bias)),
              out_weight, out_bias]
    return [model.time_features(t), model.base_scale, offset_scale, *params]


def native_tile_loss(draw: tuple[torch.Tensor, torch.Tensor], inputs: list[torch.Tensor],
                     frames: slice, sampler: Sampler, cfg: ModelConfig, pool: ThreadPoolExecutor,
                     threads: int) -> torch.Tensor:
    """fit.tile_loss at the sampler's points for a draw of its uniforms, over the sampler's
    ``frames`` (a slice with a start and a step; the times of the step_inputs given),
    computed by the kernel with the gradients of every parameter. The tiles run on
    ``threads`` workers of ``pool``.
    """
    return _Step.apply(*draw, sampler, frames, cfg, pool, threads, *inputs)


def render_tiles(cfg: ModelConfig, weights: list[torch.Tensor], coords: torch.Tensor,
                 table: torch.Tensor, blend: torch.Tensor) -> torch.Tensor:
    """The forward pass alone, for rendering: tile networks with raw (unscaled) weights
    (T, in, out) at points coords (T, P, 2), for the frames whose bias table (T, F, n_bias)
    GOPModel.frame_biases gives; returns (T, P, F, 3) colours times blend (T, P).
    The caller checks ``supported`` first; one call runs on one thread."""
    weights = [w.detach().contiguous() for w in weights]
    coords, table, blend = coords.contiguous(), table.detach().contiguous(), blend.contiguous()
    tiles, points, frames = coords.shape[0], coords.shape[1], table.shape[1]
    out = torch.empty(tiles, points, frames, 3)
    library(cfg.width).tile_render(cfg.depth, tiles, points, frames, table.shape[2],
                                   input_scale(cfg), _layers(weights), _ptr(coords), _ptr(table),
                                   _ptr(blend), _ptr(out))
    return out
