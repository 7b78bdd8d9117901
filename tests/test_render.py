from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_MODEL

from actinr_codec.fitting.config import FitConfig
from actinr_codec.fitting.fit import fit_gop
from actinr_codec.metrics import psnr
from actinr_codec.model import render as render_mod
from actinr_codec.model.render import render_gop


def _seam_ratio(img: torch.Tensor, boundaries: list[int]) -> float:
    """Mean horizontal step across tile boundaries over the mean step two pixels away."""
    step = (img[:, 1:] - img[:, :-1]).abs().mean(dim=(0, 2))  # step between col j and j+1
    at = torch.stack([step[b - 1] for b in boundaries]).mean()
    near = torch.stack([step[b - 1 + d] for b in boundaries for d in (-2, 2)]).mean()
    return float(at / near)


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_render_shapes_and_no_seams(fitted, clip, scale):
    size = 64 * scale
    frames = render_gop(fitted.model, torch.tensor([0.0, 3.5, 7.0]), size, size)
    assert frames.shape == (3, size, size, 3)
    # Tile cores are 16 source pixels wide: boundaries at 16, 32, 48 (times the scale).
    ratio = _seam_ratio(frames[0], [16 * scale, 32 * scale, 48 * scale])
    assert ratio < 1.5


def test_seam_measure_detects_unblended_tiles(clip, fitted):
    # The same model without overlap shows its tile edges at 4x: the check above can fail.
    hard = fit_gop(clip, replace(TINY_MODEL, overlap=0), FitConfig(iters=300, points=64))
    frame = render_gop(hard.model, torch.tensor([0.0]), 256, 256)[0]
    assert _seam_ratio(frame, [64, 128, 192]) > 1.5


@pytest.mark.parametrize("scale", [2, 4])
def test_upscaled_render_downsamples_to_the_fitted_frames(fitted, clip, scale):
    big = render_gop(fitted.model, torch.arange(8.0), 64 * scale, 64 * scale).clamp(0, 1)
    down = F.avg_pool2d(big.permute(0, 3, 1, 2), scale).permute(0, 2, 3, 1)
    assert psnr(down, clip) > fitted.psnr - 4.0


def test_render_memory_is_chunked(fitted, monkeypatch):
    whole = render_gop(fitted.model, torch.tensor([2.0]), 128, 128)
    monkeypatch.setattr(render_mod, "CHUNK_BYTES", 1)  # one tile at a time
    chunked = render_gop(fitted.model, torch.tensor([2.0]), 128, 128)
    assert torch.allclose(whole, chunked, atol=1e-5)


@pytest.mark.parametrize("bands", [[0, 37, 96], [0, 1, 2, 50, 95, 96]])
def test_a_frame_rendered_in_bands_of_rows_is_the_whole_frame(fitted, bands):
    """Huge outputs render in bands (pipeline/decoder.py): each band is its rows of the
    whole render, whichever tiles it crosses. To float rounding only: the kernel's loops
    group a tile's points by how many it has, and a one-row band's tiles have few (they
    differ by up to 2.4e-7; bands of many rows match exactly)."""
    t = torch.tensor([1.0, 4.5])
    whole = render_gop(fitted.model, t, 96, 80)
    parts = [render_gop(fitted.model, t, 96, 80, (a, b)) for a, b in zip(bands, bands[1:])]
    assert torch.allclose(torch.cat(parts, dim=1), whole, rtol=0, atol=1e-6)
    with pytest.raises(ValueError):
        render_gop(fitted.model, t, 96, 80, (50, 97))


def test_render_threads_share_the_work_without_changing_it(fitted):
    before = torch.get_num_threads()
    one = render_gop(fitted.model, torch.tensor([1.0, 4.5]), 96, 80, threads=1)
    two = render_gop(fitted.model, torch.tensor([1.0, 4.5]), 96, 80, threads=2)
    assert torch.get_num_threads() == before
    assert torch.allclose(one, two, atol=1e-6)


def test_render_matches_the_autograd_forward(fitted):
    # Rendering computes activations in place (numpy's sine on CPU); training does not.
    model = fitted.model
    coords = torch.rand(model.tiling.count, 50, 2) * 2 - 1
    t = torch.tensor([0.0, 2.5, 7.0])
    with torch.enable_grad():
        reference = model(coords, t)
    with torch.inference_mode():
        fast = model(coords, t)
    assert torch.allclose(reference.detach(), fast, atol=1e-5)
