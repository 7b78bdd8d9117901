from fractions import Fraction

import numpy as np
import pytest
from synthetic import moving_pattern

from evaluation import baselines
from evaluation.protocols import downscale_area
from evaluation.quality import summarize


@pytest.mark.parametrize("codec", ["x264", "x265"])
def test_x26x_size_falls_and_quality_drops_with_crf(codec):
    clip = moving_pattern(9, 48, 64)
    sizes, psnrs = [], []
    for crf in (18, 30, 42):
        settings = baselines.codec_settings(codec, crf, keyint=4)
        size, decoded, encode_s, decode_s, planes = baselines.code(clip, settings, Fraction(25))
        assert decoded.shape == clip.shape and decoded.dtype == np.uint8
        assert [p.shape for p in planes[0]] == [(48, 64), (24, 32), (24, 32)]
        assert encode_s > 0 and decode_s > 0
        sizes.append(size)
        measured = summarize(clip, decoded, planes)
        psnrs.append(measured["psnr_rgb"])
        # Scored on its own planes, 4:2:0 costs the codec nothing in PSNR-YUV420.
        assert measured["psnr_yuv420"] > measured["psnr_rgb"]
    assert sizes[0] > sizes[1] > sizes[2] > 0
    assert psnrs[0] > psnrs[1] > psnrs[2]
    # 4:2:0 alone caps this colourful pattern near 38 dB in RGB.
    assert 28 < psnrs[0] < 40 and psnrs[2] > 15


def test_settings_say_how_to_reproduce():
    x264 = baselines.codec_settings("x264", 23, keyint=8)
    assert x264["options"] == {"preset": "medium", "crf": "23", "sc_threshold": "0"}
    assert "-g 8" in x264["ffmpeg"] and "-sc_threshold 0" in x264["ffmpeg"]
    assert "scenecut=0" in baselines.codec_settings("x265", 23, keyint=8)["ffmpeg"]
    with pytest.raises(ValueError, match="unknown"):
        baselines.codec_settings("vp9", 23, keyint=8)


def test_odd_sizes_are_refused():
    with pytest.raises(ValueError, match="even"):
        baselines.code(moving_pattern(2, 17, 24), baselines.codec_settings("x264", 23, 8),
                       Fraction(25))


def test_repeat_and_blend_fill_in_between_frames():
    frames = np.stack([np.full((2, 2, 3), v, np.uint8) for v in (0, 100, 200)])
    assert baselines.repeat_frames(frames, 4)[:, 0, 0, 0].tolist() == [0] * 4 + [100] * 4 + [200]
    blended = baselines.blend_frames(frames, 4)[:, 0, 0, 0].tolist()
    assert blended == [0, 25, 50, 75, 100, 125, 150, 175, 200]


def test_minterpolate_keeps_originals_and_beats_repeating():
    full = moving_pattern(9, 48, 48, speed=1.0)
    kept = full[::2]
    out = baselines.minterpolate(kept, 2, Fraction(25, 2))
    assert out.shape == full.shape
    assert summarize(kept, out[::2])["psnr_rgb"] > 40  # only a YUV 4:4:4 round trip
    moved = summarize(full[1::2], out[1::2])["psnr_rgb"]
    held = summarize(full[1::2], baselines.repeat_frames(kept, 2)[1::2])["psnr_rgb"]
    assert moved > held + 8


def test_upscalers_beat_pixel_repetition_on_smooth_content():
    full = moving_pattern(2, 64, 64, speed=0.0)
    low = downscale_area(full, 4)
    nearest = summarize(full, low.repeat(4, axis=1).repeat(4, axis=2))["psnr_rgb"]
    for method in baselines.UPSCALERS:
        up = baselines.upscale(low, 64, 64, method)
        assert up.shape == full.shape
        assert summarize(full, up)["psnr_rgb"] > nearest + 5


def test_area_downscale_averages_blocks():
    frame = (np.arange(16, dtype=np.uint8) * 4).reshape(1, 4, 4, 1).repeat(3, axis=3)
    assert downscale_area(frame, 2)[0, :, :, 0].tolist() == [[10, 18], [42, 50]]


def test_x264_in_444_keeps_the_chroma_that_420_loses():
    """x264-444, the PSNR-RGB anchor: the same encoder on yuv444p, whose RGB fidelity is
    not capped by 4:2:0 (PSNR-YUV420 is then scored from its RGB decode, as actinr's)."""
    clip = moving_pattern(3, 48, 64)
    measured = {}
    for codec in ("x264", "x264-444"):
        settings = baselines.codec_settings(codec, 18, keyint=1)
        size, decoded, _, _, planes = baselines.code(clip, settings, Fraction(25))
        assert (planes is None) == (codec == "x264-444")
        assert settings["pix_fmt"] == ("yuv444p" if codec == "x264-444" else "yuv420p")
        measured[codec] = summarize(clip, decoded, planes)["psnr_rgb"]
    assert measured["x264-444"] > measured["x264"] + 3
