"""A whole video through the real encoder and decoder: GOPs cover every frame, time is
continuous across their shared frames, and any time is served by the right GOP."""

import numpy as np
import pytest
import torch
from conftest import TINY_MODEL
from synthetic import moving_pattern

import actinr_codec as actinr
from actinr_codec.fitting.config import FitConfig
from actinr_codec.metrics import psnr
from actinr_codec.model.render import render_gop, to_uint8
from actinr_codec.pipeline.settings import EncodeSettings


def settings(gop_size: int, iters: int, points: int) -> EncodeSettings:
    return EncodeSettings(model=TINY_MODEL, fit=FitConfig(iters=iters, points=points),
                          gop_size=gop_size, keyint=1, scenecut=False, qat_iters=50,
                          intra_rate_weight=0.0)


def test_a_video_covers_every_frame_with_continuous_boundaries():
    frames = moving_pattern(11, 48, 40)  # GOPs [0,6) [5,11) at gop_size 6
    report = actinr.encode(frames, None, settings=settings(6, 400, 64))
    assert [r.frames for r in report.gops] == [range(0, 6), range(5, 11)]
    assert all(r.stats.psnr > 28 for r in report.gops)
    with actinr.open(report.data, "cpu") as video:
        decoded = torch.from_numpy(video.render())
        assert decoded.shape == (11, 48, 40, 3)
        assert psnr(decoded.float() / 255, torch.tensor(frames).float() / 255) > 28
        # Both GOPs fitted the shared frame 5, so the picture barely changes when t crosses it.
        before, after = video.render([5.0 - 1e-3, 5.0])
        assert psnr(torch.tensor(before).float() / 255, torch.tensor(after).float() / 255) > 30
        # Time 9.5 lies 4.5 into the second GOP, at any size.
        expected = to_uint8(render_gop(video.gop_model(1), torch.tensor([4.5]), 32, 48))[0]
        assert np.array_equal(video.frame(9.5, size=(48, 32)), expected.numpy())
        with pytest.raises(ValueError):
            video.frame(10.5)


def test_single_frame_video():
    frames = moving_pattern(1, 24, 24)
    report = actinr.encode(frames, None, settings=settings(8, 200, 32))
    assert len(report.gops) == 1
    with actinr.open(report.data, "cpu") as video:
        frame = video.frame(0.0)
        assert psnr(torch.tensor(frame).float() / 255, torch.tensor(frames[0]).float() / 255) > 26
        assert video.frame(0.0, size=(48, 48)).shape == (48, 48, 3)
