"""Long encodes: frames streamed from the file, the GOP journal, --resume after kill -9,
and ffmpeg-like progress."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from fractions import Fraction

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from synthetic import moving_pattern, write_clip

import actinr_codec as actinr
from actinr_codec.media.frames import StreamedFrames
from actinr_codec.media.videoio import read_video
from actinr_codec.pipeline.encoder import EncodedGOP, FitStats
from actinr_codec.pipeline.journal import Journal, JournalMismatch, journal_path, read_journal
from actinr_codec.pipeline.source import array_source, file_source
from bitstream.chunk import code_gop
from bitstream.records import INTRA, PREDICTED, GOPRecord, TensorRecord
from cli.main import main

# 13 frames in GOPs of 3 with an intra GOP every 6 frames: intra and predicted GOPs, each
# fitted long enough (~0.7 s) for the test to kill the encoder between two of them.
TINY = ["--preset", "fast", "--iters", "400", "--gop", "3", "--keyint", "6"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("src") / "in.mkv"
    return write_clip(path, moving_pattern(13, 24, 32), "ffv1", "bgr0", Fraction(25))


def test_streamed_frames_match_the_whole_read_gop_by_gop(clip):
    whole, _ = read_video(clip)
    frames = StreamedFrames(clip, 2, 24, 32)
    # GOPs sharing their boundary frame, then a jump ahead, then a step back (re-decodes).
    assert np.array_equal(frames(0, 3), whole[2:5])
    assert np.array_equal(frames(2, 4), whole[4:8])
    assert np.array_equal(frames(9, 2), whole[11:13])
    assert np.array_equal(frames(1, 2), whole[3:5])
    # A segment's reader (or one unpickled in a worker) opens the file itself.
    assert np.array_equal(frames.part(5, 9)(5, 4), whole[7:11])
    with pytest.raises(actinr.media.videoio.VideoIOError, match="ended before frame 13"):
        frames(10, 2)


def test_planning_pass_matches_the_frames_in_memory(clip):
    whole, _ = read_video(clip)
    streamed, held = file_source(clip, 1, 10, True), array_source(whole[1:11], True)
    assert (streamed.count, streamed.height, streamed.width) == (10, 24, 32)
    assert streamed.digest == held.digest and streamed.cuts == held.cuts
    assert streamed.fps == Fraction(25)
    with pytest.raises(ValueError, match="past the end"):
        file_source(clip, 20, None, True)


def test_encoding_a_file_streams_it_to_the_same_bytes_as_its_array(clip, one_thread):
    options = actinr.EncodeOptions(preset="fast", iters=30, gop=4, keyint=8)
    from_file = actinr.encode(clip, None, options, start=1, frames=9)
    from_array = actinr.encode(read_video(clip)[0][1:10], None, options, fps=25)
    assert from_file.data == from_array.data


def _coded(k: int, kind: int, values: np.ndarray) -> EncodedGOP:
    record = GOPRecord(k, k + 3, [TensorRecord("w", values.shape, 0.5, values)], kind)
    stats = FitStats(30.0 + k, 29.5, 29.75 + k / 7, 1.5, 40, values.size, 16.0)
    return EncodedGOP(stats, code_gop(k, record))


def test_journal_keeps_finished_gops_and_drops_a_torn_tail(tmp_path):
    path = tmp_path / "out.anr.journal"
    identity = {"source": "abc", "quality": 4}
    journal = Journal.create(path, identity)
    gops = [_coded(0, INTRA, np.arange(6, dtype=np.int32).reshape(2, 3)),
            _coded(1, PREDICTED, np.array([0, -1, 2], np.int32))]
    for report in gops:
        journal.add(report)
    journal.close()
    whole = path.read_bytes()
    # A kill mid-write leaves part of the next entry: it is dropped, the file cut there.
    path.write_bytes(whole + whole[-30:-3])
    journal, found = Journal.resume(path, identity)
    journal.close()
    assert path.read_bytes() == whole and sorted(found) == [0, 1]
    for k, report in found.items():
        assert report == gops[k]
        assert np.array_equal(report.coded.record().tensors[0].symbols,
                              gops[k].coded.record().tensors[0].symbols)
    # A damaged entry ends the journal there.
    damaged = bytearray(whole)
    damaged[-10] ^= 1
    path.write_bytes(bytes(damaged))
    journal, found = Journal.resume(path, identity)
    journal.close()
    assert sorted(found) == [0]
    with pytest.raises(JournalMismatch, match=r"quality: 4 there, 5 now"):
        Journal.resume(path, {"source": "abc", "quality": 5})
    path.write_bytes(b"not a journal")
    with pytest.raises(ValueError, match="not an actinr journal"):
        Journal.resume(path, identity)


def _encode(*args: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cli.main", "encode", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(__file__)))


def _journaled(path) -> int:
    """GOPs a journal holds (0 before it exists)."""
    try:
        return len(read_journal(path)[1])
    except (FileNotFoundError, ValueError):
        return 0


def test_kill_9_then_resume_gives_the_uninterrupted_bytes(clip, tmp_path):
    whole = tmp_path / "whole.anr"
    done = _encode(clip, whole, *TINY)
    assert done.wait(300) == 0
    # Not a terminal: one progress line per GOP, ffmpeg's fields for the whole video.
    lines = [line for line in done.stderr.read().splitlines() if "frame=" in line]
    assert len(lines) == 6 and lines[0].startswith("GOP 1/6 intra: frames 0-2")
    assert all(f in lines[-1] for f in ("frame=   13/13", "bitrate=", "fps=", "eta=00:00:00"))
    out = tmp_path / "out.anr"
    encoder = _encode(clip, out, *TINY)
    deadline = time.monotonic() + 300
    while _journaled(journal_path(out)) < 2 and encoder.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    encoder.send_signal(signal.SIGKILL)
    encoder.wait()
    assert not out.exists() and journal_path(out).exists()
    kept = _journaled(journal_path(out))
    assert 2 <= kept < 6  # interrupted midway: GOPs to resume and GOPs to fit

    # Another encode's journal is refused with one line, and kept.
    other = _encode(clip, out, *TINY, "--quality", "6", "--resume")
    assert other.wait(300) == 1
    assert "from a different encode (quality: 4 there, 6 now)" in other.stderr.read()
    plain = _encode(clip, out, *TINY)
    assert plain.wait(300) == 1 and "--resume carries on" in plain.stderr.read()

    resumed = _encode(clip, out, *TINY, "--resume")
    assert resumed.wait(300) == 0
    log = resumed.stderr.read()
    assert f"resuming with {kept} of 6 GOPs" in log
    assert out.read_bytes() == whole.read_bytes()
    assert not journal_path(out).exists()


def test_resume_refuses_another_source(clip, tmp_path):
    out = tmp_path / "out.anr"
    changed = moving_pattern(13, 24, 32)
    changed[7] = 255 - changed[7]
    other = write_clip(tmp_path / "other.mkv", changed, "ffv1", "bgr0", Fraction(25))
    options = actinr.EncodeOptions(preset="fast", iters=20, gop=3, keyint=6)

    def stop_after_first_gop(event):
        if event.kind == "gop":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        actinr.encode(clip, out, options, progress=stop_after_first_gop)
    with pytest.raises(JournalMismatch, match="source:"):
        actinr.encode(other, out, dataclasses.replace(options, resume=True))
    assert not out.exists()


def test_parallel_jobs_resume_from_the_journal(clip, tmp_path):
    """Pool workers send each GOP as it finishes, so an interrupted --jobs encode keeps
    them, and resuming hands each segment its finished GOPs."""
    threads = torch.get_num_threads()
    options = actinr.EncodeOptions(preset="fast", iters=20, gop=3, keyint=3, jobs=2)
    reference = actinr.encode(clip, tmp_path / "whole.anr", options)
    out = tmp_path / "out.anr"
    seen = []

    def stop_after_two(event):
        seen.append(event.kind)
        if seen.count("gop") == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        actinr.encode(clip, out, options, progress=stop_after_two)
    assert _journaled(journal_path(out)) == 2
    events = []
    resumed = actinr.encode(clip, out, dataclasses.replace(options, resume=True),
                            progress=events.append)
    assert [e.kind for e in events].count("resume") == 2
    assert out.read_bytes() == (tmp_path / "whole.anr").read_bytes()
    assert resumed.size == reference.size and torch.get_num_threads() == threads


def test_a_journal_with_every_gop_resumes_without_fitting(clip, tmp_path, one_thread):
    """Killed after its last GOP, before the file was written: resuming only writes it."""
    options = actinr.EncodeOptions(preset="fast", iters=20, gop=3, keyint=6)
    whole = actinr.encode(clip, None, options)
    out = tmp_path / "out.anr"

    def stop_at_the_last_gop(event):
        if event.kind == "gop" and event.gop == len(event.plan.gops) - 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        actinr.encode(clip, out, options, progress=stop_at_the_last_gop)
    events = []
    actinr.encode(clip, out, dataclasses.replace(options, resume=True), progress=events.append)
    assert [e.kind for e in events] == ["start"] + ["resume"] * 6
    assert out.read_bytes() == whole.data


def test_pictures_resume_from_the_journal(tmp_path, one_thread):
    """An encode of pictures journals each one: interrupted after the second, it resumes
    with the third alone and gives the uninterrupted bytes; the journal goes once the file
    is written, and a journal of pictures is another encode's to GOP models."""
    frames = moving_pattern(3, 12, 16)
    options = actinr.EncodeOptions(iters=20, representation="latent")
    whole = actinr.encode(frames, None, options)
    out = tmp_path / "out.anr"

    def stop_after_the_second(event):
        if event.kind == "gop" and event.gop == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        actinr.encode(frames, out, options, progress=stop_after_the_second)
    assert not out.exists() and journal_path(out).exists()
    with pytest.raises(JournalMismatch, match="different encode"):
        actinr.encode(frames, out, actinr.EncodeOptions(iters=20, gop=3, resume=True))
    events = []
    actinr.encode(frames, out, dataclasses.replace(options, resume=True), progress=events.append)
    assert [(e.kind, e.gop) for e in events if e.kind != "step"] == [
        ("start", 0), ("resume", 0), ("resume", 1), ("gop", 2)]
    assert out.read_bytes() == whole.data
    assert not journal_path(out).exists()


