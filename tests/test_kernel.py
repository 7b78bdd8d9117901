"""The native fitting kernel against PyTorch's autograd of the same loss."""

import ctypes
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
import torch
from conftest import TINY_MODEL

from actinr_codec.fitting import kernel
from actinr_codec.fitting.config import FitConfig
from actinr_codec.fitting.fit import fit_gop, tile_loss
from actinr_codec.fitting.sampler import Sampler
from actinr_codec.model import render
from actinr_codec.model.config import MAX_DEPTH, ModelConfig
from actinr_codec.model.network import GOPModel


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


def test_kernel_reports_the_layout_that_step_args_has_in_python():
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


def test_an_interface_mismatch_is_refused_and_the_fit_uses_pytorch(monkeypatch):
    monkeypatch.setattr(kernel, "INTERFACE_VERSION", kernel.INTERFACE_VERSION + 1)
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
