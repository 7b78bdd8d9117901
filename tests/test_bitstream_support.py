"""Shared helpers for the bitstream tests (no tests here): sample GOPs and byte surgery."""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fuzz_inputs import fix_crcs  # noqa: E402,F401 - the fuzzer's CRC repair, re-exported
from bitstream import AnrReader, GOPRecord, TensorRecord, VideoInfo  # noqa: E402

HEADER_PREFIX = 16
INDEX_ENTRY_BYTES = 25  # format version 2: offset, length, start, stop, kind, reference
SIDE_LENGTH_BYTES = 8
CHUNK_HEAD = "<IIIBIHBII"  # gop, start, stop, kind, reference, tensors, coding, stored, raw
TABLE_AT = 8 + struct.calcsize(CHUNK_HEAD)


def split_ranges(frames: int, gop_size: int) -> list[tuple[int, int]]:
    """GOP frame ranges sharing boundary frames, as actinr_codec.pipeline.gop cuts them."""
    ranges, start = [], 0
    while True:
        stop = min(start + gop_size, frames)
        ranges.append((start, stop))
        if stop >= frames:
            return ranges
        start = stop - 1


def laplace_symbols(rng: np.random.Generator, shape, scale: float) -> np.ndarray:
    return np.round(rng.laplace(0.0, scale, shape)).astype(np.int32)


def sample_gop(rng: np.random.Generator, start: int, stop: int, width: int = 8) -> GOPRecord:
    """A small GOP shaped like a fitted model's: weights, biases, a constant, a scalar."""
    tensors = [
        TensorRecord("weights.0", (4, 3, width), 0.015625, laplace_symbols(rng, (4, 3, width), 6)),
        TensorRecord("weights.1", (4, width, width), 0.0078125,
                     laplace_symbols(rng, (4, width, width), 3)),
        TensorRecord("bias.0", (4, width), 0.03125, laplace_symbols(rng, (4, width), 1.5)),
        TensorRecord("latent", (2, 5), 0.25, laplace_symbols(rng, (2, 5), 0.7)),
        TensorRecord("signs", (6, 10), 1.0, rng.choice([-2, 2], (6, 10)).astype(np.int32)),
        TensorRecord("zeros", (3, 3), 1.0, np.zeros((3, 3), np.int32)),
        TensorRecord("scalar", (), 0.5, np.array(-3, np.int32)),
    ]
    return GOPRecord(start, stop, tensors)


def sample_video(seed: int = 0, frames: int = 12, gop_size: int = 5):
    rng = np.random.default_rng(seed)
    info = VideoInfo(width=64, height=48, frames=frames, fps_num=30000, fps_den=1001,
                     colour="bt709")
    config = {"tile": 16, "omega": 12.0, "activation": "sine", "seconds": None,
              "warm_start": True}
    gops = [sample_gop(rng, a, b) for a, b in split_ranges(frames, gop_size)]
    return info, config, gops


def assert_same_gops(expected: list[GOPRecord], actual: list[GOPRecord]) -> None:
    assert len(expected) == len(actual)
    for want, got in zip(expected, actual):
        assert (got.start, got.stop) == (want.start, want.stop)
        assert [t.name for t in got.tensors] == [t.name for t in want.tensors]
        for a, b in zip(want.tensors, got.tensors):
            assert b.shape == tuple(a.shape)
            assert struct.pack("<f", b.step) == struct.pack("<f", a.step)
            assert b.symbols.dtype == np.int32
            np.testing.assert_array_equal(b.symbols, np.asarray(a.symbols))


def header_layout(data: bytes) -> tuple[int, int, int]:
    """(header CRC offset, GOP count, offset of the first index entry) of a valid file."""
    with AnrReader(data) as reader:
        count, first_chunk, version = len(reader.index), reader.index[0].offset, reader.version
    crc_at = first_chunk - 4
    # From version 4 the side section's u64 length follows the index.
    return crc_at, count, crc_at - INDEX_ENTRY_BYTES * count - (SIDE_LENGTH_BYTES if version >= 4 else 0)


def fix_header_crc(data: bytes | bytearray) -> bytes:
    data = bytearray(data)
    (body,) = struct.unpack_from("<I", data, 12)
    end = HEADER_PREFIX + body
    struct.pack_into("<I", data, end, zlib.crc32(data[:end]))
    return bytes(data)


def with_raw_tables(data: bytes) -> bytes:
    """The same file with every zstd tensor table stored raw, so that fuzzing reaches the
    table parser instead of stopping at the decompressor."""
    with AnrReader(data) as reader:
        entries = reader.index
    chunks = []
    for entry in entries:
        chunk = data[entry.offset:entry.offset + entry.length]
        head = struct.unpack_from(CHUNK_HEAD, chunk, 8)
        coding, stored, raw = head[6:]
        table = chunk[TABLE_AT:TABLE_AT + stored]
        if coding == 1:
            table = zstandard.ZstdDecompressor().decompress(table)
        body = (struct.pack(CHUNK_HEAD, *head[:6], 0, raw, raw) + table
                + chunk[TABLE_AT + stored:-4])
        framed = b"ANRG" + struct.pack("<I", len(body)) + body
        chunks.append(framed + struct.pack("<I", zlib.crc32(framed)))
    crc_at, count, first = header_layout(data)
    header = bytearray(data[:crc_at + 4])
    offset = len(header)
    for k, chunk in enumerate(chunks):
        struct.pack_into("<QI", header, first + INDEX_ENTRY_BYTES * k, offset, len(chunk))
        offset += len(chunk)
    return fix_header_crc(header) + b"".join(chunks)
