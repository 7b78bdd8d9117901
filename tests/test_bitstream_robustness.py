"""Damaged and hostile files: every failure is a BitstreamError, raised quickly."""

from __future__ import annotations

import contextlib
import struct
import time

import numpy as np
import pytest
from test_bitstream_support import (
    INDEX_ENTRY_BYTES,
    fix_crcs,
    fix_header_crc,
    header_layout,
    sample_gop,
    split_ranges,
    with_raw_tables,
)

from bitstream import AnrReader, BitstreamError, VideoInfo, decode_file, encode_file
from bitstream.entropy import decode_symbols
from bitstream.models import CONSTANT, HISTOGRAM, LAPLACE, SymbolModel
from bitstream.side import Timestamps, encode_side


def small_file() -> bytes:
    rng = np.random.default_rng(5)
    gops = [sample_gop(rng, a, b, width=3) for a, b in split_ranges(7, 4)]
    return encode_file(VideoInfo(32, 24, 7, 25, 1), {"tile": 8, "lr": 0.005, "act": "sine"},
                       gops)


DATA = small_file()
RAW = with_raw_tables(DATA)  # the same content with uncompressed tensor tables


def decode_fully(data: bytes) -> None:
    decode_file(data)


def expect_error(data: bytes, match: str | None = None) -> None:
    begin = time.perf_counter()
    with pytest.raises(BitstreamError, match=match):
        decode_fully(data)
    assert time.perf_counter() - begin < 1.0


def patched(data: bytes, offset: int, fmt: str, *values) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


def test_small_files_are_valid():
    decode_fully(DATA)
    decode_fully(RAW)
    assert len(DATA) < len(RAW) < 1500


def test_every_truncation_fails():
    for length in range(len(DATA)):
        expect_error(DATA[:length])


def test_bad_magic_and_version():
    expect_error(b"RIFF" + DATA[4:], "bad magic")
    expect_error(b"", "truncated")
    expect_error(patched(DATA, 8, "<I", 7), "unsupported format version 7")
    expect_error(fix_header_crc(patched(DATA, 8, "<I", 7)), "unsupported format version 7")


@pytest.mark.parametrize("offset,fmt,values,message", [
    (24, "<I", (10**9,), "implausible frame count 1000000000"),
    (16, "<II", (10**6, 10**6), "frame size 1000000x1000000 exceeds limit"),
    (16, "<I", (0,), "invalid frame size"),
    (32, "<I", (0,), "invalid frame rate"),
    (36, "<B", (200,), "unknown colour code 200"),
    (24, "<I", (1,), "GOP count 2 inconsistent with 1 frames"),
    (24, "<I", (8,), "GOPs end at frame 7, the video has 8"),
])
def test_header_limits_with_valid_crc(offset, fmt, values, message):
    expect_error(fix_header_crc(patched(DATA, offset, fmt, *values)), message)


def test_lying_index():
    crc_at, count, first = header_layout(DATA)
    offset, length, start, stop = struct.unpack_from("<QIII", DATA, first)
    second = first + INDEX_ENTRY_BYTES
    lies = [
        (first, "<Q", offset + 1, "offset"),
        (first, "<Q", 2**63, "offset"),
        (first + 8, "<I", length + 1, "offset"),  # GOP 1 then starts one byte late
        (second + 8, "<I", 2**32 - 1, "truncated: GOP 1 chunk ends past end of file"),
        (second + 8, "<I", 3, "unexpected bytes after the last GOP"),
        (first + 12, "<I", stop + 1, "frame"),
        (first + 20, "<B", 1, "predicted GOP 0 must predict from GOP -1"),
        (first + 20, "<B", 7, "GOP 0 has unknown kind 7"),
        (first + 21, "<I", 0, "intra GOP 0 names a reference"),
        (second + 20, "<B", 1, "predicted GOP 1 must predict from GOP 0, not None"),
        (first - 4, "<I", count + 1, "index"),
        (first - 4, "<I", 2**31, "GOP count"),
    ]
    for at, fmt, value, message in lies:
        expect_error(fix_header_crc(patched(DATA, at, fmt, value)), message)
    expect_error(DATA + b"\0", "unexpected bytes after the last GOP")
    expect_error(patched(DATA, 12, "<I", 2**32 - 1), "truncated: header")


def test_flipped_bits_are_caught_by_crcs():
    crc_at, _, _ = header_layout(DATA)
    for position in range(12, len(DATA), 7):
        for bit in (0, 5):
            damaged = bytearray(DATA)
            damaged[position] ^= 1 << bit
            expect_error(bytes(damaged),
                         "CRC mismatch|truncated|bad magic|version|unexpected bytes|chunk")


def test_chunk_fields_with_valid_crc():
    _, _, first = header_layout(DATA)
    chunk = struct.unpack_from("<Q", DATA, first)[0]
    body = chunk + 8  # gop, start, stop, kind, reference, tensors, coding, stored, raw
    cases = [
        (body, "<I", 1, "chunk says GOP 1"),
        (body + 12, "<B", 1, "chunk says kind 1"),
        (body + 13, "<I", 0, "chunk says kind 0 with reference 0"),
        (body + 17, "<H", 1025, "1025 tensors exceeds limit"),
        (body + 17, "<H", 50, "truncated|ends early"),
        (body + 19, "<B", 9, "unknown table coding 9"),
        (body + 20, "<I", 2**31, "truncated|ends early"),
        (body + 24, "<I", 2**30, "exceeds limit|disagree|wrong size"),
        (chunk, "<4s", b"ANRX", "bad chunk tag"),
    ]
    for at, fmt, value, message in cases:
        expect_error(fix_crcs(patched(DATA, at, fmt, value)), message)


