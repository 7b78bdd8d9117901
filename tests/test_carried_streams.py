"""Audio kept through encode and decode as copied packets, and variable frame rates kept
frame by frame (format version 4's side section)."""

from __future__ import annotations

import dataclasses
import io
import subprocess
import sys
from fractions import Fraction

import av
import numpy as np
import pytest
from synthetic import moving_pattern, write_av_clip

import actinr_codec as actinr
from actinr_codec.media.timing import model_clock, variable_timestamps
from bitstream.side import Timestamps

FAST = actinr.EncodeOptions(iters=20, quality=8)
STEADY = [Fraction(k, 25) for k in range(12)]
# The clip, shortened: frames 1/30 s apart, then 1/15 s apart.
UNEVEN = [Fraction(k, 30) for k in range(6)] + [Fraction(5, 30) + Fraction(k, 15)
                                                 for k in range(1, 7)]


def audio_packets(path) -> tuple[list[bytes], float]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        packets = [bytes(p) for p in container.demux(stream) if p.size]
        return packets, container.duration / av.time_base


def frame_times(path) -> list[float]:
    with av.open(str(path)) as container:
        return [frame.time for frame in container.decode(video=0)]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    folder = tmp_path_factory.mktemp("carried")
    return write_av_clip(folder / "talk.mkv", moving_pattern(12, 32, 48), STEADY, "aac")


@pytest.fixture(scope="module")
def encoded(source):
    return actinr.encode(source, None, FAST)


@pytest.mark.parametrize("codec", ["aac", "libopus"])
@pytest.mark.parametrize("container", ["mkv", "mp4"])
def test_audio_packets_survive_encode_and_decode(tmp_path, codec, container):
    src = write_av_clip(tmp_path / "in.mkv", moving_pattern(12, 32, 48), STEADY, codec)
    report = actinr.encode(src, tmp_path / "a.anr", FAST)
    assert report.carried > 0 and report.notes == []
    out = tmp_path / f"out.{container}"
    assert actinr.decode(tmp_path / "a.anr", out).notes == []
    want, want_seconds = audio_packets(src)
    got, got_seconds = audio_packets(out)
    assert got == want
    assert abs(got_seconds - want_seconds) <= 1 / 25


def test_a_cut_encode_carries_the_audio_of_its_frames(tmp_path, source):
    report = actinr.encode(source, tmp_path / "cut.anr", FAST, start=4, frames=6)
    with actinr.open(tmp_path / "cut.anr") as video, av.open(io.BytesIO(video.carried())) as blob:
        starts = [float(p.pts * p.time_base) for p in blob.demux() if p.size]
    assert report.carried > 0
    # Times from the first encoded frame (4/25 s in); packets starting in its 6 frames.
    assert min(starts) >= 0 and max(starts) < 6 / 25
    assert len(starts) < len(audio_packets(source)[0]) / 2


def test_decode_cuts_drops_and_refuses_what_it_cannot_carry(tmp_path, encoded):
    anr = tmp_path / "a.anr"
    anr.write_bytes(encoded.data)
    actinr.decode(anr, tmp_path / "whole.mkv")
    actinr.decode(anr, tmp_path / "cut.mkv", start=0.2, end=0.4)
    packets, seconds = audio_packets(tmp_path / "cut.mkv")
    whole = audio_packets(tmp_path / "whole.mkv")[0]
    assert 0 < len(packets) < len(whole) / 2 and set(packets) <= set(whole)
    assert seconds <= 0.2 + 1 / 25
    slow = actinr.decode(anr, tmp_path / "slow.mkv", fps_scale=2)
    assert any("slow motion" in note for note in slow.notes)
    with av.open(str(tmp_path / "slow.mkv")) as container:
        assert not container.streams.audio
    y4m = actinr.decode(anr, tmp_path / "a.y4m")
    assert any("y4m cannot hold them" in note for note in y4m.notes)
    quiet = actinr.decode(anr, tmp_path / "quiet.mkv", audio=False)
    assert quiet.notes == []
    with av.open(str(tmp_path / "quiet.mkv")) as container:
        assert not container.streams.audio


def test_no_audio_leaves_it_out_and_info_lists_what_is_carried(tmp_path, source, encoded):
    assert actinr.encode(source, None, dataclasses.replace(FAST, audio=False)).carried == 0
    anr = tmp_path / "a.anr"
    anr.write_bytes(encoded.data)
    shown = subprocess.run([sys.executable, "-m", "cli.main", "info", str(anr)],
                           capture_output=True, text=True, check=True).stdout
    assert "carried: audio aac" in shown and "format version 5" in shown


