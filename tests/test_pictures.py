"""Picture GOPs (format version 5): the container's picture records and their checks, and
pictures through the codec (encode, decode at other times and sizes, refusals)."""

from __future__ import annotations

import hashlib
import struct
import time

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from synthetic import moving_pattern, write_clip
from test_bitstream_golden import hashed_ints
from test_bitstream_support import fix_crcs

import actinr_codec as actinr
from actinr_codec.metrics import psnr
from actinr_codec.pipeline.options import EncodeOptions
from bitstream import AnrReader, BitstreamError, GOPRecord, VideoInfo, decode_file, encode_file
from bitstream.pictures import PictureRecord, check_picture, latent_config, picture_layout
from bitstream.records import INTRA, PICTURE
from cli.main import main

INFO = VideoInfo(20, 12, 2, 25, 1)
CONFIG = latent_config(3, 8, 1, 1, 4, 2)


def synthetic_picture(salt: int) -> PictureRecord:
    """A picture of CONFIG's layout from integer hashes alone (reproducible anywhere)."""
    layout = picture_layout(CONFIG, INFO)
    networks, at = [], salt * 1000
    for spread, shapes in zip((64, 16, 512), layout.networks):
        tensors = []
        for shape in shapes:
            n = int(np.prod(shape))
            tensors.append((hashed_ints(n, at) % (2 * spread + 1) - spread).reshape(shape))
            at += n
        networks.append(tensors)
    grids = [(hashed_ints(h * w, at + k) % 7 - 3).reshape(h, w).astype(np.int32)
             for k, (h, w) in enumerate(layout.grids)]
    shifts = [[6, 7, 5, 8], [9, 4], [8] * len(layout.networks[2])]
    return PictureRecord(shifts, networks, grids)


def picture_file(pictures: list[PictureRecord] | None = None) -> bytes:
    pictures = pictures or [synthetic_picture(0), synthetic_picture(1)]
    return encode_file(INFO, CONFIG, [GOPRecord(k, k + 1, [], PICTURE, None, p)
                                      for k, p in enumerate(pictures)])


DATA = picture_file()
# The synthetic file's bytes: a change to how pictures are written fails here first (bump
# the format version and update docs/bitstream.md before this hash).
PICTURE_SHA256 = "3439bfe2eda33eb4336bed823cb0ca2e29dc1e09bbaa77cdc6923a86a5037fe8"


def test_picture_file_bytes_are_pinned():
    assert hashlib.sha256(DATA).hexdigest() == PICTURE_SHA256


def test_pictures_round_trip_exactly():
    pictures = [synthetic_picture(0), synthetic_picture(1)]
    _, config, gops = decode_file(DATA)
    assert config == {"latent": True, "latent_levels": 3, "synthesis_width": 8,
                      "refine_layers": 1, "context_width": 4}
    for want, gop in zip(pictures, gops, strict=True):
        got = gop.picture
        assert (gop.kind, gop.reference, gop.tensors) == (PICTURE, None, [])
        assert got.shifts == want.shifts
        for a, b in zip(got.networks, want.networks, strict=True):
            assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
        assert all(np.array_equal(x, y) for x, y in zip(got.grids, want.grids, strict=True))


def test_layout_follows_the_configuration_and_its_defaults():
    layout = picture_layout({"latent": True}, VideoInfo(33, 17, 1, 25, 1))
    assert layout.grids == ((17, 33), (9, 17), (5, 9), (3, 5), (2, 3), (1, 2), (1, 1))
    assert layout.networks[0] == ((40, 7), (40,), (3, 40), (3,))
    assert layout.networks[1] == ((3, 3, 3, 3), (3,)) * 2
    assert layout.networks[2] == ((8, 12), (8,), (8, 8), (8,), (2, 8), (2,))
    assert latent_config(7, 40, 1, 2, 8, 2) == {"latent": True}
    bare = picture_layout({"latent": True, "synthesis_layers": 0, "refine_layers": 0,
                           "context_layers": 0, "latent_levels": 1}, INFO)
    assert bare.networks == (((3, 1), (3,)), (), ((2, 12), (2,)))


@pytest.mark.parametrize("config,message", [
    ({"latent": True, "tile": 16}, "unknown configuration key 'tile'"),
    ({"latent": True, "latent_levels": 17}, "latent_levels"),
    ({"latent": True, "synthesis_width": 0}, "synthesis_width"),
    ({"latent": True, "context_layers": 4}, "context_layers"),
    ({"latent": True, "refine_layers": 1.0}, "refine_layers"),
    ({"latent": True, "synthesis_layers": True}, "synthesis_layers"),
])
def test_bad_configurations_are_refused(config, message):
    with pytest.raises(BitstreamError, match=message):
        picture_layout(config, INFO)


