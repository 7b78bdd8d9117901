"""Golden file: the exact bytes of a fixed small video, so that any change to the layout,
the model construction, the encoder's choices or the coder fails loudly.

If this fails after an intended format change, bump bitstream.header.VERSION, update
docs/bitstream.md, and only then the hash; keep the old version's bytes in
tests/golden/vN/container.anr, which must go on decoding. If only the zstandard or
constriction library changed, check whether old files still decode before touching
anything.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import zstandard
from test_bitstream_support import assert_same_gops

from bitstream import (
    FORMAT_VERSION,
    AnrReader,
    GOPRecord,
    TensorRecord,
    VideoInfo,
    decode_file,
    encode_file,
)
from bitstream.models import LAPLACE, SymbolModel, model_weights
from bitstream.records import INTRA, PREDICTED
from bitstream.side import Timestamps

GOLDEN_SHA256 = "a572a347c273cca5c17034c45b296cf3e9cc2ff163781f9a3216afc62baf5c72"
# The same video as written by format versions 1 to 4, kept as they were (version 4's
# differs from version 5's only in the version field and the header CRC).
V1_CONTAINER = Path(__file__).parent / "golden" / "v1" / "container.anr"
V1_SHA256 = "e125276241a6543a553b1488a2500be4e6bec6e8b84a64b92002220606e1663b"
V2_CONTAINER = Path(__file__).parent / "golden" / "v2" / "container.anr"
V2_SHA256 = "0fe3d3a97ec41ab683c7fd7ced09b068367a856094372d313e7113ecd9e3b554"
V3_CONTAINER = Path(__file__).parent / "golden" / "v3" / "container.anr"
V3_SHA256 = "183ec7527ee2c0449a78f689b5c9ff0ee4c368c7dd5fd7c59916285aacce4276"
V4_CONTAINER = Path(__file__).parent / "golden" / "v4" / "container.anr"
V4_SHA256 = "d07b4cc51e544ec0b7519b7cd75443c819bce1152fef2bb188490ce07271138f"
EARLIER = {1: (V1_CONTAINER, V1_SHA256), 2: (V2_CONTAINER, V2_SHA256),
           3: (V3_CONTAINER, V3_SHA256), 4: (V4_CONTAINER, V4_SHA256)}
# Version 4's side section: uneven frame times and carried-stream bytes (opaque to the
# container layer; the end-to-end goldens carry a real Matroska audio track).
GOLDEN_TIMESTAMPS = Timestamps(1, 90000, (-3003, 0, 3003, 9009, 12012, 15015, 21021, 27027,
                                          30030))
GOLDEN_STREAMS = bytes(range(256)) * 3


def hashed_ints(n: int, salt: int) -> np.ndarray:
    """Deterministic pseudo-random 32-bit integers from integer arithmetic only (numpy's
    random streams may change between versions)."""
    x = (np.arange(n, dtype=np.uint64) + np.uint64(salt)) * np.uint64(0x9E3779B97F4A7C15)
    x ^= x >> np.uint64(29)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    return (x >> np.uint64(32)).astype(np.int64)


def geometric_symbols(n: int, salt: int, spread: int) -> np.ndarray:
    """Two-sided, roughly geometric symbols: a hash's trailing-zero count, signed and
    scaled by spread, plus a small uniform part."""
    h = hashed_ints(n, salt)
    zeros = sum(((h & ((1 << (b + 1)) - 1)) == 0).astype(np.int64) for b in range(31))
    sign = np.where(h & (1 << 31), -1, 1)
    return (sign * zeros * spread + (h >> 28) % spread).astype(np.int32)


def golden_video(version: int = FORMAT_VERSION):
    """Version 1: two intra GOPs sharing frame 4. Version 2 adds a predicted GOP and a
    scene cut: GOPs [0, 5) intra, [4, 7) predicted from it, [7, 9) intra."""
    info = VideoInfo(176, 144, 9, 30000, 1001, "bt709")
    config = {"tile": 32, "omega": 12.0, "max_freq": 0.25, "activation": "sine",
              "seconds": None, "warm_start": True, "seed": -7}
    ranges = [(0, 5), (4, 9)] if version == 1 else [(0, 5), (4, 7), (7, 9)]
    kinds = [INTRA, INTRA] if version == 1 else [INTRA, PREDICTED, INTRA]
    gops = []
    for k, (start, stop) in enumerate(ranges):
        signs = np.where(hashed_ints(40, 100 + k) % 2 == 0, -3, 3).astype(np.int32)
        gops.append(GOPRecord(start, stop, [
            TensorRecord("weights.0", (2, 3, 8), 0.0078125, geometric_symbols(48, k, 2)
                         .reshape(2, 3, 8)),
            TensorRecord("weights.1", (2, 8, 8), 0.00390625, geometric_symbols(128, 10 + k, 1)
                         .reshape(2, 8, 8)),
            TensorRecord("signs", (40,), 0.5, signs),
            TensorRecord("zeros", (2, 2), 1.0, np.zeros((2, 2), np.int32)),
            TensorRecord("empty", (0,), 1.0, np.zeros(0, np.int32)),
            TensorRecord("scalar", (), 0.25, np.array(k - 1, np.int32)),
        ], kinds[k], None if kinds[k] == INTRA else k - 1))
    return info, config, gops


def golden_file() -> bytes:
    return encode_file(*golden_video(), GOLDEN_TIMESTAMPS, GOLDEN_STREAMS)


def test_golden_bytes():
    info, config, gops = golden_video()
    data = golden_file()
    assert FORMAT_VERSION == 5
    assert hashlib.sha256(data).hexdigest() == GOLDEN_SHA256, (
        "the .anr bytes changed: see this module's docstring")
    got_info, got_config, got_gops = decode_file(data)
    with AnrReader(data) as reader:
        assert reader.timestamps == GOLDEN_TIMESTAMPS
        assert reader.read_streams() == GOLDEN_STREAMS
    assert got_info == info and got_config == config
    assert_same_gops(gops, got_gops)
    assert [(g.kind, g.reference) for g in got_gops] == [(INTRA, None), (PREDICTED, 0),
                                                         (INTRA, None)]


@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_earlier_versions_still_decode(version):
    """Earlier containers read as they did (before version 4 without timestamps or carried
    streams)."""
    path, sha = EARLIER[version]
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == sha
    info, config, gops = golden_video(version=version)
    got_info, got_config, got_gops = decode_file(data)
    with AnrReader(data) as reader:
        assert reader.version == version
        if version < 4:
            assert reader.timestamps is None and reader.streams_size == 0
        else:
            assert reader.timestamps == GOLDEN_TIMESTAMPS
            assert reader.read_streams() == GOLDEN_STREAMS
    assert got_info == info and got_config == config
    assert_same_gops(gops, got_gops)
    assert [(g.kind, g.reference) for g in got_gops] == [(g.kind, g.reference) for g in gops]


def read_by_the_doc(data: bytes) -> dict:
    """An independent reader written from the tables of docs/bitstream.md: per GOP chunk, its
    tensor table entries (name, shape, step, kind, lo, parameters) and its payload bytes."""
    assert data[:8] == b"\x89ANR\r\n\x1a\n"
    version, body = struct.unpack_from("<II", data, 8)
    assert version in (1, 2, 3, 4, 5) and struct.unpack_from("<I", data, 16 + body)[0] == zlib.crc32(
        data[:16 + body])
    width, height, frames, num, den, colour = struct.unpack_from("<IIIIIB", data, 16)
    (count,), pos, config = struct.unpack_from("<H", data, 37), 39, {}
    for _ in range(count):
        key = data[pos + 1:pos + 1 + data[pos]].decode()
        pos += 1 + data[pos]
        tag, pos = data[pos], pos + 1
        if tag == 0:
            config[key] = None
        elif tag in (1, 2, 3):
            fmt = {1: "<?", 2: "<q", 3: "<d"}[tag]
            (config[key],) = struct.unpack_from(fmt, data, pos)
            pos += struct.calcsize(fmt)
        else:
            (length,) = struct.unpack_from("<H", data, pos)
            config[key] = data[pos + 2:pos + 2 + length].decode()
            pos += 2 + length
    (gops,) = struct.unpack_from("<I", data, pos)
    entry_format, entry_size = ("<QIII", 20) if version == 1 else ("<QIIIBI", 25)
    index = [struct.unpack_from(entry_format, data, pos + 4 + entry_size * k)
             for k in range(gops)]
    side_at, side = len(data), {}
    if version >= 4:
        (side_length,) = struct.unpack_from("<Q", data, pos + 4 + entry_size * gops)
        pos += 8
        side_at = len(data) - side_length
        if side_length:
            assert struct.unpack_from("<I", data, len(data) - 4)[0] == zlib.crc32(
                data[side_at:-4])
        at = side_at
        while at < len(data) - 4:
            box, size = struct.unpack_from("<4sQ", data, at)
            side[box.decode()] = data[at + 12:at + 12 + size]
            at += 12 + size
        if "TIME" in side:
            base_num, base_den, first = struct.unpack_from("<IIq", side["TIME"])
            pts, value, shift = [first], 0, 0
            for byte in side["TIME"][16:]:
                value |= (byte & 0x7F) << shift
                shift += 7
                if byte < 0x80:
                    pts.append(pts[-1] + value)
                    value, shift = 0, 0
            side["TIME"] = (base_num, base_den, tuple(pts))
    assert pos + 4 + entry_size * gops == 16 + body
    assert index[-1][0] + index[-1][1] == side_at
    chunks, payloads = [], []
    for k, (offset, length, start, stop, *kind) in enumerate(index):
        chunk = data[offset:offset + length]
        if version == 1:
            tag, b, number, c_start, c_stop, tensors, coding, stored, raw = struct.unpack_from(
                "<4sIIIIHBII", chunk)
            table_at = 31
        else:
            tag, b, number, c_start, c_stop, c_kind, c_ref, tensors, coding, stored, raw = (
                struct.unpack_from("<4sIIIIBIHBII", chunk))
            assert [c_kind, c_ref] == kind
            table_at = 36
        assert (tag, b + 12, number, c_start, c_stop) == (b"ANRG", length, k, start, stop)
        assert struct.unpack_from("<I", chunk, 8 + b)[0] == zlib.crc32(chunk[:8 + b])
        table = chunk[table_at:table_at + stored]
        table = zstandard.ZstdDecompressor().decompress(table) if coding == 1 else table
        assert len(table) == raw
        entries, at = [], 0
        for _ in range(tensors):
            name = table[at + 1:at + 1 + table[at]].decode("ascii")
            at += 1 + table[at]
            ndim = table[at]
            shape = struct.unpack_from(f"<{ndim}I", table, at + 1)
            at += 1 + 4 * ndim
            (step,), kind = struct.unpack_from("<f", table, at), table[at + 4]
            (lo,) = struct.unpack_from("<i", table, at + 5)
            at += 9
            params = ()
            if kind == 1:
                params = struct.unpack_from("<iiH", table, at)
                at += 10
            elif kind == 2:
                (hi,) = struct.unpack_from("<i", table, at)
                at += 4
                counts = []
                for _ in range(hi - lo + 1):
                    value, shift = 0, 0
                    while True:
                        byte, at = table[at], at + 1
                        value |= (byte & 0x7F) << shift
                        shift += 7
                        if byte < 0x80:
                            break
                    counts.append(value)
                params = (hi, tuple(counts))
            entries.append((name, shape, step, kind, lo, params))
        assert at == len(table)
        chunks.append(entries)
        payloads.append(chunk[table_at + stored:8 + b])
    return {"info": (width, height, frames, num, den, colour), "config": config,
            "index": index, "chunks": chunks, "payloads": payloads, "side": side}


def doc_frequencies(lo: int, hi: int, centre: int, decay: int) -> list[int]:
    """The laplace frequency table computed with Python integers, as the doc defines it."""
    def rnd(x):
        return (x + 2**29) >> 30

    reach = max(centre - lo, hi - centre) + 1
    powers = [2**30, decay * 2**14][:reach]
    for d in range(2, reach):
        b = 1 << (d.bit_length() - 1)
        powers.append(rnd(powers[b // 2] ** 2) if d == b else rnd(powers[b] * powers[d - b]))
    v = [powers[abs(s - centre)] for s in range(lo, hi + 1)]
    n, total = hi - lo + 1, sum(v)
    w = [x * (2**24 - n) // total for x in v]
    w[centre - lo] += 2**24 - n - sum(w)
    return [x + 1 for x in w]


@pytest.mark.parametrize("version", [1, 2, 3, 4, 5])
def test_file_layout_matches_the_doc(version):
    info, config, gops = golden_video(version)
    data = EARLIER[version][0].read_bytes() if version < FORMAT_VERSION else golden_file()
    parsed = read_by_the_doc(data)
    if version >= 4:
        assert parsed["side"] == {"TIME": (1, 90000, GOLDEN_TIMESTAMPS.pts),
                                  "STRM": GOLDEN_STREAMS}
    assert parsed["info"] == (176, 144, 9, 30000, 1001, 1)
    assert parsed["config"] == config
    assert [tuple(e[2:]) for e in parsed["index"]] == (
        [(0, 5), (4, 9)] if version == 1
        else [(0, 5, 0, 0xFFFFFFFF), (4, 7, 1, 0), (7, 9, 0, 0xFFFFFFFF)])
    for entries, gop in zip(parsed["chunks"], gops):
        assert [(e[0], e[1], e[2]) for e in entries] == [
            (t.name, t.shape, t.step) for t in gop.tensors]
        assert [e[3] for e in entries] == [1, 1, 2, 0, 0, 0]


@pytest.mark.parametrize("lo,hi,centre,decay", [
    (-5, 5, 0, 40000), (-3, 60, 2, 65535), (0, 1, 0, 0), (-700, 90, -650, 65000),
    (-20, 20, 20, 1),
])
def test_laplace_table_matches_the_doc(lo, hi, centre, decay):
    model = SymbolModel(LAPLACE, lo, hi, centre=centre, decay=decay)
    assert (model_weights(model) + 1).tolist() == doc_frequencies(lo, hi, centre, decay)
