"""The library API: encode to a path or to bytes, progress events, open and render, decode."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import pytest
import torch
from synthetic import moving_pattern, write_clip

import actinr_codec as actinr
from actinr_codec.media.videoio import read_video
from bitstream import BitstreamError
from bitstream.records import INTRA, PREDICTED

OPTIONS = actinr.EncodeOptions(preset="fast", iters=60, gop=4)


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    """One torch thread for the whole module: a file is reproducible for a given thread
    count, and the module-scoped encode runs before any function-scoped fixture."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def frames():
    return moving_pattern(6, 32, 48)


@pytest.fixture(scope="module")
def encoded(frames, single_thread):
    events = []
    report = actinr.encode(frames, None, OPTIONS, fps=Fraction(30000, 1001), progress=events.append)
    return report, events


def test_encode_to_bytes_reports_what_it_wrote(encoded, frames):
    report, _ = encoded
    assert report.path is None and report.size == len(report.data) > 0
    plan = report.plan
    assert (plan.width, plan.height, plan.frames, plan.fps) == (48, 32, 6, Fraction(30000, 1001))
    assert plan.gops == [range(0, 3), range(2, 6)] and len(report.gops) == 2
    assert plan.kinds == [INTRA, PREDICTED]  # the second GOP predicts from the first
    assert report.bpp == pytest.approx(report.size * 8 / (48 * 32 * 6))
    assert report.psnr == pytest.approx(np.mean([g.stats.psnr for g in report.gops]))


def test_progress_events_come_in_order(encoded):
    report, events = encoded
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds.count("start") == 1
    gop_events = [e for e in events if e.kind == "gop"]
    assert [e.gop for e in gop_events] == [0, 1]
    assert [e.report for e in gop_events] == report.gops
    steps = [e for e in events if e.kind == "step"]
    assert steps and all(0 < e.step <= OPTIONS.iters for e in steps)
    # Each fitting check names the GOP being fitted: the first GOP's come before its end.
    first_done = kinds.index("gop")
    assert all(e.gop == 0 for e in events[:first_done] if e.kind == "step")


def test_path_and_bytes_encode_alike_and_open_alike(encoded, frames, tmp_path):
    report, _ = encoded
    path = tmp_path / "v.anr"
    again = actinr.encode(frames, path, OPTIONS, fps=Fraction(30000, 1001))
    assert again.path == path and again.data is None
    assert path.read_bytes() == report.data  # same seed, same machine: same file
    with actinr.open(report.data) as from_bytes, actinr.open(path) as from_path:
        assert from_bytes.info == from_path.info
        assert np.array_equal(from_bytes.render(), from_path.render())


def test_rendering_at_times_and_sizes(encoded, frames):
    report, _ = encoded
    with actinr.open(report.data) as video:
        assert video.fps == Fraction(30000, 1001) and video.gops == [range(0, 3), range(2, 6)]
        whole = video.render()
        assert whole.shape == frames.shape and whole.dtype == np.uint8
        # Frames 2-5 are the second GOP's: their PSNR is the one the encoder measured.
        mse = np.mean((whole[2:].astype(float) - frames[2:]) ** 2)
        assert 10 * np.log10(255**2 / mse) == pytest.approx(report.gops[1].stats.psnr, abs=0.02)
        assert np.array_equal(video.frame(2.0), whole[2])
        assert video.frame(2.5, scale=2).shape == (64, 96, 3)
        assert video.frame(1, size=(30, 20)).shape == (20, 30, 3)
        times, rate = video.times(fps_scale=2)
        assert times == [k / 2 for k in range(11)] and rate == video.fps
        assert len(list(video.frames(times))) == 11


def test_decode_writes_a_video(encoded, tmp_path):
    report, _ = encoded
    out = tmp_path / "big.mkv"
    done = actinr.decode(report.data, out, scale=2, lossless=True)
    assert (done.frames, done.width, done.height) == (6, 96, 64)
    decoded, info = read_video(out)
    with actinr.open(report.data) as video:
        assert np.array_equal(decoded, video.render(scale=2))
    assert info.fps == Fraction(30000, 1001)


def test_encode_reads_a_path_with_a_frame_range(frames, tmp_path):
    src = write_clip(tmp_path / "in.mkv", frames, "ffv1", "bgr0", Fraction(25))
    report = actinr.encode(src, None, OPTIONS, start=1, frames=4)
    assert (report.plan.frames, report.plan.fps) == (4, Fraction(25))


def test_bad_input_raises_and_writes_nothing(frames, tmp_path):
    out = tmp_path / "x.anr"
    with pytest.raises(ValueError, match="uint8"):
        actinr.encode(frames.astype(np.float32), out, OPTIONS)
    with pytest.raises(ValueError, match="mask"):
        actinr.encode(frames, out, OPTIONS, mask=np.zeros((6, 8, 8), bool))
    with pytest.raises(ValueError, match="shared_input"):
        actinr.encode(frames, out, actinr.EncodeOptions(shared_input=True, scheduler="tcp://x:1"))
    assert not out.exists()
    with pytest.raises(BitstreamError, match="magic"):
        actinr.open(b"not an anr file at all, but long enough to hold a header")


def test_a_diverged_fit_never_reaches_the_writer(frames, tmp_path, monkeypatch):
    """A fit whose parameters end non-finite stops the encode with one message naming the
    GOP; no file is written (rounding NaN would store arbitrary integers)."""
    from actinr_codec.pipeline import encoder

    real = encoder.fit_gop

    def diverging(*args, **kwargs):
        result = real(*args, **kwargs)
        with torch.no_grad():
            result.model.weights[0].fill_(float("nan"))
        return result

    monkeypatch.setattr(encoder, "fit_gop", diverging)
    out = tmp_path / "x.anr"
    with pytest.raises(RuntimeError, match=r"GOP of frames 0-2: tensor weights.0 has values "
                                           r"that are not finite"):
        actinr.encode(frames, out, dataclasses.replace(OPTIONS, iters=5))
    assert list(tmp_path.iterdir()) == []


def test_the_library_leaves_its_host_process_alone():
    """Encoding and decoding through the library neither tunes the allocator nor freezes
    the garbage collector, and never sets torch's thread count, not even for a while; the
    actinr command, which owns its process, does (cli/process.py)."""
    import subprocess
    import sys

    script = (
        "import gc, numpy as np, torch\n"
        "import actinr_codec as actinr\n"
        "from actinr_codec import process\n"
        "threads = torch.get_num_threads()\n"
        "calls, real = [], torch.set_num_threads\n"
        "torch.set_num_threads = lambda n: (calls.append(n), real(n))\n"
        "clip = np.zeros((3, 16, 16, 3), np.uint8)\n"
        "report = actinr.encode(clip, None, actinr.EncodeOptions(preset='fast', iters=5))\n"
        "actinr.open(report.data, 'cpu').render()\n"
        "assert torch.get_num_threads() == threads and calls == [], calls\n"
        "assert gc.get_freeze_count() == 0\n"
        "assert process.tune_allocator.cache_info().currsize == 0\n"
        "print('untouched')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.stdout.strip() == "untouched", done.stderr
