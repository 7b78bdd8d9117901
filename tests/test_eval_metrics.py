import math

import numpy as np
import pytest
import torch
from pytorch_msssim import ms_ssim
from synthetic import moving_pattern

from actinr_codec.metrics import PSNR_CAP
from evaluation import require
from evaluation.quality import frame_metrics, ms_ssim_scales, summarize


def flat_noise(shape, seed=0):
    """uint8 frames in 50..200, so that adding +-10 never clips."""
    return np.random.default_rng(seed).integers(50, 201, shape).astype(np.uint8)


def test_identical_frames_give_capped_psnr_and_unit_ms_ssim():
    video = moving_pattern(3, 48, 48)
    result = summarize(video, video.copy())
    assert result["psnr_rgb"] == PSNR_CAP and result["psnr_yuv"] == PSNR_CAP
    assert result["ms_ssim"] == pytest.approx(1.0, abs=1e-6)
    assert result["frame_psnr_rgb"] == [PSNR_CAP] * 3


def test_uniform_offset_gives_known_rgb_and_yuv_psnr():
    ref = flat_noise((2, 20, 24, 3))
    result = summarize(ref, ref + 5)
    luma = 20 * math.log10(255 / 5)
    assert result["psnr_rgb"] == pytest.approx(luma, abs=1e-6)
    # A grey offset moves only Y (its row sums to 1); Cb and Cr rows sum to 0: capped.
    assert result["psnr_yuv"] == pytest.approx((6 * luma + 2 * PSNR_CAP) / 8, abs=1e-6)


def test_red_only_error_follows_the_bt601_matrix():
    ref = flat_noise((1, 16, 16, 3), seed=1)
    test = ref.copy()
    test[..., 0] += 10
    metrics = frame_metrics(ref, test)
    assert metrics["psnr_rgb"][0] == pytest.approx(10 * math.log10(255**2 * 3 / 100), abs=1e-6)
    per_channel = [20 * math.log10(255 / (10 * c)) for c in (0.299, 0.168736, 0.5)]
    expected = (6 * per_channel[0] + per_channel[1] + per_channel[2]) / 8
    assert metrics["psnr_yuv"][0] == pytest.approx(expected, abs=1e-6)


def test_five_scale_ms_ssim_matches_pytorch_msssim():
    ref = moving_pattern(2, 176, 168)
    noisy = np.clip(ref + np.random.default_rng(2).normal(0, 8, ref.shape), 0, 255)
    noisy = noisy.astype(np.uint8)
    ours = frame_metrics(ref, noisy)["ms_ssim"]
    x = torch.from_numpy(ref).permute(0, 3, 1, 2).float()
    y = torch.from_numpy(noisy).permute(0, 3, 1, 2).float()
    theirs = ms_ssim(x, y, data_range=255, size_average=False).tolist()
    assert ours == pytest.approx(theirs, abs=1e-5)
    assert 0.5 < ours[0] < 0.999


@pytest.mark.parametrize("size,scales", [((1080, 1920), 5), ((161, 300), 5), ((160, 300), 4),
                                         ((144, 176), 4), ((32, 32), 2), ((10, 40), 0)])
def test_ms_ssim_scales_follow_the_window_rule(size, scales):
    assert ms_ssim_scales(*size) == scales


def test_small_frames_use_fewer_scales_or_none():
    small, tiny = moving_pattern(2, 40, 40), moving_pattern(2, 8, 8)
    reduced = summarize(small, small // 2 + 60)
    assert reduced["ms_ssim_scales"] == 2 and "2 of 5 scales" in reduced["ms_ssim_note"]
    assert 0 < reduced["ms_ssim"] < 1
    none = summarize(tiny, tiny)
    assert none["ms_ssim"] is None and "too small" in none["ms_ssim_note"]


def test_mismatched_videos_are_refused():
    with pytest.raises(ValueError, match="shapes"):
        summarize(moving_pattern(2, 16, 16), moving_pattern(3, 16, 16))


def test_missing_optional_library_names_the_extra():
    with pytest.raises(RuntimeError, match=r"pip install 'actinr\[eval\]'"):
        require("actinr_no_such_module")


def test_psnr_yuv420_scores_x264s_input_planes_6_1_1():
    """PSNR-YUV420 compares the yuv420p pictures x264 would be given (BT.601, limited
    range): a grey offset of 5 moves Y by about 5 * 219/255 levels and leaves the chroma
    planes, scored on their own half-size grids, unchanged; a codec's own decoded planes
    are scored as given."""
    from evaluation.quality import psnr_yuv420, yuv420_planes

    ref = flat_noise((1, 20, 24, 3))
    y, cb, cr = yuv420_planes(ref[0])
    assert y.shape == (20, 24) and cb.shape == cr.shape == (10, 12)
    result = summarize(ref, ref + 5)
    luma = psnr_yuv420((y, cb, cr), yuv420_planes(ref[0] + 5))
    assert result["psnr_yuv420"] == pytest.approx(luma)
    shifted = yuv420_planes(ref[0] + 5)[0].astype(float) - y
    assert abs(shifted.mean() - 5 * 219 / 255) < 0.2
    assert np.array_equal(yuv420_planes(ref[0] + 5)[1], cb) or np.abs(
        yuv420_planes(ref[0] + 5)[1].astype(int) - cb).max() <= 1
    own = (y, cb, cr)
    assert summarize(ref, ref, [own])["psnr_yuv420"] == PSNR_CAP
    worse = (y.copy(), cb, cr)
    worse[0][0, 0] ^= 16
    expected = (6 * 10 * math.log10(255**2 / (16**2 / y.size)) + 2 * PSNR_CAP) / 8
    assert summarize(ref, ref, [worse])["psnr_yuv420"] == pytest.approx(expected)


def test_plane_psnrs_are_each_planes_own_and_weigh_6_1_1_into_psnr_yuv420():
    """A change to one chroma plane moves that plane's PSNR only, and PSNR-YUV420 is the
    planes' PSNRs weighted 6:1:1 (what the probes report beside it)."""
    from evaluation.quality import plane_psnrs, psnr_yuv420, yuv420_planes

    y, cb, cr = yuv420_planes(flat_noise((20, 24, 3)))
    worse = (y, cb.copy(), cr)
    worse[1][::2] ^= 4
    values = plane_psnrs((y, cb, cr), worse)
    assert values[0] == values[2] == PSNR_CAP
    assert values[1] == pytest.approx(10 * math.log10(255**2 / 8))
    assert psnr_yuv420((y, cb, cr), worse) == pytest.approx((6 * values[0] + values[1] + values[2]) / 8)
