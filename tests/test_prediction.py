"""Predicted GOPs, keyframes and seeking (format version 2)."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from synthetic import moving_pattern, write_clip

import actinr_codec as actinr
from actinr_codec.media.videoio import read_video
from actinr_codec.pipeline.decoder import AnrDecoder
from actinr_codec.pipeline.gop import plan_gops
from actinr_codec.pipeline.scenecut import scene_cuts
from bitstream import AnrReader, BitstreamError
from bitstream.records import INTRA, PREDICTED
from cli.main import main

OPTIONS = actinr.EncodeOptions(preset="fast", iters=200, gop=4)


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def chain(single_thread):
    """12 frames in GOPs of 4: intra, then predicted from the one before, and again after
    keyint 8 frames."""
    frames = moving_pattern(12, 32, 32, speed=0.5)
    report = actinr.encode(frames, None, dataclasses.replace(OPTIONS, keyint=8))
    return frames, report


def test_plan_has_intra_gops_every_keyint_and_predicted_between(chain):
    _, report = chain
    assert report.plan.gops == [range(0, 4), range(3, 7), range(6, 9), range(8, 12)]
    assert report.plan.kinds == [INTRA, PREDICTED, PREDICTED, INTRA]
    with AnrReader(report.data) as reader:
        assert [(e.kind, e.reference) for e in reader.index] == [
            (INTRA, None), (PREDICTED, 0), (PREDICTED, 1), (INTRA, None)]


def test_seeking_decodes_only_the_chain_and_matches_a_full_decode(chain):
    _, report = chain
    with actinr.open(report.data, "cpu") as video:
        full = video.render()
    decoder = AnrDecoder(report.data)
    seeked = np.stack(list(decoder.frames([6.0, 7.0, 7.5], 32, 32)))
    assert decoder.decoded == [0, 1, 2]  # the chain back to the intra GOP, nothing after
    assert np.array_equal(seeked[:2], full[6:8])
    decoder = AnrDecoder(report.data)
    assert np.array_equal(next(decoder.frames([10.0], 32, 32)), full[10])
    assert decoder.decoded == [3]  # an intra GOP needs nothing before it


def test_cli_cut_inside_a_predicted_chain_equals_the_full_decode(chain, tmp_path):
    _, report = chain
    anr = tmp_path / "c.anr"
    anr.write_bytes(report.data)
    runner = CliRunner()
    full, cut = tmp_path / "full.mkv", tmp_path / "cut.mkv"
    assert runner.invoke(main, ["decode", str(anr), str(full), "--lossless"]).exit_code == 0
    # 25 fps: frames 4 and 5 (0.16 and 0.20 s), in the first predicted GOP.
    result = runner.invoke(main, ["decode", str(anr), str(cut), "--lossless", "--start", "0.16",
                                  "--end", "0.24"])
    assert result.exit_code == 0, result.output
    whole, cut_frames = read_video(full)[0], read_video(cut)[0]
    assert len(cut_frames) == 2 and np.array_equal(cut_frames, whole[4:6])


def corrupt_chunk(data: bytes, k: int) -> bytes:
    with AnrReader(data) as reader:
        entry = reader.index[k]
    damaged = bytearray(data)
    damaged[entry.offset + entry.length // 2] ^= 0x40
    return bytes(damaged)


def test_a_damaged_intra_gop_fails_the_gops_predicted_from_it(chain, tmp_path):
    _, report = chain
    damaged = corrupt_chunk(report.data, 0)
    with pytest.raises(BitstreamError, match="GOP 2 depends on GOP 0, which cannot be "
                                             "decoded: GOP 0 CRC mismatch"):
        next(AnrDecoder(damaged).frames([7.0], 32, 32))
    # The next intra GOP does not depend on it.
    next(AnrDecoder(damaged).frames([10.0], 32, 32))
    anr = tmp_path / "d.anr"
    anr.write_bytes(damaged)
    result = CliRunner().invoke(main, ["decode", str(anr), str(tmp_path / "o.mkv"),
                                       "--start", "0.28"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: GOP 2 depends on GOP 0, which cannot be decoded: GOP 0 CRC mismatch"]
    assert not (tmp_path / "o.mkv").exists()


def test_a_truncated_file_is_refused_at_once(chain):
    _, report = chain
    with AnrReader(report.data) as reader:
        cut = reader.index[1].offset + 10
    with pytest.raises(BitstreamError, match="truncated: GOP 1 chunk ends past end of file"):
        actinr.open(report.data[:cut])


def test_predicted_gops_of_a_still_scene_cost_little(single_thread):
    still = np.repeat(moving_pattern(1, 32, 32), 10, axis=0)
    report = actinr.encode(still, None, OPTIONS)
    assert report.plan.kinds == [INTRA, PREDICTED, PREDICTED]
    for gop in report.gops[1:]:
        residuals = np.concatenate([t.symbols.ravel() for t in gop.coded.record().tensors])
        assert np.mean(residuals == 0) > 0.9  # most parameters stay at the reference
    intra = actinr.encode(still, None, dataclasses.replace(OPTIONS, keyint=1))
    lengths = [len(g.coded.chunk) for g in report.gops]
    # Tiny tiles: the tensor tables alone are a few hundred bytes of each chunk, against
    # the same frames coded intra.
    assert all(length < 0.5 * len(g.coded.chunk) for length, g in zip(lengths[1:], intra.gops[1:]))
    # ...and lose nothing against the picture they predict from.
    assert all(g.stats.psnr > report.gops[0].stats.psnr - 0.1 for g in report.gops[1:])
    # The GOPs together, without the header both files share.
    assert sum(lengths) < 0.7 * sum(len(g.coded.chunk) for g in intra.gops)


def test_scene_cuts_start_intra_gops_without_a_shared_frame(single_thread):
    first = moving_pattern(6, 32, 32)
    second = (moving_pattern(5, 32, 32, speed=2)[..., ::-1] // 2).astype(np.uint8)
    frames = np.concatenate([first, second])
    assert scene_cuts(frames) == [6]
    report = actinr.encode(frames, None, OPTIONS)
    assert report.plan.gops == [range(0, 3), range(2, 6), range(6, 9), range(8, 11)]
    assert report.plan.kinds == [INTRA, PREDICTED, INTRA, PREDICTED]
    with actinr.open(report.data, "cpu") as video:
        decoded = video.render()
    psnr = 10 * np.log10(255**2 / np.mean((decoded.astype(float) - frames) ** 2))
    assert psnr > 20
    no_cut = actinr.encode(frames, None, dataclasses.replace(OPTIONS, scenecut=False))
    assert no_cut.plan.kinds == [INTRA, PREDICTED, PREDICTED, PREDICTED]


def test_plan_gops():
    plan = plan_gops(48, 24, 250)
    assert plan.gops == [range(0, 17), range(16, 32), range(31, 48)]  # no short tail GOP
    assert plan.kinds == [INTRA, PREDICTED, PREDICTED]
    plan = plan_gops(20, 8, 250, cuts=[9, 10])  # a one-frame scene is a GOP of its own
    assert plan.gops == [range(0, 5), range(4, 9), range(9, 10), range(10, 15), range(14, 20)]
    assert plan.kinds == [INTRA, PREDICTED, INTRA, INTRA, PREDICTED]
    assert plan_gops(30, 8, 1).kinds == [INTRA] * 5
    assert plan.intra_runs() == [[0, 1], [2], [3, 4]]


def test_write_clip_round_trip_keeps_kinds(chain, tmp_path):
    frames, _ = chain
    src = write_clip(tmp_path / "in.mkv", frames, "ffv1", "bgr0", Fraction(25))
    out = tmp_path / "o.anr"
    result = CliRunner().invoke(main, ["encode", str(src), str(out), "--preset", "fast",
                                       "--iters", "40", "--gop", "4", "--keyint", "6"])
    assert result.exit_code == 0, result.output
    with AnrReader(out) as reader:
        assert [e.kind for e in reader.index] == [INTRA, PREDICTED, INTRA, PREDICTED]


@pytest.mark.parametrize("scene_cut", [False, True])
def test_keyint_bounds_intra_distance_on_a_long_clip(tmp_path, scene_cut):
    """The plan of a real 300-frame file at --keyint 50 (default GOP, scene detection on):
    intra GOPs start at most 50 frames apart and the last within 50 of the end; with a
    cut at frame 160, an intra GOP starts there too. The encode is stopped at its plan."""
    clip = moving_pattern(300, 16, 16)
    if scene_cut:
        clip[160:] = 255 - moving_pattern(140, 16, 16, speed=2)
    src = write_clip(tmp_path / "long.mkv", clip, "ffv1", "bgr0", Fraction(25))

    class Planned(Exception):
        pass

    def stop_at_start(event):
        if event.kind == "start":
            raise Planned(event.plan)

    with pytest.raises(Planned) as planned:
        actinr.encode(src, None, actinr.EncodeOptions(keyint=50), progress=stop_at_start)
    plan = planned.value.args[0]
    starts = [g.start for g, kind in zip(plan.gops, plan.kinds) if kind == INTRA]
    assert all(b - a <= 50 for a, b in zip(starts, starts[1:])), starts
    assert 299 - starts[-1] <= 50
    assert (160 in starts) == scene_cut
