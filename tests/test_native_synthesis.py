"""The C latent-grid renderer against PyTorch's operations, and its bicubic taps."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from actinr_codec.native import synthesis


def random_synthesis(rng, levels: int, hidden: tuple[int, ...], refine: int
                     ) -> synthesis.Synthesis:
    widths = [levels, *hidden, 3]
    layers = tuple((rng.normal(0, 0.4, (o, i)), rng.normal(0, 0.1, o))
                   for i, o in zip(widths, widths[1:]))
    convs = tuple((rng.normal(0, 0.1, (3, 3, 3, 3)), rng.normal(0, 0.1, 3))
                  for _ in range(refine))
    return synthesis.Synthesis(layers, convs)


def pyramid(rng, h: int, w: int, levels: int) -> list[np.ndarray]:
    return [rng.normal(0, 2, (math.ceil(h / 2**k), math.ceil(w / 2**k))).astype(np.float32)
            for k in range(levels)]


@pytest.mark.parametrize("n,size", [(1, 1), (1, 5), (3, 5), (5, 9), (23, 45), (45, 360)])
def test_bicubic_taps_are_pytorchs_interpolation(n, size):
    index, weights = synthesis.bicubic_taps(n, size)
    matrix = np.zeros((size, n))
    for t in range(synthesis.TAPS):
        np.add.at(matrix, (np.arange(size), index[:, t]), weights[:, t])
    eye = torch.eye(n)[None, None]
    want = F.interpolate(eye, size=(size, n), mode="bicubic", align_corners=False)[0, 0]
    np.testing.assert_allclose(matrix, want.numpy(), atol=1e-5)  # PyTorch in float32


@pytest.mark.parametrize("h,w,levels,hidden,refine,bias", [
    (1, 1, 1, (4,), 0, False),
    (7, 5, 3, (8, 8), 1, True),
    (36, 44, 5, (16,), 2, True),
    (50, 31, 7, (40,), 2, False),
])
def test_native_render_matches_pytorch(h, w, levels, hidden, refine, bias):
    rng = np.random.default_rng(h * w + levels)
    grids = pyramid(rng, h, w, levels)
    net = random_synthesis(rng, levels, hidden, refine)
    first = rng.normal(0, 0.1, hidden[0]) if bias else None
    got = synthesis.render(grids, net, first)
    want = synthesis.render_torch(grids, net, first)
    assert got.shape == (h, w, 3)
    np.testing.assert_allclose(got, want, atol=2e-5 * max(1.0, np.abs(want).max()))


@pytest.mark.parametrize("size", [(28, 20), (13, 9), (3, 2)])
def test_native_render_at_another_size_matches_pytorch(size):
    """Super-resolution (and its opposite): every grid, the first too, interpolated to size."""
    rng = np.random.default_rng(size[0])
    grids = pyramid(rng, 7, 5, 3)
    net = random_synthesis(rng, 3, (8,), 2)
    got = synthesis.render(grids, net, size=size)
    want = synthesis.render_torch(grids, net, size=size)
    assert got.shape == (*size, 3)
    np.testing.assert_allclose(got, want, atol=2e-5 * max(1.0, np.abs(want).max()))


def test_threads_split_the_work_without_changing_a_bit():
    rng = np.random.default_rng(3)
    grids, net = pyramid(rng, 45, 67, 5), random_synthesis(rng, 5, (16,), 2)
    one = synthesis.render(grids, net, threads=1)
    for threads in (2, 3, 200):
        np.testing.assert_array_equal(synthesis.render(grids, net, threads=threads), one)


def test_render_refuses_a_network_that_does_not_fit():
    rng = np.random.default_rng(1)
    grids = pyramid(rng, 8, 8, 2)
    with pytest.raises(ValueError, match="limits"):
        synthesis.render(grids, random_synthesis(rng, 2, (65,), 0))
    with pytest.raises(ValueError, match="chain"):
        synthesis.render(grids, random_synthesis(rng, 3, (8,), 0))
    with pytest.raises(ValueError, match="chain"):
        synthesis.render(grids, random_synthesis(rng, 2, (8,), 0), first_bias=np.zeros(7))


def test_without_a_compiler_latents_render_with_pytorch(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTINR_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    synthesis.library.cache_clear()
    try:
        rng = np.random.default_rng(2)
        grids, net = pyramid(rng, 9, 12, 3), random_synthesis(rng, 3, (8,), 1)
        with pytest.warns(UserWarning, match="native synthesis unavailable"):
            got = synthesis.render(grids, net)
        np.testing.assert_array_equal(got, synthesis.render_torch(grids, net))
    finally:
        synthesis.library.cache_clear()
