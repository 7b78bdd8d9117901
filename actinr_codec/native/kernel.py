"""The native kernel: builds tile_mlp.c for this CPU and runs its fitting step as an
autograd op and its forward pass for rendering.

The C kernel computes a fitting step's loss and the gradient of every model parameter in
one pass: tile networks and bias network (see tile_mlp.c and bias_net.c). It is compiled
once per hidden width with the system's C compiler, for this machine's instruction set,
and cached. Where it cannot be used (CUDA, an activation other than sine, no compiler, a
build whose step_args differs from the one read from kernel.h) fitting and rendering keep
their PyTorch paths.

kernel.h is the one definition of the interface: its KERNEL_VERSION and its struct
step_args are read from the header when this module is imported (read_header), and the
struct's fields are set by name.
"""

from __future__ import annotations

import ast
import ctypes
import functools
import operator
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import torch

from ..model.activations import input_scale
from ..model.config import MAX_DEPTH, ModelConfig
from ..model.network import MOTION_SCALE, GOPModel
from . import build

_Floats = ctypes.POINTER(ctypes.c_float)
_Layers = _Floats * (MAX_DEPTH + 1)
SOURCES = [Path(__file__).with_name(n) for n in ("tile_mlp.c", "bias_net.c")]
HEADER = Path(__file__).with_name("kernel.h")
# Tiles per chunk of work: small enough that the threads finish a step at about the same time.
TILES_PER_CHUNK = 8
# -fno-trapping-math lets the compiler vectorise the sine's float-to-int rounding.
FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-shared", "-fPIC"]


@functools.cache
def library(width: int) -> ctypes.CDLL | None:
    """The kernel built for hidden width ``width``, or None (with a warning) if it cannot
    be built here or its interface disagrees with kernel.h's as this module read it."""
    lib = build.optional(f"tile_mlp_{width}", SOURCES, [HEADER], _flags(width),
                         "native kernel", "fitting and rendering with PyTorch")
    if lib is None:
        return None
    mismatch = _interface_mismatch(lib, INTERFACE_VERSION, _StepArgs)
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


def supported(cfg: ModelConfig, device: torch.device) -> bool:
    """Whether the native kernel can fit and render this model on this device."""
    return (device.type == "cpu" and cfg.activation == "sine" and cfg.depth <= MAX_DEPTH
            and library(cfg.width) is not None)


# C types of kernel.h's step_args fields, and what a field's array size may be written with.
_C_TYPES = {"int64_t": ctypes.c_int64, "int32_t": ctypes.c_int32, "float": ctypes.c_float,
            "double": ctypes.c_double}
_SIZE_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}


def read_header(text: str, max_depth: int) -> tuple[int, type[ctypes.Structure]]:
    """A kernel header's KERNEL_VERSION and its struct step_args as a ctypes Structure
    (fields in declaration order, array sizes with MAX_DEPTH = ``max_depth``). The header
    may declare fields of the types in _C_TYPES, const or not, plain, pointers or arrays
    of either; anything else raises ValueError naming the declaration."""
    text = re.sub(r"//[^\n]*", " ", re.sub(r"/\*.*?\*/", " ", text, flags=re.S))
    version = re.search(r"^\s*#\s*define\s+KERNEL_VERSION\s+(\d+)\s*$", text, flags=re.M)
    body = re.search(r"\bstruct\s+step_args\s*\{(.*?)\}\s*;", text, flags=re.S)
    if version is None or body is None:
        raise ValueError("kernel.h: no #define KERNEL_VERSION or no struct step_args")
    fields = []
    for declaration in filter(None, (d.strip() for d in body[1].split(";"))):
        words = re.fullmatch(r"(?:const\s+)?(\w+)\s+(.+)", declaration, flags=re.S)
        if words is None or words[1] not in _C_TYPES:
            raise ValueError(f"kernel.h: cannot read step_args field(s) {declaration!r}")
        for declarator in words[2].split(","):
            parts = re.fullmatch(r"\s*(\*?)\s*([A-Za-z_]\w*)\s*(?:\[([^\]]+)\])?\s*", declarator)
            if parts is None:
                raise ValueError(f"kernel.h: cannot read step_args field {declarator.strip()!r}")
            kind = _C_TYPES[words[1]]
            if parts[1]:
                kind = ctypes.POINTER(kind)
            if parts[3]:
                kind = kind * _array_size(parts[3], {"MAX_DEPTH": max_depth})
            fields.append((parts[2], kind))
    return int(version[1]), type("_StepArgs", (ctypes.Structure,), {
        "__doc__": "kernel.h's struct step_args.", "_fields_": fields})


