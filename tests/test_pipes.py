"""Standard streams: `actinr encode -` reads a piped video, `actinr decode F -` writes one,
through real subprocesses as a shell pipeline would run them."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import av
import pytest
from synthetic import moving_pattern, write_clip

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--preset", "fast", "--iters", "20", "--gop", "4"]


def actinr(*args, stdin=None, tmpdir=None) -> subprocess.CompletedProcess:
    env = None if tmpdir is None else {**os.environ, "TMPDIR": str(tmpdir)}
    return subprocess.run([sys.executable, "-m", "cli.main", *map(str, args)], cwd=ROOT,
                          stdin=stdin, capture_output=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def y4m(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pipes")
    return write_clip(folder / "clip.y4m", moving_pattern(6, 32, 48), "rawvideo", "yuv420p")


def test_a_piped_y4m_encodes_to_the_file_encodes_bytes(y4m, tmp_path):
    from_file, from_pipe = tmp_path / "file.anr", tmp_path / "pipe.anr"
    done = actinr("encode", y4m, from_file, *FAST)
    assert done.returncode == 0, done.stderr
    spool = tmp_path / "spool"
    spool.mkdir()
    with open(y4m, "rb") as stdin:
        done = actinr("encode", "-", from_pipe, *FAST, stdin=stdin, tmpdir=spool)
    assert done.returncode == 0, done.stderr
    assert from_pipe.read_bytes() == from_file.read_bytes()
    assert list(spool.glob(".actinr-stdin-*")) == []  # the spooled input went with it
    empty = actinr("encode", "-", tmp_path / "none.anr", stdin=subprocess.DEVNULL,
                   tmpdir=spool)
    assert empty.returncode == 1 and b"standard input held no video" in empty.stderr
    assert not (tmp_path / "none.anr").exists() and list(spool.glob(".actinr-stdin-*")) == []


@pytest.fixture(scope="module")
def anr(y4m) -> Path:
    path = y4m.with_suffix(".anr")
    done = actinr("encode", y4m, path, *FAST)
    assert done.returncode == 0, done.stderr
    return path


@pytest.mark.parametrize(("options", "format_name", "fps_scale", "size"), [
    ([], "yuv4mpegpipe", None, (48, 32)),
    (["--scale", "2", "--fps-scale", "2", "-f", "mkv"], "matroska,webm", 2, (96, 64)),
])
def test_decoding_to_standard_output_streams_a_readable_video(anr, options, format_name,
                                                               fps_scale, size):
    import actinr_codec

    with actinr_codec.open(anr, "cpu") as video:
        frames = len(video.times(fps_scale)[0])
    assert frames == (6 if fps_scale is None else 11)
    done = actinr("decode", anr, "-", *options)
    assert done.returncode == 0, done.stderr
    assert b"wrote standard output" in done.stderr
    with av.open(io.BytesIO(done.stdout)) as container:
        assert container.format.name == format_name
        pictures = list(container.decode(video=0))
    assert len(pictures) == frames
    assert {(p.width, p.height) for p in pictures} == {size}


def test_a_format_that_needs_seeking_is_refused_for_a_pipe(anr):
    done = actinr("decode", anr, "-", "-f", "mp4")
    assert done.returncode == 1 and done.stdout == b""
    assert done.stderr.decode().strip().splitlines() == [
        "Error: cannot stream mp4 to standard output, which cannot seek (use y4m or mkv)"]