def with_subtitles(path, folder):
    """``path`` remuxed (stream copy) with two SubRip cues beside its streams."""
    srt = folder / "cues.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:00,200\nhello\n\n"
                   "2\n00:00:00,240 --> 00:00:00,400\nworld\n")
    out = folder / "subtitled.mkv"
    with av.open(str(path)) as clip, av.open(str(srt)) as cues, \
            av.open(str(out), "w") as muxed:
        # Every stream is added before the first packet is muxed, as a muxer needs.
        copies = {(n, s.index): muxed.add_stream_from_template(s)
                  for n, source in enumerate((clip, cues)) for s in source.streams}
        for n, source in enumerate((clip, cues)):
            for packet in source.demux():
                if packet.size:
                    packet.stream = copies[n, packet.stream.index]
                    muxed.mux(packet)
    return out


def subtitle_packets(path) -> list[tuple[float, bytes]]:
    with av.open(str(path)) as container:
        if not container.streams.subtitles:
            return []
        stream = container.streams.subtitles[0]
        return [(float(p.pts * p.time_base), bytes(p)) for p in container.demux(stream) if p.size]


def test_subtitles_are_carried_where_the_output_holds_them(tmp_path, source):
    src = with_subtitles(source, tmp_path)
    want = subtitle_packets(src)
    assert [cue for _, cue in want] == [b"hello", b"world"]
    anr = tmp_path / "s.anr"
    actinr.encode(src, anr, FAST)
    shown = subprocess.run([sys.executable, "-m", "cli.main", "info", str(anr)],
                           capture_output=True, text=True, check=True).stdout
    assert "carried: subtitle" in shown and "carried: audio aac" in shown
    actinr.decode(anr, tmp_path / "out.mkv")
    assert subtitle_packets(tmp_path / "out.mkv") == want
    mp4 = actinr.decode(anr, tmp_path / "out.mp4")
    assert any("subtitle" in note and "mkv can" in note for note in mp4.notes)
    assert audio_packets(tmp_path / "out.mp4")[0] == audio_packets(src)[0]
    actinr.decode(anr, tmp_path / "bare.mkv", subtitles=False)
    assert subtitle_packets(tmp_path / "bare.mkv") == []
    assert actinr.encode(src, None, dataclasses.replace(FAST, subtitles=False)).carried < \
        actinr.encode(src, None, FAST).carried


def test_uneven_timestamps_are_told_from_a_coarse_clock():
    # 29.97 fps in Matroska's milliseconds: 33 and 34 ms apart, a constant rate.
    ntsc = [round(k * 1001 / 30) for k in range(30)]
    assert variable_timestamps(ntsc, Fraction(1, 1000)) is None
    stamps = variable_timestamps([int(t * 1000) for t in UNEVEN], Fraction(1, 1000))
    assert stamps is not None
    clock = model_clock(stamps)
    assert clock[0] == 0 and clock[-1] == len(UNEVEN) - 1
    assert clock[6] - clock[5] == pytest.approx(2 * (clock[5] - clock[4]), rel=0.02)
    assert variable_timestamps([0, 5, 5, 9], Fraction(1, 1000)) is None  # not rising


def test_variable_frame_rate_decodes_at_the_source_times(tmp_path):
    src = write_av_clip(tmp_path / "vfr.mp4", moving_pattern(12, 32, 48), UNEVEN, None)
    report = actinr.encode(src, tmp_path / "v.anr", FAST)
    assert report.variable_rate
    with actinr.open(tmp_path / "v.anr") as video:
        assert isinstance(video.timestamps, Timestamps)
        # Frames were fitted at their own times: the 1/15 s gaps are twice the 1/30 s ones.
        times = report.plan.settings.frame_times
        assert times[7] - times[6] == pytest.approx(2 * (times[1] - times[0]))
    for name in ("out.mkv", "out.mp4"):
        actinr.decode(tmp_path / "v.anr", tmp_path / name)
        got = frame_times(tmp_path / name)
        assert len(got) == len(UNEVEN)
        assert max(abs(g - float(t)) for g, t in zip(got, UNEVEN)) <= 0.001
    steady = actinr.decode(tmp_path / "v.anr", tmp_path / "steady.mkv", fps=Fraction(30))
    got = frame_times(tmp_path / "steady.mkv")
    assert steady.fps == 30 and np.allclose(np.diff(got), 1 / 30, atol=0.0011)
    assert abs(got[-1] - float(UNEVEN[-1])) <= 1 / 30
    y4m = actinr.decode(tmp_path / "v.anr", tmp_path / "out.y4m")
    assert any("no timestamps" in note for note in y4m.notes)