@pytest.mark.parametrize("original", [DATA, RAW], ids=["zstd", "raw"])
def test_mutation_fuzzer(original):
    rng = np.random.default_rng(2024)
    for _ in range(300):
        data = bytearray(original)
        for _ in range(int(rng.integers(1, 4))):
            where = int(rng.integers(0, len(data) + 1))
            operation = rng.integers(0, 4)
            if operation == 0 and where < len(data):
                data[where] ^= 1 << int(rng.integers(0, 8))
            elif operation == 1:
                data[where:where] = rng.bytes(int(rng.integers(1, 5)))
            elif operation == 2:
                del data[where:where + int(rng.integers(1, 5))]
            else:
                del data[where:]
        expect_error(bytes(data))


@pytest.mark.parametrize("original", [DATA, RAW], ids=["zstd", "raw"])
def test_structure_aware_fuzzer_behind_the_crcs(original):
    """Mutate, then repair every CRC: the parsers themselves must hold."""
    rng = np.random.default_rng(99)
    specials = [0, 1, 255, 2**16 - 1, 2**20, 2**21, 2**31 - 1, 2**32 - 1]
    for _ in range(500):
        data = bytearray(original)
        for _ in range(int(rng.integers(1, 3))):
            where = int(rng.integers(0, len(data) - 4))
            if rng.integers(0, 2):
                data[where] = int(rng.integers(0, 256))
            else:
                struct.pack_into("<I", data, where, int(rng.choice(specials)))
        begin = time.perf_counter()
        with contextlib.suppress(BitstreamError):
            decode_fully(fix_crcs(data))
        assert time.perf_counter() - begin < 1.0


def test_constant_tensors_take_no_memory():
    """A damaged table may declare a constant tensor of any allowed size: it decodes to a
    view of its one value, not to that many integers."""
    big, = decode_symbols(b"", [(SymbolModel(CONSTANT, -3, -3), 2**28)])
    assert big.shape == (2**28,) and big.strides == (0,) and int(big[12345]) == -3
    assert not big.flags.writeable


def test_entropy_decoder_on_garbage():
    rng = np.random.default_rng(3)
    models = [SymbolModel(LAPLACE, -5, 5, centre=0, decay=40000),
              SymbolModel(LAPLACE, -2**12, 2**12, centre=7, decay=65535),
              SymbolModel(HISTOGRAM, 0, 3, counts=np.array([5, 0, 1, 4]))]
    for _ in range(200):
        model = models[int(rng.integers(0, len(models)))]
        words = rng.integers(0, 2**32, int(rng.integers(0, 6)), dtype=np.uint32)
        count = int(rng.integers(1, 50))
        try:
            (symbols,) = decode_symbols(words.astype("<u4").tobytes(), [(model, count)])
        except BitstreamError:
            continue
        assert symbols.shape == (count,)
        assert model.lo <= symbols.min() and symbols.max() <= model.hi
    with pytest.raises(BitstreamError, match="multiple of 4"):
        decode_symbols(b"abc", [(models[0], 1)])


def test_reader_on_files(tmp_path):
    path = tmp_path / "cut.anr"
    path.write_bytes(DATA[:-3])
    with pytest.raises(BitstreamError, match="truncated"):
        AnrReader(path)
    path.write_bytes(DATA)
    with AnrReader(path) as reader:
        path.write_bytes(DATA[:100])  # the file shrinks under an open reader
        with pytest.raises(BitstreamError):
            reader.read_gop(len(reader.index) - 1)
    with pytest.raises(FileNotFoundError):
        AnrReader(tmp_path / "missing.anr")


def side_file(timestamps=None, streams: bytes | None = b"\x1aE\xdf\xa3 stream bytes") -> bytes:
    rng = np.random.default_rng(6)
    gops = [sample_gop(rng, a, b, width=3) for a, b in split_ranges(7, 4)]
    stamps = timestamps or Timestamps(1, 1000, (0, 33, 67, 100, 167, 233, 300))
    return encode_file(VideoInfo(32, 24, 7, 25, 1), {"tile": 8}, gops, stamps, streams)


def test_side_section_round_trips_and_every_truncation_fails():
    data = side_file()
    with AnrReader(data) as reader:
        assert reader.timestamps.pts == (0, 33, 67, 100, 167, 233, 300)
        assert reader.read_streams() == b"\x1aE\xdf\xa3 stream bytes"
    for length in range(len(data) - 80, len(data)):
        expect_error(data[:length])


def test_side_section_damage_is_refused():
    data = side_file()
    side_at = len(data) - len(encode_side(7, Timestamps(1, 1000, (0, 33, 67, 100, 167, 233, 300)),
                                          b"\x1aE\xdf\xa3 stream bytes"))
    flipped = bytearray(data)
    flipped[-10] ^= 1
    expect_error(bytes(flipped), "side section CRC mismatch")
    renamed = bytearray(data)
    renamed[side_at:side_at + 4] = b"WHAT"
    expect_error(bytes(renamed), "unknown side box type")
    expect_error(data + b"\0", "unexpected bytes after the last GOP")


def test_side_section_values_are_checked():
    with pytest.raises(BitstreamError, match="must rise"):
        side_file(Timestamps(1, 1000, (0, 33, 33, 100, 167, 233, 300)))
    with pytest.raises(BitstreamError, match="7 frames"):
        side_file(Timestamps(1, 1000, (0, 33)))
    with pytest.raises(BitstreamError, match="time base"):
        side_file(Timestamps(0, 1000, tuple(range(7))))
    with pytest.raises(BitstreamError, match="carries no streams"), \
            AnrReader(side_file(streams=None)) as reader:
        reader.read_streams()
