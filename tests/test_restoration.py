"""Denoising and inpainting while encoding: noise estimate, masks, policy, CLI and eval."""

import json

import av
import numpy as np
import pytest
from click.testing import CliRunner
from synthetic import moving_pattern, write_clip

import actinr_codec as actinr
from actinr_codec.media.frames import ArrayFrames
from actinr_codec.media.videoio import VideoIOError
from actinr_codec.parallel.segments import fit_segment
from actinr_codec.pipeline.gop import GOPPlan
from actinr_codec.pipeline.options import EncodeOptions
from actinr_codec.pipeline.presets import settings_for
from actinr_codec.restoration.denoise import denoise_settings
from actinr_codec.restoration.masks import read_mask
from actinr_codec.restoration.noise import estimate_noise
from bitstream.records import INTRA
from cli.main import main
from evaluation.denoise import add_noise
from evaluation.inpaint import constant_fill, harmonic_fill, protocol_masks
from evaluation.quality import region_psnr

FAST = ["--preset", "fast", "--iters", "150", "--gop", "4"]


pytestmark = pytest.mark.usefixtures("one_thread")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def save_png(path, plane: np.ndarray):
    av.VideoFrame.from_ndarray(np.ascontiguousarray(plane), format="gray").to_image().save(path)
    return path


def decoded(anr) -> np.ndarray:
    with actinr.open(anr) as video:
        return video.render()


def psnr8(a, b) -> float:
    return region_psnr(a, b, np.ones(a.shape[:3], bool))


def gaussian(frames, sigma, seed=0):
    noise = np.random.default_rng(seed).normal(0, sigma, frames.shape)
    return np.clip(np.round(frames + noise), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("sigma", [4.0, 12.0, 30.0])
def test_noise_estimate_recovers_gaussian_sigma(sigma):
    clean = moving_pattern(8, 64, 64)
    noisy = gaussian(clean, sigma)
    true = np.sqrt(np.mean((noisy.astype(float) - clean) ** 2, axis=(0, 1, 2)))
    assert estimate_noise(noisy) * 255 == pytest.approx(true, rel=0.15)
    assert np.all(estimate_noise(clean) * 255 < 2.5)


def test_noise_estimate_follows_protocol_noise_and_ignores_holes():
    clean = moving_pattern(8, 64, 64)
    noisy = add_noise(clean, seed=1)
    true = np.sqrt(np.mean((noisy / 255 - clean / 255) ** 2))
    estimate = np.sqrt(np.mean(estimate_noise(noisy) ** 2))
    assert estimate == pytest.approx(true, rel=0.1)
    # A masked block of strong texture is left out, not read as noise.
    textured = noisy.copy()
    textured[:, 16:48, 16:48] = np.indices((32, 32)).sum(0)[..., None] % 2 * 255
    unknown = np.zeros(clean.shape[:3], bool)
    unknown[:, 16:48, 16:48] = True
    assert np.sqrt(np.mean(estimate_noise(textured) ** 2)) > 1.5 * estimate
    masked = np.sqrt(np.mean(estimate_noise(textured, unknown) ** 2))
    assert masked == pytest.approx(true, rel=0.15)


def test_denoise_policy_keeps_width_for_light_noise_and_shrinks_it_for_heavy():
    base = settings_for(64 * 64, EncodeOptions(quality=4))
    light, heavy = denoise_settings(base, 5 / 255), denoise_settings(base, 40 / 255)
    assert light.model.width == base.model.width
    assert 8 <= heavy.model.width < base.model.width
    assert heavy.fit.target_psnr < light.fit.target_psnr
    assert heavy.signal_mse == pytest.approx(0.15 * (40 / 255) ** 2)
    with pytest.raises(ValueError):
        denoise_settings(base, 0.0)


def test_mask_image_applies_to_every_frame_and_video_per_frame(tmp_path):
    plane = np.zeros((16, 24), np.uint8)
    plane[4:8, 5:9] = 255
    plane[0, 0] = 127  # below mid-grey: known
    image = read_mask(save_png(tmp_path / "m.png", plane), 3, 5, 16, 24)(0, 5)
    assert image.shape == (5, 16, 24) and image.sum() == 5 * 16
    assert image[:, 4:8, 5:9].all() and not image[:, 0, 0].any()

    frames = np.zeros((6, 16, 24, 3), np.uint8)
    for k in range(6):
        frames[k, k, :] = 255  # frame k masks row k
    clip = write_clip(tmp_path / "m.mkv", frames, "ffv1", "bgr0")
    video = read_mask(clip, 2, 3, 16, 24)
    assert [np.flatnonzero(f.any(axis=1)).tolist() for f in video(0, 3)] == [[2], [3], [4]]
    # Read GOP by GOP, sharing boundary frames, and by a second reader for a segment.
    assert np.array_equal(np.concatenate([video(0, 2), video(1, 2)[1:]]), video(0, 3))
    assert np.array_equal(video.part(1, 3)(1, 2), video(1, 2))
    with pytest.raises(VideoIOError, match="need 7"):
        read_mask(clip, 2, 5, 16, 24)
    with pytest.raises(VideoIOError, match="24x16, the video 24x20"):
        read_mask(clip, 0, 2, 20, 24)
    with pytest.raises(VideoIOError, match="every pixel"):
        read_mask(save_png(tmp_path / "w.png", np.full((16, 24), 255, np.uint8)), 0, 2, 16, 24)


def test_mask_reaches_the_right_frames_of_a_segment():
    clip = moving_pattern(6, 32, 32)
    spoiled = clip.copy()
    spoiled[4, 8:24, 8:24] = 255 - spoiled[4, 8:24, 8:24]
    mask = np.zeros(clip.shape[:3], bool)
    mask[4, 8:24, 8:24] = True
    settings = settings_for(32 * 32, EncodeOptions(preset="fast", gop=3, iters=150))
    segment = GOPPlan([range(2, 5), range(4, 6)], [INTRA, INTRA])  # a segment not from 0
    frames, holes = ArrayFrames(spoiled).part(2, 6), ArrayFrames(mask).part(2, 6)
    plain = fit_segment(frames, segment, settings)
    masked = fit_segment(frames, segment, settings, mask=holes)
    # Both GOPs hold frame 4; measured on its known pixels they fit far better once the
    # spoiled block is ignored.
    for p, m in zip(plain, masked):
        assert m.stats.psnr > p.stats.psnr + 3


def test_harmonic_fill_is_exact_on_a_ramp_and_masks_match_the_protocol():
    ramp = np.broadcast_to((np.arange(32)[None, :, None] * 4 + np.arange(24)[:, None, None] * 2),
                           (2, 24, 32, 3)).astype(np.uint8)
    unknown = np.zeros((2, 24, 32), bool)
    unknown[:, 6:18, 8:20] = True
    holed = np.where(unknown[..., None], 0, ramp).astype(np.uint8)
    assert np.abs(harmonic_fill(holed, unknown).astype(int) - ramp).max() <= 1
    assert region_psnr(ramp, constant_fill(holed, unknown), unknown) < 30
    masks = protocol_masks(144, 176)
    assert masks["squares"].sum() == 5 * 18 * 18 and masks["box"].sum() == 36 * 44
    assert masks["squares"][72, 88] and masks["squares"][36, 44] and masks["squares"][108, 132]
    rows, cols = np.nonzero(masks["box"])
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (54, 89, 66, 109)


def test_denoised_encode_beats_the_noisy_input(tmp_path):
    clean = moving_pattern(6, 32, 32)
    noisy = gaussian(clean, 25.0)
    src = write_clip(tmp_path / "noisy.mkv", noisy, "ffv1", "bgr0")
    result = run("encode", src, tmp_path / "d.anr", *FAST, "--denoise")
    assert result.exit_code == 0, result.output
    level = float(result.output.split("estimated noise ")[1].split()[0])
    assert 20 < level < 30
    assert psnr8(clean, decoded(tmp_path / "d.anr")) > psnr8(clean, noisy) + 3


def test_masked_encode_fills_holes_better_than_a_constant(tmp_path):
    clip = moving_pattern(6, 32, 48)
    plane = np.zeros((32, 48), np.uint8)
    plane[12:20, 20:28] = 255
    unknown = np.broadcast_to(plane > 0, (6, 32, 48))
    holed = np.where(unknown[..., None], 0, clip).astype(np.uint8)
    src = write_clip(tmp_path / "holed.mkv", holed, "ffv1", "bgr0")
    result = run("encode", src, tmp_path / "m.anr", *FAST, "--mask",
                 save_png(tmp_path / "m.png", plane))
    assert result.exit_code == 0, result.output
    filled = region_psnr(clip, decoded(tmp_path / "m.anr"), unknown)
    assert filled > region_psnr(clip, constant_fill(holed, unknown), unknown) + 3


@pytest.mark.parametrize("mask,needle", [
    ("missing.png", "mask: "),
    ("small.png", "is 8x8, the video 48x32"),
    ("text.png", "mask: cannot read"),
])
def test_bad_masks_give_one_line_errors_and_no_output(tmp_path, mask, needle):
    src = write_clip(tmp_path / "in.mkv", moving_pattern(3, 32, 48), "ffv1", "bgr0")
    save_png(tmp_path / "small.png", np.zeros((8, 8), np.uint8))
    (tmp_path / "text.png").write_text("not an image")
    result = run("encode", src, tmp_path / "o.anr", *FAST, "--mask", tmp_path / mask)
    assert result.exit_code == 1, result.output
    assert needle in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "o.anr").exists()
    bad = run("encode", src, tmp_path / "o.anr", *FAST, "--denoise=loud")
    assert bad.exit_code == 2 and not (tmp_path / "o.anr").exists()