def _framed_journal(identity: bytes, entries: list[bytes]) -> bytes:
    """A journal with valid CRCs around whatever head and entry payloads it is given."""
    def crc(data: bytes) -> bytes:
        return struct.pack("<I", zlib.crc32(data))

    head = b"ANRJ" + struct.pack("<BI", 1, len(identity)) + identity
    out = head + crc(head)
    for payload in entries:
        framed = struct.pack("<I", len(payload)) + payload
        out += framed + crc(framed)
    return out


@pytest.mark.parametrize("identity,entries", [
    (b"{not json", []),
    (b"[1, 2]", []),
    (b"\xff\xfe", []),
    (b"{}", [b"\x00"]),
    (b"{}", [struct.pack("<I", 2) + b"{}"]),
    (b"{}", [struct.pack("<I", 99) + b"{}"]),
    (b"{}", [struct.pack("<I", 60) + json.dumps({
        "gop": 0, "frames": [0, 3], "kind": 0, "psnr_float": 1, "psnr_quantized": 1,
        "psnr": 1, "seconds": 1, "iters": 1, "params": 1}).encode()[:60] + b"ANRG junk"]),
    (b"{}", [struct.pack("<I", 10) + b'{"gop": 0}']),
], ids=["json", "list", "utf8", "short-entry", "no-fields", "length", "bad-chunk", "fields"])
def test_a_malformed_journal_gives_one_line(tmp_path, identity, entries):
    src = tmp_path / "in.mkv"
    write_clip(src, moving_pattern(4, 16, 16), "ffv1", "bgr0", Fraction(25))
    out = tmp_path / "out.anr"
    journal_path(out).write_bytes(_framed_journal(identity, entries))
    result = CliRunner().invoke(main, ["encode", str(src), str(out), "--resume",
                                       "--iters", "1", "--preset", "fast"])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ") and len(result.output.splitlines()) == 1
    assert "journal" in result.output and not out.exists()