def test_a_picture_of_too_many_latents_is_refused():
    with pytest.raises(BitstreamError, match="latents exceed"):
        picture_layout({"latent": True}, VideoInfo(16384, 16384, 1, 25, 1))


def test_the_writer_refuses_what_a_reader_would():
    good = synthetic_picture(0)
    with pytest.raises(BitstreamError, match="do not match"):
        check_picture(good, picture_layout(latent_config(4, 8, 1, 1, 4, 2), INFO))
    shifted = synthetic_picture(0)
    shifted.shifts[0][0] = 25
    mixed = synthetic_picture(0)
    mixed.shifts[2][0] = 9
    wide = synthetic_picture(0)
    wide.networks[2][0] = wide.networks[2][0] * 100
    cases = [(shifted, "shift 25"), (mixed, "share one shift"), (wide, "beyond")]
    for picture, message in cases:
        with pytest.raises(BitstreamError, match=message):
            picture_file([picture])
    with pytest.raises(BitstreamError, match="one frame"):
        encode_file(VideoInfo(20, 12, 2, 25, 1), CONFIG,
                    [GOPRecord(0, 2, [], PICTURE, None, good)])


def test_kinds_and_configuration_must_agree():
    from test_bitstream_support import sample_gop

    rng = np.random.default_rng(0)
    with pytest.raises(BitstreamError, match="is latent"):
        encode_file(INFO, CONFIG, [sample_gop(rng, 0, 2, width=3)])
    with pytest.raises(BitstreamError, match="is not latent"):
        encode_file(INFO, {"tile": 8}, [GOPRecord(0, 1, [], PICTURE, None, synthetic_picture(0)),
                                        GOPRecord(1, 2, [], PICTURE, None, synthetic_picture(1))])
    # A version-4 file cannot hold a picture.
    data = bytearray(DATA)
    struct.pack_into("<I", data, 8, 4)
    with pytest.raises(BitstreamError, match="unknown kind 2"):
        decode_file(fix_crcs(data))
    # A file of pictures whose index says intra.
    kind_at = [i for i in range(len(DATA)) if DATA[i:i + 5] == b"\x02\xff\xff\xff\xff"][0]
    with pytest.raises(BitstreamError, match="model GOP in a file whose configuration is latent"):
        decode_file(fix_crcs(DATA[:kind_at] + bytes([INTRA]) + DATA[kind_at + 1:]))


def test_every_truncation_and_damage_is_refused_cleanly():
    for end in range(0, len(DATA), 7):
        with pytest.raises(BitstreamError):
            decode_file(DATA[:end])
    # Behind repaired CRCs the picture parser itself must hold: a BitstreamError or a
    # picture, quickly, never another exception.
    rng = np.random.default_rng(7)
    chunk_at = AnrReader(DATA).index[0].offset
    refused = 0
    for _ in range(300):
        data = bytearray(DATA)
        for _ in range(int(rng.integers(1, 3))):
            where = int(rng.integers(chunk_at + 25, len(data) - 4))
            data[where] = int(rng.integers(0, 256))
        begin = time.perf_counter()
        try:
            decode_file(fix_crcs(data))
        except BitstreamError:
            refused += 1
        assert time.perf_counter() - begin < 1.0
    assert refused > 100


# --- Through the codec ----------------------------------------------------------------------

