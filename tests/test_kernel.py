"""The native kernel against PyTorch's autograd of the same loss and its rendering, and
the interface read from kernel.h."""

import ctypes
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
import torch
from conftest import TINY_MODEL

from actinr_codec.fitting.config import FitConfig
from actinr_codec.fitting.fit import fit_gop, tile_loss
from actinr_codec.fitting.sampler import Sampler
from actinr_codec.model import render
from actinr_codec.model.config import MAX_DEPTH, ModelConfig
from actinr_codec.model.network import GOPModel
from actinr_codec.native import kernel


def _model_and_draw(cfg: ModelConfig, points: int, masked: bool, frames: int = 5):
    """A model with non-trivial bias offsets, a sampler of a random clip, and a draw."""
    gen = torch.Generator().manual_seed(1)
    video = torch.rand(frames, 40, 56, 3, generator=gen)
    weight = (torch.rand(frames, 40, 56, generator=gen) > 0.3).float() if masked else None
    model = GOPModel(cfg, 40, 56)
    with torch.no_grad():
        model.bias_out.weight.normal_(0, 0.1, generator=gen)
        if model.motion_out is not None:
            model.motion_out.weight.normal_(0, 1.0, generator=gen)
            model.motion_out.bias.normal_(0, 1.0, generator=gen)
    sampler = Sampler(model, video, weight)
    return model, sampler, sampler.uniforms(points, gen)


def _both_losses(cfg: ModelConfig, model: GOPModel, sampler: Sampler, draw, threads: int,
                 frames: slice = slice(0, None, 1)):
    t = torch.arange(5.0)[frames]
    coords, target, weight = sampler.points(*draw)
    expected = tile_loss(coords, target[:, :, frames], None if weight is None else weight[:, :, frames],
                         model.scaled_weights(), model.frame_biases(t), cfg)
    with ThreadPoolExecutor(threads) as pool:
        got = kernel.native_tile_loss(draw, kernel.step_inputs(model, t), frames, sampler, cfg,
                                      pool, threads)
    return expected, got


@pytest.mark.parametrize("width,depth,points,masked,threads,frames,motion", [
    (24, 3, 64, False, 2, slice(0, None, 1), 0),  # the defaults
    (12, 2, 13, True, 3, slice(0, None, 1), 0),   # padded width, a partial block of points, pixel weights
    (32, 1, 40, False, 1, slice(1, None, 2), 0),  # no hidden-to-hidden layer; every other frame
    (8, 5, 33, True, 2, slice(2, None, 3), 0),
    (24, 3, 64, False, 2, slice(0, None, 1), 1),  # tiles that move
    (12, 2, 13, True, 3, slice(1, None, 2), 1),
])
def test_native_loss_and_gradients_match_autograd(width, depth, points, masked, threads, frames,
                                                  motion):
    cfg = replace(TINY_MODEL, width=width, depth=depth, bias_hidden=20, motion=motion)
    model, sampler, draw = _model_and_draw(cfg, points, masked)
    expected, got = _both_losses(cfg, model, sampler, draw, threads, frames)
    want = torch.autograd.grad(expected, list(model.parameters()))
    got.backward()
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    for (name, p), g in zip(model.named_parameters(), want):
        # float32 sums in another order: agreement to about 1e-6 of the gradient's size
        assert (p.grad - g).norm() <= 1e-4 * g.norm(), name


def test_native_sine_is_accurate_far_from_zero():
    # Pre-activations of a fitted model reach tens of radians: the kernel's own sine must
    # stay accurate there, which a loss of unit-weight sines over a wide range shows.
    cfg = replace(TINY_MODEL, width=8, depth=1)
    model, sampler, draw = _model_and_draw(cfg, 16, False)
    with torch.no_grad():
        model.weights[0].mul_(40)  # a few hundred radians
    expected, got = _both_losses(cfg, model, sampler, draw, threads=1)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_native_gradients_do_not_depend_on_the_thread_count():
    # The tiles (here 12 x 16) are more than one chunk, so the bias network's gradient
    # is a sum over chunks, which must not depend on how many threads ran them.
    cfg = replace(TINY_MODEL, tile=4, overlap=1)
    gen = torch.Generator().manual_seed(2)
    video = torch.rand(3, 48, 64, 3, generator=gen)
    grads = []
    for threads in (1, 3):
        model = GOPModel(cfg, 48, 64)
        sampler = Sampler(model, video, None)
        draw = sampler.uniforms(8, torch.Generator().manual_seed(3))
        with ThreadPoolExecutor(threads) as pool:
            kernel.native_tile_loss(draw, kernel.step_inputs(model, torch.arange(3.0)), slice(0, None, 1),
                                    sampler, cfg, pool, threads).backward()
        grads.append([p.grad for p in model.parameters()])
    assert model.tiling.count > kernel.TILES_PER_CHUNK
    assert all(torch.equal(a, b) for a, b in zip(*grads))


