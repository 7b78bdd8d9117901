import numpy as np
import torch
from conftest import TINY_MODEL
from synthetic import moving_pattern

from actinr_codec.fitting.config import FitConfig
from actinr_codec.metrics import psnr
from actinr_codec.pipeline.video import fit_video, render


def test_fit_video_covers_every_frame_with_continuous_boundaries():
    frames = moving_pattern(11, 48, 40)  # GOPs [0,6) [5,11) at gop_size 6
    seen = []
    video = fit_video(frames, 6, TINY_MODEL, FitConfig(iters=400, points=64),
                      on_gop=lambda k, r: seen.append((k, r.psnr)))
    assert [k for k, _ in seen] == [0, 1] and all(p > 30 for _, p in seen)
    assert video.gops == [range(0, 6), range(5, 11)]
    decoded = torch.stack([render(video, float(f)) for f in range(11)])
    assert decoded.shape == (11, 48, 40, 3)
    assert psnr(decoded.float() / 255, torch.tensor(frames).float() / 255) > 30
    # Both GOPs fitted the shared frame 5, so the picture barely changes when t crosses it.
    before = render(video, 5.0 - 1e-3, as_uint8=False)
    after = render(video, 5.0, as_uint8=False)
    assert psnr(before, after) > 30


def test_single_frame_video():
    frames = moving_pattern(1, 24, 24)
    video = fit_video(frames, 8, TINY_MODEL, FitConfig(iters=200, points=32))
    assert len(video.models) == 1
    frame = render(video, 0.0)
    assert psnr(frame.float() / 255, torch.tensor(frames[0]).float() / 255) > 28
    assert np.array_equal(render(video, 0.0, 48, 48).shape, (48, 48, 3))