def smooth_frame(height: int, width: int) -> np.ndarray:
    """(1, H, W, 3) uint8 ramps: what a few hundred steps fit well (the moving pattern's
    fine texture stays near 16 dB at 300)."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 5 % 256, y * 7 % 256, (x + y) * 3 % 256], -1).astype(np.uint8)[None]


@pytest.fixture(scope="module")
def still():
    """One 24x32 frame, encoded with the defaults but the steps."""
    frame = smooth_frame(24, 32)
    return frame, actinr.encode(frame, None, EncodeOptions(iters=300))


def test_one_frame_is_coded_as_a_picture_by_default(still):
    frame, report = still
    assert report.plan.kinds == [PICTURE]
    assert len(report.data) == report.size
    with actinr.open(report.data, "cpu") as video:
        assert video.kinds == [PICTURE] and video.model_config is None
        decoded = video.render()
        # What the encoder measured is what a decoder renders.
        assert psnr(torch.from_numpy(decoded).float() / 255,
                    torch.from_numpy(frame).float() / 255) == pytest.approx(report.psnr)
        assert report.psnr > 24  # 300 steps; a broken decode is near 10
        big = video.render(scale=2)
        assert big.shape == (1, 48, 64, 3)
        # Super-resolution of the same picture: its 2x2 means stay near the frame.
        means = big.reshape(24, 2, 32, 2, 3).mean(axis=(1, 3))
        assert np.abs(means - decoded[0]).mean() < 6


def test_frames_between_pictures_are_blends():
    frames = moving_pattern(3, 16, 20, speed=3)
    events = []
    report = actinr.encode(frames, None, EncodeOptions(iters=60, representation="latent"),
                           progress=events.append)
    assert report.plan.kinds == [PICTURE] * 3
    # Progress as for GOP models: a start, each fit's checks (keep_best's, here every
    # step), each picture as it is done.
    assert [e.kind for e in events if e.kind != "step"] == ["start", "gop", "gop", "gop"]
    steps = [(e.gop, e.step) for e in events if e.kind == "step"]
    assert steps[:2] == [(0, 1), (0, 2)] and steps[-1] == (2, 60) and len(steps) == 180
    with actinr.open(report.data, "cpu") as video:
        ends = video.render([1.0, 2.0]).astype(float)
        quarter = video.render([1.25])[0].astype(float)
    blend = 0.75 * ends[0] + 0.25 * ends[1]
    assert np.abs(quarter - blend).max() <= 1.0
    assert np.abs(ends[0] - ends[1]).max() > 20  # the pictures differ: the blend is seen


def test_a_pictures_fit_runs_torch_on_the_encodes_threads():
    """The command gives torch one thread and the kernel the cores; a picture's fit uses
    no kernel, so it takes the cores for torch while it runs, and gives them back."""
    before = torch.get_num_threads()
    seen = []
    try:
        torch.set_num_threads(1)
        actinr.encode(smooth_frame(8, 8), None, EncodeOptions(iters=3, threads=2),
                      progress=lambda e: seen.append(torch.get_num_threads()))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    steps_threads = set(seen[1:-1])  # between the start and the picture's report
    assert steps_threads == {2}


def test_a_frame_too_large_for_a_pictures_fit_keeps_gop_models(monkeypatch):
    import actinr_codec.api as api

    monkeypatch.setattr(api, "MAX_FIT_BYTES", 0)
    frame = smooth_frame(16, 16)
    assert PICTURE not in actinr.encode(frame, None, EncodeOptions(iters=5)).plan.kinds
    with pytest.warns(UserWarning, match="will need about"):
        report = actinr.encode(frame, None, EncodeOptions(iters=5, representation="latent"))
    assert report.plan.kinds == [PICTURE]


def test_video_keeps_gop_models_by_default():
    report = actinr.encode(moving_pattern(3, 16, 16), None, EncodeOptions(iters=20, gop=3))
    assert PICTURE not in report.plan.kinds


@pytest.mark.parametrize("options,message", [
    (EncodeOptions(representation="latent", bitrate=1e5), "bitrate"),
    (EncodeOptions(representation="latent", denoise=0), "denoising"),
    (EncodeOptions(representation="latent", jobs=2), "parallel jobs"),
    (EncodeOptions(representation="vector"), "auto, latent or mlp"),
])
def test_what_pictures_cannot_do_yet_is_refused(options, message):
    with pytest.raises(ValueError, match=message):
        actinr.encode(moving_pattern(1, 16, 16), None, options)


def test_the_command_line_codes_and_decodes_a_picture(tmp_path):
    src = write_clip(tmp_path / "one.mkv", moving_pattern(1, 24, 32), "ffv1", "bgr0")
    out = tmp_path / "one.anr"
    result = CliRunner().invoke(main, ["encode", str(src), str(out), "--iters", "60"])
    assert result.exit_code == 0, result.output
    assert "picture" in result.output
    info = CliRunner().invoke(main, ["info", str(out)])
    assert info.exit_code == 0 and "latent=True" in info.output and "format version 5" in info.output
    png = tmp_path / "big_%d.png"
    result = CliRunner().invoke(main, ["decode", str(out), str(png), "--scale", "2"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "big_0.png").exists() or (tmp_path / "big_1.png").exists()
    refused = CliRunner().invoke(main, ["encode", str(src), str(tmp_path / "x.anr"),
                                        "--representation", "latent", "--bitrate", "100k"])
    assert refused.exit_code != 0 and "Traceback" not in refused.output
    assert "do not take a bitrate" in refused.output
    assert not (tmp_path / "x.anr").exists()


def test_damaged_latents_fail_as_bitstream_errors_in_the_native_decoder(still):
    """Bytes of the latents' payload changed behind a repaired CRC: each render refuses
    with a BitstreamError or draws a picture; the C decoder never crashes or hangs."""
    _, report = still
    refused = 0
    for back in range(5, 45, 3):
        data = bytearray(report.data)
        data[-back] ^= 0xA5
        with actinr.open(fix_crcs(data), "cpu") as video:
            try:
                assert video.render().shape == (1, 24, 32, 3)
            except BitstreamError:
                refused += 1
    assert refused > 0