def test_eval_denoise_and_inpaint_report_every_method(tmp_path):
    src = write_clip(tmp_path / "tiny.mkv", moving_pattern(5, 24, 32), "ffv1", "bgr0")
    tiny = ["--frames", 5, "--preset", "fast", "--iters", 30, "--gop", 5]
    result = run("eval", "denoise", src, "--out", tmp_path / "d", "--no-plain", *tiny)
    assert result.exit_code == 0, result.output
    rows = {r["method"]: r for r in json.loads((tmp_path / "d" / "denoise.json").read_text())["rows"]}
    assert set(rows) == {"noisy", "nlmeans", "fftdnoiz", "actinr --denoise"}
    assert rows["nlmeans"]["psnr_rgb"] > rows["noisy"]["psnr_rgb"]
    assert max(s["psnr_rgb"] for s in rows["nlmeans"]["sweep"]) == rows["nlmeans"]["psnr_rgb"]
    assert rows["actinr --denoise"]["bpp"] > 0
    result = run("eval", "inpaint", src, "--out", tmp_path / "i", *tiny)
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "i" / "inpaint.json").read_text())["rows"]
    assert {(r["mask"], r["method"]) for r in rows} == {
        (m, k) for m in ("squares", "box")
        for k in ("constant", "harmonic", "removelogo", "actinr --mask")}
    score = {(r["mask"], r["method"]): r["psnr_masked"] for r in rows}
    assert score["box", "harmonic"] > score["box", "constant"]
    assert (tmp_path / "i" / "inpaint.csv").read_text().count("\n") == 1 + len(rows)