def test_native_fit_matches_pytorch_fit(clip):
    cfg = FitConfig(iters=200, points=64)
    assert kernel.supported(TINY_MODEL, torch.device("cpu"))
    native = fit_gop(clip, TINY_MODEL, cfg)
    torch_path = fit_gop(clip, TINY_MODEL, replace(cfg, native=False))
    # Same draws and steps; only float rounding differs between the two programs.
    assert abs(native.psnr - torch_path.psnr) < 0.3
    assert native.psnr > 20


def test_kernel_builds_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTINR_CACHE", str(tmp_path))
    kernel.library.cache_clear()
    try:
        assert kernel.library(16) is not None
        built = list(tmp_path.glob("tile_mlp_16_*.so"))
        assert len(built) == 1
        stamp = built[0].stat().st_mtime_ns
        kernel.library.cache_clear()
        assert kernel.library(16) is not None
        assert built[0].stat().st_mtime_ns == stamp  # loaded, not rebuilt
        assert not list(tmp_path.glob("*.so.*")) and len(list(tmp_path.iterdir())) == 1
    finally:
        kernel.library.cache_clear()


def test_without_a_compiler_the_fit_warns_and_uses_pytorch(tmp_path, monkeypatch, clip):
    monkeypatch.setenv("ACTINR_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    kernel.library.cache_clear()
    try:
        with pytest.warns(UserWarning, match="native kernel unavailable"):
            assert not kernel.supported(TINY_MODEL, torch.device("cpu"))
        result = fit_gop(clip[:2], TINY_MODEL, FitConfig(iters=20, points=16))
        assert result.iters == 20
        assert list(tmp_path.iterdir()) == []  # no half-built library left behind
    finally:
        kernel.library.cache_clear()


def test_kernel_reports_the_layout_that_kernel_h_declares():
    lib = kernel.library(TINY_MODEL.width)
    assert lib is not None  # the loader found no mismatch
    fields = [name for name, _ in kernel._StepArgs._fields_]
    out = (ctypes.c_int64 * 100)()
    count = lib.kernel_layout(out, 100)
    assert list(out[:count]) == [
        kernel.INTERFACE_VERSION, MAX_DEPTH, ctypes.sizeof(kernel._StepArgs), len(fields),
        *(getattr(kernel._StepArgs, name).offset for name in fields)]
    short = (ctypes.c_int64 * 3)(-1, -1, -1)
    assert lib.kernel_layout(short, 2) == count and list(short) == [*out[:2], -1]  # as asked


def test_kernel_layout_lists_the_fields_in_kernel_h_order():
    # The offsets are compared by position, so they mean the header's fields only if
    # kernel_layout lists its fields in the header's order.
    source = kernel.SOURCES[0].read_text()
    table = re.search(r"int64_t kernel_layout\(.*?fields\[\] = \{(.*?)\};", source, flags=re.S)[1]
    listed = re.findall(r"\bAT\((\w+)\)", table)
    assert listed == [name for name, _ in kernel._StepArgs._fields_]


def test_read_header_reads_each_kind_of_field():
    text = """/* #define KERNEL_VERSION 1 */
    #define KERNEL_VERSION 7
    struct other { float no; };
    struct step_args {
        int64_t a, *b; // comment
        const float *c[MAX_DEPTH + 1], d; /* comment; with a semicolon */
        double *e;
        int32_t f[2 * MAX_DEPTH - 1];
    };"""
    version, step_args = kernel.read_header(text, 4)
    assert version == 7
    assert step_args._fields_ == [
        ("a", ctypes.c_int64), ("b", ctypes.POINTER(ctypes.c_int64)),
        ("c", ctypes.POINTER(ctypes.c_float) * 5), ("d", ctypes.c_float),
        ("e", ctypes.POINTER(ctypes.c_double)), ("f", ctypes.c_int32 * 7)]


@pytest.mark.parametrize("field", ["char *name;", "float **grads;", "float x[n];", "float x[MAX_DEPTH / 2];",
                                   "float x[MAX_DEPTH +];", "struct other o;", "float (*f)(void);"])
def test_read_header_refuses_what_it_cannot_read(field):
    text = kernel.HEADER.read_text().replace("double *loss;", f"double *loss;\n    {field}")
    with pytest.raises(ValueError, match="kernel.h: cannot read"):
        kernel.read_header(text, MAX_DEPTH)
    with pytest.raises(ValueError, match="no #define KERNEL_VERSION"):
        kernel.read_header(text.replace("#define KERNEL_VERSION", "#define VERSION"), MAX_DEPTH)


def _edited_header(old: str, new: str) -> tuple[int, type[ctypes.Structure]]:
    text = kernel.HEADER.read_text()
    assert text.count(old) == 1
    return kernel.read_header(text.replace(old, new), MAX_DEPTH)


def test_a_header_the_library_was_not_built_from_is_refused():
    # The cache key covers the header, so an edited header is always rebuilt; these are
    # what the loader's check finds if a library and the header read disagree anyway.
    lib = kernel.library(TINY_MODEL.width)
    version = kernel.INTERFACE_VERSION
    bumped = _edited_header(f"#define KERNEL_VERSION {version}", f"#define KERNEL_VERSION {version + 1}")
    assert kernel._interface_mismatch(lib, *bumped) == f"version {version} in C, {version + 1} in Python"
    size = ctypes.sizeof(kernel._StepArgs)
    added = _edited_header("double *loss;", "double *loss;\n    int64_t extra;")
    assert kernel._interface_mismatch(lib, *added) == f"step_args is {size} bytes in C, {size + 8} in Python"
    split = _edited_header("*grad_base[MAX_DEPTH + 1]", "*grad_base[MAX_DEPTH], *spare")  # same bytes
    assert kernel._interface_mismatch(lib, *split) == "step_args has 39 fields in C, 40 in Python"
    wider = _edited_header("float input_scale;", "double input_scale;")
    assert kernel._interface_mismatch(lib, *wider) == f"step_args is {size} bytes in C, {size + 8} in Python"
    narrower = _edited_header("int64_t n_motion;", "int32_t n_motion, spare;")
    assert kernel._interface_mismatch(lib, *narrower) == "step_args has 39 fields in C, 40 in Python"
    assert kernel._interface_mismatch(lib, version, kernel._StepArgs) is None


def test_a_header_field_the_step_does_not_set_is_an_error(monkeypatch):
    monkeypatch.setattr(kernel, "_StepArgs", _edited_header("double *loss;", "double *loss, *extra;")[1])
    model, sampler, draw = _model_and_draw(TINY_MODEL, 16, False)
    with pytest.raises(TypeError, match=r"kernel.h's fields \['extra'\] not set, \[\] not in kernel.h"):
        _both_losses(TINY_MODEL, model, sampler, draw, 1)


def test_an_interface_mismatch_is_refused_and_the_fit_uses_pytorch(monkeypatch):
    version = kernel.INTERFACE_VERSION
    bumped, _ = _edited_header(f"#define KERNEL_VERSION {version}", f"#define KERNEL_VERSION {version + 1}")
    monkeypatch.setattr(kernel, "INTERFACE_VERSION", bumped)
    kernel.library.cache_clear()
    try:
        with pytest.warns(UserWarning, match=r"interface mismatch \(version \d+ in C, \d+ in Python"):
            assert kernel.library(TINY_MODEL.width) is None
        assert not kernel.supported(TINY_MODEL, torch.device("cpu"))
    finally:
        kernel.library.cache_clear()


def test_a_changed_depth_limit_rebuilds_the_kernel_and_is_checked(tmp_path, monkeypatch):
    # The depth goes to the compiler as a flag, so the cache key must cover it; _StepArgs
    # was laid out for the old limit, so the new build's struct is refused.
    monkeypatch.setenv("ACTINR_CACHE", str(tmp_path))
    kernel.library.cache_clear()
    try:
        assert kernel.library(16) is not None
        monkeypatch.setattr(kernel, "MAX_DEPTH", MAX_DEPTH + 1)
        kernel.library.cache_clear()
        with pytest.warns(UserWarning, match=r"interface mismatch \(step_args is \d+ bytes in C"):
            assert kernel.library(16) is None
        assert len(list(tmp_path.glob("tile_mlp_16_*.so"))) == 2
    finally:
        kernel.library.cache_clear()


def test_kernel_is_only_used_where_it_applies():
    cpu = torch.device("cpu")
    assert not kernel.supported(replace(TINY_MODEL, activation="gabor"), cpu)
    assert not kernel.supported(TINY_MODEL, torch.device("cuda"))


@pytest.mark.parametrize("width,depth,scale", [(24, 4, 1.0), (20, 2, 2.5), (8, 1, 0.7)])
def test_native_render_matches_pytorch(monkeypatch, width, depth, scale):
    """Rendering through the kernel's forward pass gives PyTorch's frames, at any width
    (padded inside), depth and output scale (points between pixel centres)."""
    cfg = replace(TINY_MODEL, width=width, depth=depth)
    model, _, _ = _model_and_draw(cfg, 16, False)
    t = torch.tensor([0.0, 1.5, 4.0])
    size = (round(40 * scale), round(56 * scale))
    assert render._native(cfg, torch.device("cpu"))
    native = render.render_gop(model, t, *size)
    monkeypatch.setattr(render, "_native", lambda cfg, device: False)
    expected = render.render_gop(model, t, *size)
    assert native.shape == expected.shape == (3, *size, 3)
    assert (native - expected).abs().max() < 1e-4
