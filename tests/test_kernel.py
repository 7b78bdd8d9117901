"""The native fitting kernel against PyTorch's autograd of the same loss."""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
import torch
from conftest import TINY_MODEL

from actinr_codec import kernel
from actinr_codec.config import FitConfig, ModelConfig
from actinr_codec.fit import Sampler, fit_gop, tile_loss
from actinr_codec.model import GOPModel


def _step_inputs(cfg: ModelConfig, points: int, masked: bool, frames: int = 5):
    """A model with non-trivial bias offsets, and one step's drawn points and targets."""
    gen = torch.Generator().manual_seed(1)
    video = torch.rand(frames, 40, 56, 3, generator=gen)
    weight = (torch.rand(frames, 40, 56, generator=gen) > 0.3).float() if masked else None
    model = GOPModel(cfg, 40, 56)
    with torch.no_grad():
        model.bias_out.weight.normal_(0, 0.1, generator=gen)
    coords, target, w = Sampler(model, video, weight).draw(points, gen)
    t = torch.arange(float(frames))
    weights = [p.detach().requires_grad_() for p in model.scaled_weights()]
    biases = model.frame_biases(t).detach().requires_grad_()
    return coords, target, w, weights, biases


@pytest.mark.parametrize("width,depth,points,masked", [
    (24, 3, 64, False),   # the defaults
    (12, 2, 13, True),    # padded width, a partial block of points, pixel weights
    (32, 1, 40, False),   # no hidden-to-hidden layer
    (8, 5, 33, True),
])
def test_native_loss_and_gradients_match_autograd(width, depth, points, masked):
    cfg = replace(TINY_MODEL, width=width, depth=depth)
    coords, target, w, weights, biases = _step_inputs(cfg, points, masked)
    expected = tile_loss(coords, target, w, weights, biases, cfg)
    want = torch.autograd.grad(expected, [*weights, biases])

    params = [p.detach().clone().requires_grad_() for p in [*weights, biases]]
    with ThreadPoolExecutor(2) as pool:
        got = kernel.native_tile_loss(coords, target, w, params[:-1], params[-1], cfg, pool, chunks=2)
    got.backward()
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    for p, g in zip(params, want):
        # float32 sums in another order: agreement to about 1e-6 of the gradient's size
        assert (p.grad - g).norm() <= 1e-4 * g.norm()


def test_native_sine_is_accurate_far_from_zero():
    # Pre-activations of a fitted model reach tens of radians: the kernel's own sine must
    # stay accurate there, which a loss of unit-weight sines over a wide range shows.
    cfg = replace(TINY_MODEL, width=8, depth=1)
    coords, target, w, weights, biases = _step_inputs(cfg, 16, False)
    weights[0] = (weights[0] * 40).detach().requires_grad_()  # a few hundred radians
    expected = tile_loss(coords, target, w, weights, biases, cfg)
    with ThreadPoolExecutor(1) as pool:
        got = kernel.native_tile_loss(coords, target, w, weights, biases, cfg, pool, chunks=1)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


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
        with pytest.warns(UserWarning, match="native fitting kernel unavailable"):
            assert not kernel.supported(TINY_MODEL, torch.device("cpu"))
        result = fit_gop(clip[:2], TINY_MODEL, FitConfig(iters=20, points=16))
        assert result.iters == 20
        assert list(tmp_path.iterdir()) == []  # no half-built library left behind
    finally:
        kernel.library.cache_clear()


def test_kernel_is_only_used_where_it_applies():
    cpu = torch.device("cpu")
    assert not kernel.supported(replace(TINY_MODEL, activation="gabor"), cpu)
    assert not kernel.supported(TINY_MODEL, torch.device("cuda"))