def _array_size(expression: str, constants: dict[str, int]) -> int:
    def value(node: ast.expr) -> int:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.Name) and node.id in constants:
            return constants[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _SIZE_OPS:
            return _SIZE_OPS[type(node.op)](value(node.left), value(node.right))
        raise ValueError(f"kernel.h: cannot read the array size {expression.strip()!r}")

    try:
        return value(ast.parse(expression.strip(), mode="eval").body)
    except SyntaxError:
        raise ValueError(f"kernel.h: cannot read the array size {expression.strip()!r}") from None


# The interface this module's calls use: kernel.h's KERNEL_VERSION, and its step_args.
INTERFACE_VERSION, _StepArgs = read_header(HEADER.read_text(), MAX_DEPTH)


def _step_args(**values) -> ctypes.Structure:
    """A step_args with every field set by name; a field of the header's that is not
    given, or a name that is not one of its fields, raises TypeError."""
    names = {name for name, _ in _StepArgs._fields_}
    if values.keys() != names:
        raise TypeError(f"step_args: kernel.h's fields {sorted(names - values.keys())} not set, "
                        f"{sorted(values.keys() - names)} not in kernel.h")
    return _StepArgs(**values)


def _interface_mismatch(lib: ctypes.CDLL, version: int, step_args: type[ctypes.Structure]) -> str | None:
    """What differs between the library's interface and ``version`` and ``step_args`` (as
    read_header reads them), or None. A kernel that disagrees would read its arguments from
    the wrong places and crash or fit garbage."""
    names = [name for name, _ in step_args._fields_]
    # In kernel_layout's order; the field count comes before the offsets, so that these
    # are compared only when both sides have the same fields.
    expected = [("version {} in C, {} in Python", version),
                ("MAX_DEPTH is {} in C, {} in Python", MAX_DEPTH),
                ("step_args is {} bytes in C, {} in Python", ctypes.sizeof(step_args)),
                ("step_args has {} fields in C, {} in Python", len(names)),
                *((f"step_args.{name} is at byte {{}} in C, {{}} in Python",
                   getattr(step_args, name).offset) for name in names)]
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


class PixelDraws(Protocol):
    """What the kernel reads of fitting.sampler.Sampler (whose docstrings give the shapes),
    named here so that this package does not import fitting."""

    boxes: torch.Tensor
    row_coords: torch.Tensor
    col_coords: torch.Tensor
    pixels: torch.Tensor
    weight: torch.Tensor | None
    width: int
    frames: int

    def weight_sum(self, ry: torch.Tensor, rx: torch.Tensor, frames: slice) -> float: ...


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
        args = _step_args(
            frames=frames, points=points, depth=cfg.depth, n_time=feats.shape[1],
            n_latent=cfg.latent_dim, hidden=cfg.bias_hidden, n_bias=n_bias,
            n_motion=w_out.shape[0] - n_bias, input_scale=input_scale(cfg), loss_scale=2.0 / count,
            uniform_y=_ptr(ry), uniform_x=_ptr(rx),
            boxes=ctypes.cast(sampler.boxes.data_ptr(), ctypes.POINTER(ctypes.c_int64)),
            row_coords=_ptr(sampler.row_coords), col_coords=_ptr(sampler.col_coords),
            row_stride=sampler.row_coords.shape[1], col_stride=sampler.col_coords.shape[1],
            frame_width=sampler.width, pixel_frames=sampler.frames, frame_first=frames_of.start,
            frame_step=frames_of.step, pixels=_ptr(sampler.pixels), pixel_weight=_ptr(sampler.weight),
            weights=_layers(weights), base=_layers(base),
            latents=_ptr(latents), time_features=_ptr(feats), w_in=_ptr(w_in), b_in=_ptr(b_in),
            w_mid=_ptr(w_mid), b_mid=_ptr(b_mid), w_out=_ptr(w_out), b_out=_ptr(b_out),
            base_scale=_ptr(base_scale), offset_scale=_ptr(offset_scale),
            grad_weights=_layers(grads[:n]), grad_base=_layers(grads[n:2 * n]),
            grad_latents=_ptr(grads[2 * n]),
            loss=ctypes.cast(errors.data_ptr(), ctypes.POINTER(ctypes.c_double)))
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
                     frames: slice, sampler: PixelDraws, cfg: ModelConfig, pool: ThreadPoolExecutor,
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
