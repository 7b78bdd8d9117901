"""Round trips through bytes and files, GOP lookup by time, atomic writing, input checks."""

from __future__ import annotations

import math
import os
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_bitstream_support import assert_same_gops, sample_video, split_ranges

import bitstream.container
from bitstream import (
    COLOURS,
    AnrReader,
    BitstreamError,
    GOPRecord,
    TensorRecord,
    VideoInfo,
    decode_file,
    encode_file,
    write_anr,
)


def same_config(a: dict, b: dict) -> bool:
    """Equal keys, order, types and values, floats compared bit for bit (NaN, -0.0)."""
    def key(value):
        return struct.pack("<d", value) if isinstance(value, float) else value
    return list(a) == list(b) and all(
        type(a[k]) is type(b[k]) and key(a[k]) == key(b[k]) for k in a)


@st.composite
def tensors(draw, name: str) -> TensorRecord:
    shape = tuple(draw(st.lists(st.integers(0, 6), max_size=4)))
    kind = draw(st.sampled_from(["constant", "laplace", "uniform", "bimodal", "wide"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "constant":
        symbols = np.full(shape, draw(st.integers(-2**20, 2**20)), np.int32)
    elif kind == "laplace":
        symbols = np.round(rng.laplace(draw(st.integers(-50, 50)),
                                       draw(st.floats(0.05, 200)), shape))
    elif kind == "uniform":
        symbols = rng.integers(-3, 4, shape)
    elif kind == "bimodal":
        symbols = rng.choice([-40, -39, 0, 39, 40], shape)
    else:
        symbols = rng.integers(-2**16, 2**16, shape)
    step = draw(st.floats(width=32, allow_nan=False, allow_infinity=False))
    return TensorRecord(name, shape, step, np.asarray(symbols).astype(np.int32))


@st.composite
def videos(draw):
    lengths = draw(st.lists(st.integers(2, 9), min_size=1, max_size=3))
    frames = sum(lengths) - (len(lengths) - 1)
    gops, start = [], 0
    for length in lengths:
        names = draw(st.lists(st.text(st.characters(min_codepoint=33, max_codepoint=126),
                                      min_size=1, max_size=64), max_size=5, unique=True))
        gops.append(GOPRecord(start, start + length, [draw(tensors(n)) for n in names]))
        start += length - 1
    info = VideoInfo(draw(st.integers(1, 16384)), draw(st.integers(1, 16384)), frames,
                     draw(st.integers(1, 2**32 - 1)), draw(st.integers(1, 2**32 - 1)),
                     draw(st.sampled_from(COLOURS)))
    keys = st.text(min_size=1, max_size=16)
    values = st.one_of(st.integers(-2**63, 2**63 - 1), st.floats(), st.text(max_size=40),
                       st.booleans(), st.none())
    config = draw(st.dictionaries(keys, values, max_size=15))
    return info, config, gops


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(videos())
def test_bytes_round_trip(video):
    info, config, gops = video
    got_info, got_config, got_gops = decode_file(encode_file(info, config, gops))
    assert got_info == info
    assert same_config(config, got_config)
    assert_same_gops(gops, got_gops)


def test_file_round_trip(tmp_path):
    info, config, gops = sample_video()
    path = tmp_path / "clip.anr"
    written = write_anr(path, info, config, gops)
    assert written == path.stat().st_size
    assert os.listdir(tmp_path) == ["clip.anr"]
    with AnrReader(path) as reader:
        assert reader.info == info and same_config(config, reader.config)
        assert [(e.start, e.stop) for e in reader.index] == [(g.start, g.stop) for g in gops]
        assert_same_gops(gops[::-1], [reader.read_gop(k) for k in reversed(range(len(gops)))])
        with pytest.raises(IndexError):
            reader.read_gop(len(gops))


def test_extreme_values_round_trip():
    wide = np.array([-2**20, 2**20, 0, 5], np.int32)
    gop = GOPRecord(0, 1, [TensorRecord("wide", (4,), float(np.float32(1e-30)), wide),
                           TensorRecord("one", (1, 1, 1, 1), -2.5, np.array([[[[7]]]])),
                           TensorRecord("empty", (0, 3), 1.0, np.zeros((0, 3), np.int32))])
    info = VideoInfo(16384, 16384, 1, 2**32 - 1, 1)
    config = {"big": 2**63 - 1, "nan": math.nan, "inf": -math.inf, "neg0": -0.0, "s": ""}
    got_info, got_config, got_gops = decode_file(encode_file(info, config, [gop]))
    assert got_info == info and same_config(config, got_config)
    assert_same_gops([gop], got_gops)


@pytest.mark.parametrize("frames,gop_size", [(1, 8), (2, 2), (20, 8), (17, 4), (9, 9)])
def test_gops_for_range(frames, gop_size):
    ranges = split_ranges(frames, gop_size)
    rng = np.random.default_rng(frames)
    gops = [GOPRecord(a, b, []) for a, b in ranges]
    with AnrReader(encode_file(VideoInfo(8, 8, frames, 25, 1), {}, gops)) as reader:
        def serving(t):  # the rule of actinr_codec.pipeline.gop: last GOP starting at or before t
            return max(k for k, (a, _) in enumerate(ranges) if a <= t)
        times = [0.0, frames - 1.0, *[float(a) for a, _ in ranges],
                 *rng.uniform(0, frames - 1, 20)]
        for t0 in times:
            for t1 in times:
                if t0 <= t1:
                    assert reader.gops_for_range(t0, t1) == list(
                        range(serving(t0), serving(t1) + 1))
        for bad in [(-0.5, 0.0), (0.0, frames - 0.5), (1.0, 0.5), (math.nan, 0.0)]:
            if not 0 <= bad[0] <= bad[1] <= frames - 1:
                with pytest.raises(ValueError):
                    reader.gops_for_range(*bad)


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    info, config, gops = sample_video()
    path = tmp_path / "clip.anr"
    with pytest.raises(BitstreamError):
        write_anr(path, info, config, gops[:1])  # GOPs no longer cover the frames
    assert os.listdir(tmp_path) == []

    path.write_bytes(b"previous")

    def interrupted(*args):
        raise KeyboardInterrupt

    for name in ("replace", "fsync"):
        with monkeypatch.context() as patch:
            patch.setattr(bitstream.container.os, name, interrupted)
            with pytest.raises(KeyboardInterrupt):
                write_anr(path, info, config, gops)
        assert os.listdir(tmp_path) == ["clip.anr"]
        assert path.read_bytes() == b"previous"


def _one_tensor_video(tensor: TensorRecord):
    return VideoInfo(8, 8, 2, 25, 1), {}, [GOPRecord(0, 2, [tensor])]


@pytest.mark.parametrize("tensor,message", [
    (TensorRecord("w", (3,), 0.1, np.zeros(3, np.int32)), "not a finite float32"),
    (TensorRecord("w", (3,), math.inf, np.zeros(3, np.int32)), "not a finite float32"),
    (TensorRecord("w", (3,), 1.0, np.zeros(4, np.int32)), "shape"),
    (TensorRecord("w", (3,), 1.0, np.zeros(3, np.float32)), "must be integers"),
    (TensorRecord("w", (1, 1, 1, 1, 1), 1.0, np.zeros((1,) * 5, np.int32)), "dimensions"),
    (TensorRecord("w", (2,), 1.0, np.array([0, 2**20 + 1])), "exceeds"),
    (TensorRecord("é", (1,), 1.0, np.zeros(1, np.int32)), "ascii"),
    (TensorRecord("x" * 65, (1,), 1.0, np.zeros(1, np.int32)), "bytes long"),
])
def test_writer_rejects_bad_tensors(tensor, message):
    with pytest.raises(BitstreamError, match=message):
        encode_file(*_one_tensor_video(tensor))


@pytest.mark.parametrize("info,config,message", [
    (VideoInfo(0, 8, 2, 25, 1), {}, "invalid frame size"),
    (VideoInfo(16385, 8, 2, 25, 1), {}, "exceeds limit"),
    (VideoInfo(8, 8, 2, 25, 0), {}, "frame rate"),
    (VideoInfo(8, 8, 2, 25, 1, "cmyk"), {}, "colour"),
    (VideoInfo(8, 8, 2, 25, 1), {"x": [1]}, "unsupported type"),
    (VideoInfo(8, 8, 2, 25, 1), {"x": 2**63}, "64 bits"),
    (VideoInfo(8, 8, 2, 25, 1), {"": 1}, "config key"),
])
def test_writer_rejects_bad_header(info, config, message):
    gop = GOPRecord(0, 2, [])
    with pytest.raises(BitstreamError, match=message):
        encode_file(info, config, [gop])


def test_writer_rejects_bad_gop_ranges():
    info = VideoInfo(8, 8, 10, 25, 1)
    for ranges in ([(0, 6), (7, 10)], [(0, 6), (5, 9)], [(1, 10)], [(0, 10), (9, 10)],
                   [(0, 6), (5, 6), (6, 10)], []):
        with pytest.raises(BitstreamError):
            encode_file(info, {}, [GOPRecord(a, b, []) for a, b in ranges])
    names = [TensorRecord("a", (1,), 1.0, np.zeros(1, np.int32))] * 2
    with pytest.raises(BitstreamError, match="duplicate"):
        encode_file(info, {}, [GOPRecord(0, 10, names)])
