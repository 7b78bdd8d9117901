"""Fuzzing campaign on the .anr reader: any bytes must decode or raise BitstreamError.

Three layers, each with its own harness, seeds (the golden files) and structure-aware
mutator:

- container: whole files through AnrReader (every GOP) and AnrDecoder (tensors(k) and
  model(k) for every GOP; no rendering);
- chunk: one GOP chunk through decode_chunk, with an index entry matching its head (the
  input is one version byte, then the chunk);
- entropy: decode_symbols on models read by read_model and a payload (the input is a
  count byte, then per tensor its element count and model as a chunk stores them, then
  the payload).

Mutations edit parsed fields (video info, configuration, index, chunk head, tensor
table, models, payload) and serialise again with lengths and CRC32s recomputed, or edit
bytes and then repair the CRCs, so that they reach the parsers behind the checksums. One
mutation re-encodes a payload that is valid for the mutated models, another rebuilds
every GOP to the tensor layout of the mutated configuration, so that model building is
reached too.

Anything but BitstreamError is a crash, recorded by exception type and the innermost
project line it came from.
An input taking more than 1 s, or raising peak resident memory by more than
--memory-flag-mb (measured per input by resetting the kernel's peak mark), is flagged.
The process running the inputs has its address space limited (--memory-limit-mb), so a
huge allocation fails as a finding instead of exhausting the machine. Crashes are
minimised (same signature) and, with the flagged inputs, written to --out/findings; once
the reader is fixed, copy a minimised input to tests/fuzz_regressions/, which
tests/test_fuzz_regressions.py replays (tests/fuzz_regressions/pending/ holds inputs
still flagged).

Engines: "atheris" (coverage-guided libFuzzer over the bitstream and actinr_codec
modules; `pip install -e .[fuzz]`), each layer in a child process, with the mutator
above as its custom mutator (libFuzzer's own byte mutations get their CRCs repaired);
or "random": the same mutator with a seeded random.Random and the set of distinct error
messages as feedback, deterministic for a given --seed and --runs. "auto" picks atheris
when it is installed.

    python bench/fuzz.py --seconds 120                    # each layer 120 s, atheris if present
    python bench/fuzz.py --layer chunk --runs 3000 --engine random --seed 7
    python bench/fuzz.py --replay tests/fuzz_regressions  # the outcome of saved inputs

Prints one JSON object: executions, crashes and flags per layer, and peak memory.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import random
import re
import resource
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import types
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import zstandard

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from actinr_codec.model.config import KEYS  # noqa: E402
from actinr_codec.model.schema import GOP_SIZE_KEY, parse_config, tensor_layout, tile_count  # noqa: E402
from actinr_codec.pipeline.decoder import AnrDecoder  # noqa: E402
from bitstream.chunk import decode_chunk  # noqa: E402
from bitstream.container import AnrReader  # noqa: E402
from bitstream.entropy import decode_symbols, encode_symbols  # noqa: E402
from bitstream.errors import BitstreamError  # noqa: E402
from bitstream.header import MAGIC, NO_REFERENCE, T_BOOL, T_FLOAT, T_INT, T_NONE, T_STR  # noqa: E402
from bitstream.limits import MAX_GOP_ALPHABET, MAX_GOP_ELEMENTS, MAX_SYMBOL  # noqa: E402
from bitstream.models import CONSTANT, HISTOGRAM, LAPLACE, SymbolModel, fit_model, read_model  # noqa: E402
from bitstream.records import INTRA, PREDICTED, GopIndexEntry  # noqa: E402
from bitstream.wire import Cursor  # noqa: E402

LAYERS = ("container", "chunk", "entropy")
GOLDEN = ROOT / "tests" / "golden"
REGRESSIONS = ROOT / "tests" / "fuzz_regressions"
SUFFIX = {"container": ".anr", "chunk": ".chunk", "entropy": ".entropy"}
SLOW_S = 1.0
# Element counts the entropy harness allows per tensor: the format allows 2**26, which a
# few bytes can legitimately demand (seconds of decoding), so the entropy layer stays
# small to stay fast; the container and chunk layers keep the format's own limits.
ENTROPY_MAX_ELEMENTS = 1 << 16
# Symbols re-encoded by one mutation at most, to keep each execution short.
REENCODE_MAX_ELEMENTS = 1 << 16

# The model layer's keys, and names a reader must refuse.
CONFIG_KEYS = (*(key.name for key in KEYS), GOP_SIZE_KEY, "seconds", "", "tile ", "x" * 64,
               "x" * 65)

INTS = [0, 1, 2, 3, 4, 5, 7, 8, 15, 16, 31, 32, 63, 64, 127, 128, 255, 256, 512, 1023, 1024, 1025,
        4095, 4096, 4097, 65535, 65536, 2**20 - 1, 2**20, 2**20 + 1, 2**21, 2**23, 2**24, 2**26,
        2**26 + 1, 2**31 - 1, 2**31, 2**32 - 1, 2**63 - 1, -1, -2, -2**20, -2**20 - 1, -2**31, -2**63]
FLOATS = [math.nan, -math.nan, math.inf, -math.inf, 0.0, -0.0, 5e-324, 1e-300, 1e308, -1.0, 0.1, 0.5,
          0.50000001, 1.0, 12.0, 1000.0, 1000.0001, 2.0**63, -2.0**63]
STEP_BITS = [0x7FC00000, 0x7F800000, 0xFF800000, 0, 0x80000000, 1, 0x00800000, 0x7F7FFFFF,
             0x3F800000, 0x3C800000, 0x3C000000, 0xBF800000, 0x4B000000]


# -- Serialising with wrapped fields ---------------------------------------------------

def pk(fmt: str, *values) -> bytes:
    """struct.pack, with each integer wrapped into its field's range so that any mutated
    value serialises (a fuzzed field is whatever bits the file carries)."""
    out = []
    codes = re.findall(r"(\d*)([a-zA-Z?])", fmt)
    for (repeat, code), value in zip(codes, values, strict=True):
        if code in "fd" or code == "s":
            out.append(value)
            continue
        if repeat:
            raise ValueError("pk: repeat counts only for s")
        bits = 8 * struct.calcsize(code)
        v = int(value) % (1 << bits)
        if code.islower() and v >= 1 << (bits - 1):
            v -= 1 << bits
        out.append(v)
    try:
        return struct.pack(fmt, *out)
    except (OverflowError, struct.error):  # a float too large for "<f": the nearest infinity
        return struct.pack(fmt, *[math.copysign(math.inf, v) if isinstance(v, float) else v
                                  for v in out])


def leb128(values: list[int]) -> bytes:
    out = bytearray()
    for value in values:
        v = max(0, int(value))
        while True:
            byte = v & 0x7F
            v >>= 7
            out.append(byte | (0x80 if v else 0))
            if not v:
                break
    return bytes(out)


def fix_crcs(data: bytes | bytearray) -> bytes:
    """Recompute the header and chunk CRCs wherever the framing still parses."""
    data = bytearray(data)
    if len(data) < 16:
        return bytes(data)
    pos = 16 + struct.unpack_from("<I", data, 12)[0]
    if pos + 4 > len(data):
        return bytes(data)
    struct.pack_into("<I", data, pos, zlib.crc32(data[:pos]))
    pos += 4
    while pos + 12 <= len(data):
        end = pos + 8 + struct.unpack_from("<I", data, pos + 4)[0]
        if end + 4 > len(data):
            break
        struct.pack_into("<I", data, end, zlib.crc32(data[pos:end]))
        pos = end + 4
    return bytes(data)


def fix_chunk_frame(chunk: bytes | bytearray, length_too: bool) -> bytes:
    """A lone chunk with its CRC (and, if asked, its length field) made consistent."""
    chunk = bytearray(chunk)
    if len(chunk) < 12:
        return bytes(chunk)
    if length_too:
        struct.pack_into("<I", chunk, 4, len(chunk) - 12)
    struct.pack_into("<I", chunk, len(chunk) - 4, zlib.crc32(chunk[:-4]))
    return bytes(chunk)


# -- The structure of a file, parsed leniently and serialised with lengths and CRCs ----

@dataclass
class Model:
    kind: int
    lo: int
    hi: int = 0
    centre: int = 0
    decay: int = 0
    counts: list[int] = field(default_factory=list)

    def pack(self) -> bytes:
        head = pk("<Bi", self.kind, self.lo)
        if self.kind == CONSTANT:
            return head
        if self.kind == LAPLACE:
            return head + pk("<iiH", self.hi, self.centre, self.decay)
        if self.kind == HISTOGRAM:
            return head + pk("<i", self.hi) + leb128(self.counts)
        return head

    def symbol_model(self, elements: int) -> SymbolModel | None:
        """The reader's model if read_model accepts this one for a tensor of that many
        elements, else None."""
        if self.kind == CONSTANT:
            return SymbolModel(CONSTANT, self.lo, self.lo) if abs(self.lo) <= MAX_SYMBOL else None
        if not (elements and abs(self.lo) <= MAX_SYMBOL and self.lo < self.hi <= MAX_SYMBOL):
            return None
        if self.kind == LAPLACE and self.lo <= self.centre <= self.hi and 0 <= self.decay < 2**16:
            return SymbolModel(LAPLACE, self.lo, self.hi, centre=self.centre, decay=self.decay)
        if (self.kind == HISTOGRAM and len(self.counts) == self.hi - self.lo + 1
                and all(0 <= c < 2**28 for c in self.counts) and sum(self.counts) == elements):
            return SymbolModel(HISTOGRAM, self.lo, self.hi, counts=np.array(self.counts, np.int64))
        return None


def read_fuzz_model(cursor: Cursor) -> Model:
    kind, lo = cursor.unpack("<Bi")
    if kind == CONSTANT:
        return Model(kind, lo)
    if kind == LAPLACE:
        hi, centre, decay = cursor.unpack("<iiH")
        return Model(kind, lo, hi, centre, decay)
    if kind == HISTOGRAM:
        hi = cursor.one("<i")
        if not lo < hi <= lo + 4096:
            raise BitstreamError("histogram too wide to mutate")
        return Model(kind, lo, hi, counts=[int(c) for c in cursor.varints(hi - lo + 1)])
    raise BitstreamError("unknown kind")


@dataclass
class Tensor:
    name: bytes
    shape: list[int]
    step_bits: int
    model: Model
    ndim: int | None = None  # None: len(shape)

    @property
    def elements(self) -> int:
        return math.prod(max(0, d) for d in self.shape)

    def pack(self) -> bytes:
        ndim = len(self.shape) if self.ndim is None else self.ndim
        return (pk("<B", len(self.name)) + self.name + pk("<B", ndim)
                + b"".join(pk("<I", d) for d in self.shape) + pk("<I", self.step_bits)
                + self.model.pack())


@dataclass
class Chunk:
    """A GOP chunk; head is [number, start, stop, kind, reference, tensors, coding, stored,
    raw] whatever the version; None in count/stored/raw/length/crc means computed."""

    head: list[int]
    tensors: list[Tensor] | None
    table_extra: bytes = b""        # after the tensors (all of the table when tensors is None)
    stored_blob: bytes | None = None  # a stored table kept verbatim (undecompressable)
    payload: bytes = b""
    tag: bytes = b"ANRG"
    count: int | None = None
    stored: int | None = None
    raw: int | None = None
    length: int | None = None
    crc: int | None = None
    opaque: bytes | None = None      # a chunk whose head does not parse, kept verbatim

    def pack(self, version: int) -> bytes:
        if self.opaque is not None:
            return self.opaque
        tensors = self.tensors or []
        table = b"".join(t.pack() for t in tensors) + self.table_extra
        coding = self.head[6]
        if self.stored_blob is not None:
            stored = self.stored_blob
        elif coding == 1:
            stored = zstandard.ZstdCompressor(level=3).compress(table)
        else:
            stored = table
        number, start, stop, kind, reference, count, coding, _, _ = self.head
        if self.count is not None:
            count = self.count
        elif self.tensors is not None:
            count = len(self.tensors)
        values = [number, start, stop, count, coding,
                  len(stored) if self.stored is None else self.stored,
                  len(table) if self.raw is None else self.raw]
        if version == 1:
            head = pk("<IIIHBII", *values)
        else:
            head = pk("<IIIBIHBII", *values[:3], kind, reference, *values[3:])
        body = head + stored + self.payload
        framed = self.tag[:4].ljust(4, b"\0") + pk("<I", len(body) if self.length is None
                                                    else self.length) + body
        return framed + pk("<I", zlib.crc32(framed) if self.crc is None else self.crc)


def parse_table(table: bytes, count: int) -> tuple[list[Tensor], bytes]:
    cursor = Cursor(table, "table")
    tensors = []
    for _ in range(count):
        name = bytes(cursor.take(cursor.one("<B")))
        ndim = cursor.one("<B")
        if ndim > 8:
            raise BitstreamError("too many dimensions to mutate")
        shape = list(cursor.unpack("<" + "I" * ndim))
        step_bits = cursor.one("<I")
        tensors.append(Tensor(name, shape, step_bits, read_fuzz_model(cursor)))
    return tensors, bytes(cursor.take(cursor.remaining))


def parse_chunk(raw: bytes, version: int) -> Chunk:
    """Any bytes as a chunk: as much structure as parses, the rest kept verbatim."""
    fmt = "<IIIHBII" if version == 1 else "<IIIBIHBII"
    size = struct.calcsize(fmt)
    if len(raw) < 12 + size:
        return Chunk([0] * 9, None, opaque=raw)
    body = raw[8:-4]
    values = struct.unpack_from(fmt, body)
    if version == 1:
        number, start, stop, count, coding, stored, table_raw = values
        kind, reference = INTRA, NO_REFERENCE
    else:
        number, start, stop, kind, reference, count, coding, stored, table_raw = values
    head = [number, start, stop, kind, reference, count, coding, stored, table_raw]
    stored_bytes = body[size:size + stored]
    chunk = Chunk(head, None, payload=body[size + stored:], tag=raw[:4])
    if coding == 1:
        try:
            # The frame's size field decides the allocation: only small tables are parsed.
            if not 0 <= zstandard.frame_content_size(stored_bytes) <= 1 << 20:
                raise zstandard.ZstdError("not a small zstd frame")
            table = zstandard.ZstdDecompressor().decompress(stored_bytes)
        except zstandard.ZstdError:
            chunk.stored_blob = stored_bytes
            return chunk
    else:
        table = stored_bytes
    try:
        chunk.tensors, chunk.table_extra = parse_table(table, count)
    except (BitstreamError, struct.error):
        chunk.table_extra = table
        chunk.count = count
    if len(stored_bytes) != stored:
        chunk.stored = stored
    return chunk


@dataclass
class Entry:
    start: int
    stop: int
    kind: int = INTRA
    reference: int = NO_REFERENCE
    offset: int | None = None  # None: where its chunk lies
    length: int | None = None  # None: its chunk's length


@dataclass
class AnrFile:
    version: int
    info: list[int]                        # width, height, frames, fps_num, fps_den, colour
    config: list[list]                     # [key bytes, tag, value]
    index: list[Entry]
    chunks: list[Chunk]
    header_extra: bytes = b""
    trailing: bytes = b""
    magic: bytes = MAGIC
    body_length: int | None = None
    config_count: int | None = None
    gop_count: int | None = None
    crc: int | None = None

    def pack(self) -> bytes:
        chunks = [c.pack(self.version) for c in self.chunks]
        config = [pk("<H", len(self.config) if self.config_count is None else self.config_count)]
        for key, tag, value in self.config:
            config += [pk("<B", len(key)), key, pk("<B", tag), pack_value(tag, value)]
        entry_size = 20 if self.version == 1 else 25
        head_size = (21 + sum(len(c) for c in config) + 4 + entry_size * len(self.index)
                     + len(self.header_extra))
        offset = 16 + head_size + 4
        entries = []
        for k, e in enumerate(self.index):
            length = len(chunks[k]) if k < len(chunks) else 0
            values = [offset if e.offset is None else e.offset,
                      length if e.length is None else e.length, e.start, e.stop]
            entries.append(pk("<QIII", *values) if self.version == 1 else
                           pk("<QIIIBI", *values, e.kind, e.reference))
            offset += length
        head = b"".join([pk("<IIIIIB", *self.info), *config,
                         pk("<I", len(self.index) if self.gop_count is None else self.gop_count),
                         *entries, self.header_extra])
        framed = self.magic + pk("<II", self.version,
                                 len(head) if self.body_length is None else self.body_length) + head
        crc = pk("<I", zlib.crc32(framed) if self.crc is None else self.crc)
        return framed + crc + b"".join(chunks) + self.trailing

    def config_dict(self) -> dict:
        return {key.decode("utf-8", "replace"): value.decode("utf-8", "replace")
                if isinstance(value, bytes) else value for key, _, value in self.config}


def pack_value(tag: int, value) -> bytes:
    if tag == T_BOOL:
        return pk("<B", value)
    if tag == T_INT:
        return pk("<q", value)
    if tag == T_FLOAT:
        return struct.pack("<d", value)
    if tag == T_STR:
        return pk("<H", len(value)) + value
    return b""


def parse_file(data: bytes) -> AnrFile | None:
    """The structure of a file whose header parses; None if it does not."""
    try:
        return _parse_file(data)
    except (BitstreamError, struct.error, KeyError):
        return None


def _parse_file(data: bytes) -> AnrFile | None:
    magic, version, body_length = struct.unpack_from("<8sII", data)
    if version not in (1, 2, 3):
        return None
    cursor = Cursor(memoryview(data)[16:16 + body_length], "header")
    info = list(cursor.unpack("<IIIIIB"))
    config = []
    for _ in range(cursor.one("<H")):
        key = bytes(cursor.take(cursor.one("<B")))
        tag = cursor.one("<B")
        value = {T_NONE: lambda: None, T_BOOL: lambda: cursor.one("<B"),
                 T_INT: lambda: cursor.one("<q"), T_FLOAT: lambda: cursor.one("<d"),
                 T_STR: lambda: bytes(cursor.take(cursor.one("<H")))}[tag]()
        config.append([key, tag, value])
    index = []
    for _ in range(cursor.one("<I")):
        if version == 1:
            offset, length, start, stop = cursor.unpack("<QIII")
            kind, reference = INTRA, NO_REFERENCE
        else:
            offset, length, start, stop, kind, reference = cursor.unpack("<QIIIBI")
        index.append(Entry(start, stop, kind, reference))
    anr = AnrFile(version, info, config, index, [], header_extra=bytes(cursor.take(cursor.remaining)),
                  magic=magic)
    pos = 16 + body_length + 4
    while pos + 12 <= len(data):
        end = pos + 12 + struct.unpack_from("<I", data, pos + 4)[0]
        if end > len(data):
            break
        anr.chunks.append(parse_chunk(data[pos:end], version))
        pos = end
    anr.trailing = data[pos:]
    return anr


def raw_tables(anr: AnrFile) -> AnrFile:
    """The same file with every tensor table stored raw (the table parser, not zstd, then
    sees the mutations)."""
    anr = dataclasses.replace(anr, chunks=[dataclasses.replace(c, head=list(c.head))
                                           for c in anr.chunks])
    for chunk in anr.chunks:
        if chunk.stored_blob is None:
            chunk.head[6] = 0
    return anr


# -- Mutations -------------------------------------------------------------------------

def some_int(r: random.Random, near: int | None = None) -> int:
    roll = r.random()
    if near is not None and roll < 0.35:
        return near + r.choice([-2, -1, 1, 2, r.randint(-100, 100)])
    if roll < 0.85:
        return r.choice(INTS)
    return r.getrandbits(r.choice([8, 16, 32]))


def mutate_bytes(data: bytes, r: random.Random) -> bytes:
    """One to four byte-level edits: bit flips, random or interesting values, insertions,
    deletions, duplicated ranges, truncation."""
    out = bytearray(data)
    for _ in range(r.randint(1, 4)):
        where = r.randrange(len(out) + 1)
        op = r.randrange(7)
        if op == 0 and where < len(out):
            out[where] ^= 1 << r.randrange(8)
        elif op == 1 and where < len(out):
            out[where] = r.randrange(256)
        elif op == 2:
            fmt = r.choice(["<B", "<H", "<I", "<Q", "<i", "<f", "<d"])
            value = r.choice(FLOATS) if fmt in ("<f", "<d") else some_int(r)
            blob = pk(fmt, value)
            out[where:where + len(blob)] = blob
        elif op == 3:
            out[where:where] = r.randbytes(r.randint(1, 8))
        elif op == 4:
            del out[where:where + r.randint(1, 16)]
        elif op == 5 and out:
            a = r.randrange(len(out))
            out[where:where] = out[a:a + r.randint(1, 64)]
        elif op == 6 and r.random() < 0.3:
            del out[where:]
    return bytes(out)


def float32_bits(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def random_symbols(model: SymbolModel, count: int, rng: np.random.Generator) -> np.ndarray:
    centre = model.centre if model.kind == LAPLACE else model.lo
    spread = max(1, min(model.size // 4, 8))
    values = centre + np.round(rng.laplace(0, spread, count)).astype(np.int64)
    return np.clip(values, model.lo, model.hi).astype(np.int32)


def reencode(tensors: list[Tensor], r: random.Random) -> bytes | None:
    """A payload valid for these models (random symbols), or None if a model is invalid."""
    if sum(t.elements for t in tensors) > REENCODE_MAX_ELEMENTS:
        return None
    rng = np.random.default_rng(r.getrandbits(32))
    items = []
    for t in tensors:
        model = t.model.symbol_model(t.elements)
        if model is None:
            return None
        if model.kind != CONSTANT:
            items.append((random_symbols(model, t.elements, rng), model))
    return encode_symbols(items)


def as_fuzz_model(model: SymbolModel) -> Model:
    counts = [] if model.counts is None else [int(c) for c in model.counts]
    return Model(model.kind, model.lo, model.hi, model.centre, model.decay, counts)


def fitted_tensor(name: str, shape: tuple, r: random.Random) -> tuple[Tensor, np.ndarray]:
    rng = np.random.default_rng(r.getrandbits(32))
    scale = r.choice([0.0, 0.3, 2.0, 20.0])
    symbols = np.round(rng.laplace(0, scale, shape) if scale else np.zeros(shape)).astype(np.int32)
    model, _ = fit_model(symbols)
    step = r.choice([2.0**-7, 2.0**-5, 0.5, 1.0, 3e38, 1e-45])
    return Tensor(name.encode(), list(shape), float32_bits(step), as_fuzz_model(model)), symbols


def relayout(anr: AnrFile, r: random.Random) -> None:
    """Rebuild every GOP to the tensor layout that the (mutated) configuration implies, with
    valid models and payloads, so that model building is reached."""
    try:
        cfg, _ = parse_config(anr.config_dict(), anr.version)
        layout = tensor_layout(cfg, tile_count(cfg, anr.info[1], anr.info[0]))
    except (ValueError, TypeError, ZeroDivisionError, OverflowError):
        return
    if sum(math.prod(shape) for _, shape in layout) > REENCODE_MAX_ELEMENTS:
        return
    for chunk in anr.chunks:
        if chunk.opaque is not None:
            continue
        rows = [fitted_tensor(name, shape, r) for name, shape in layout]
        chunk.tensors = [t for t, _ in rows]
        chunk.table_extra, chunk.stored_blob, chunk.count = b"", None, None
        chunk.payload = encode_symbols([(s, t.model.symbol_model(t.elements)) for t, s in rows
                                        if t.model.kind != CONSTANT])


def mutate_model(model: Model, elements: int, r: random.Random) -> None:
    op = r.randrange(8)
    if op == 0:
        model.kind = r.choice([CONSTANT, LAPLACE, HISTOGRAM, 3, 255])
        if model.kind == HISTOGRAM and not model.counts:
            model.hi = model.lo + r.randint(1, 8)
            model.counts = [0] * (model.hi - model.lo + 1)
            model.counts[0] = elements
    elif op == 1:
        model.lo = some_int(r, model.lo)
    elif op == 2:
        model.hi = some_int(r, model.hi)
    elif op == 3:
        model.centre = some_int(r, model.centre)
    elif op == 4:
        model.decay = r.choice([0, 1, 2, 32768, 65534, 65535, r.randrange(65536)])
    elif op == 5 and model.counts:
        model.counts[r.randrange(len(model.counts))] = r.choice([0, 1, elements, some_int(r)])
    elif op == 6:
        # A wide alphabet, kept consistent: hi, centre and (histogram) counts follow.
        model.lo = r.choice([-MAX_SYMBOL, -2**16, -1, 0])
        model.hi = r.choice([MAX_SYMBOL, 2**16, model.lo + 1, model.lo + 2])
        model.centre = r.choice([model.lo, model.hi, (model.lo + model.hi) // 2])
        if model.kind == HISTOGRAM:
            model.hi = min(model.hi, model.lo + 4096)
            model.counts = [0] * (model.hi - model.lo + 1)
            model.counts[-1] = elements
    else:
        # Histogram counts that sum to the element count again: the elements cut at a few
        # random points, each part added to a random bin.
        if model.kind == HISTOGRAM and model.counts:
            cuts = sorted(r.randrange(elements + 1) for _ in range(min(len(model.counts), 8)))
            model.counts = [0] * len(model.counts)
            for a, b in zip([0, *cuts], [*cuts, elements]):
                model.counts[r.randrange(len(model.counts))] += b - a


def mutate_tensor(t: Tensor, others: list[Tensor], r: random.Random) -> None:
    op = r.randrange(7)
    if op == 0:
        t.name = r.choice([b"", b"x" * 64, b"x" * 65, b"\xff", b"latents", b"weights.0",
                           r.choice(others).name if others else b"a", t.name + b"."])
    elif op == 1 and t.shape:
        t.shape[r.randrange(len(t.shape))] = r.choice([0, 1, 2, 3, 2**13, 2**26, 2**26 + 1, 2**32 - 1,
                                                       some_int(r)])
    elif op == 2:
        if t.shape and r.random() < 0.5:
            t.shape.pop(r.randrange(len(t.shape)))
        else:
            t.shape.insert(r.randrange(len(t.shape) + 1), r.choice([0, 1, 2, 7]))
    elif op == 3:
        t.ndim = r.choice([0, 1, 4, 5, 8, 255])
    elif op == 4:
        t.step_bits = r.choice(STEP_BITS) if r.random() < 0.8 else r.getrandbits(32)
    else:
        mutate_model(t.model, t.elements, r)


def mutate_chunk(chunk: Chunk, r: random.Random) -> None:
    if chunk.opaque is not None:
        chunk.opaque = fix_chunk_frame(mutate_bytes(chunk.opaque, r), r.random() < 0.7)
        return
    op = r.randrange(10)
    tensors = chunk.tensors
    if op == 0:
        i = r.randrange(9)
        chunk.head[i] = some_int(r, chunk.head[i])
    elif op == 1:
        name = r.choice(["count", "stored", "raw", "length", "crc"])
        setattr(chunk, name, some_int(r))
    elif op == 2:
        chunk.head[6] = r.choice([0, 1, 1, 2, 255])
        chunk.stored_blob = None
    elif op == 3 and tensors:
        i = r.randrange(len(tensors))
        what = r.randrange(4)
        if what == 0:
            tensors.pop(i)
        elif what == 1:
            tensors.insert(r.randrange(len(tensors) + 1), dataclasses.replace(
                tensors[i], shape=list(tensors[i].shape),
                model=dataclasses.replace(tensors[i].model, counts=list(tensors[i].model.counts))))
        elif what == 2:
            j = r.randrange(len(tensors))
            tensors[i], tensors[j] = tensors[j], tensors[i]
        else:
            chunk.table_extra += r.randbytes(r.randint(1, 6))
    elif op in (4, 5, 6) and tensors:
        mutate_tensor(r.choice(tensors), tensors, r)
        if r.random() < 0.5:
            chunk.payload = reencode(tensors, r) or chunk.payload
    elif op == 7:
        chunk.payload = reencode(tensors or [], r) or chunk.payload
        if chunk.payload and r.random() < 0.5:
            chunk.payload = mutate_bytes(chunk.payload, r)
    elif op == 8:
        chunk.payload = r.choice([b"", r.randbytes(4 * r.randint(1, 8)), r.randbytes(r.randint(1, 7)),
                                  chunk.payload[:-4], chunk.payload + b"\0\0\0\0",
                                  chunk.payload + r.randbytes(4)])
    else:
        chunk.tag = r.choice([b"ANRG", b"ANRX", b""])


def valid_value(name: str, r: random.Random) -> tuple[int, object]:
    """(tag, value) of a value in the key's range, biased to the ends of the range."""
    key = next((k for k in KEYS if k.name == name), None)
    if key is None:  # gop_size
        return T_INT, r.choice([2, 3, 4, 10_000_000, r.randint(2, 100)])
    if key.kind is str:
        return T_STR, r.choice(key.choices).encode()
    lo, hi = key.lo, key.hi
    if key.kind is int:
        return T_INT, r.choice([int(lo), int(hi), r.randint(int(lo), int(min(hi, lo + 16))),
                                r.randint(int(lo), int(hi))])
    return T_FLOAT, r.choice([hi, r.uniform(lo, hi), math.nextafter(lo, hi), float(int(hi))])


def mutate_config(anr: AnrFile, r: random.Random) -> None:
    config = anr.config
    op = r.randrange(9)
    if op == 7 and config:
        # A value in range: a valid configuration, which model building then has to meet.
        entry = r.choice(config)
        entry[1:] = valid_value(entry[0].decode("utf-8", "replace"), r)
    elif op == 8:
        # Many keys at once at an end of their range, with a large frame: the largest and
        # the most degenerate models a valid header can declare.
        for entry in config:
            key = next((k for k in KEYS if k.name == entry[0].decode("utf-8", "replace")), None)
            if key is not None and key.kind is not str and r.random() < 0.6:
                entry[1:] = [T_INT if key.kind is int else T_FLOAT,
                             key.kind(key.hi if r.random() < 0.5 else key.lo)]
        if r.random() < 0.5:
            anr.info[:2] = [r.choice([16, 4096, 16384]), r.choice([16, 4096, 16384])]
    elif op == 0 and config:
        entry = r.choice(config)
        tag = entry[1]
        entry[2] = {T_BOOL: lambda: r.choice([0, 1, 2, 255]),
                    T_INT: lambda: some_int(r, entry[2] if isinstance(entry[2], int) else 0),
                    T_FLOAT: lambda: r.choice(FLOATS),
                    T_STR: lambda: r.choice([b"", b"sine", b"gabor", b"gaussian", b"\xff\xfe",
                                             b"s" * 4096, b"s" * 4097])}.get(tag, lambda: None)()
    elif op == 1 and config:
        entry = r.choice(config)
        entry[1] = r.choice([T_NONE, T_BOOL, T_INT, T_FLOAT, T_STR, 5, 255])
        entry[2] = {T_BOOL: 1, T_INT: 4, T_FLOAT: 0.5, T_STR: b"sine"}.get(entry[1])
    elif op == 2 and config:
        config.pop(r.randrange(len(config)))
    elif op == 3 and config:
        config.insert(r.randrange(len(config) + 1), list(r.choice(config)))
    elif op == 4 and config:
        r.choice(config)[0] = r.choice(CONFIG_KEYS).encode()
    elif op == 5:
        config.insert(r.randrange(len(config) + 1),
                      [r.choice(CONFIG_KEYS).encode(), T_INT, some_int(r)])
    else:
        anr.config_count = r.choice([0, len(config) + 1, 256, 257, 65535])


def mutate_file(anr: AnrFile, r: random.Random) -> None:
    """One structural edit of a parsed file, in place."""
    op = r.randrange(16)
    if op == 0:
        i = r.randrange(6)
        anr.info[i] = some_int(r, anr.info[i])
        if i < 2 and r.random() < 0.5:
            anr.info[i] = r.choice([1, 2, 3, 15, 16, 17, 1000, 4096, 16384])
        if r.random() < 0.3:
            relayout(anr, r)
    elif op == 1:
        anr.version = r.choice([1, 2, 3, 0, 4, 2**32 - 1])
    elif op in (2, 3):
        mutate_config(anr, r)
        if r.random() < 0.4:
            relayout(anr, r)
    elif op == 4 and anr.index:
        e = r.choice(anr.index)
        name = r.choice(["start", "stop", "kind", "reference", "offset", "length"])
        setattr(e, name, some_int(r, getattr(e, name)))
    elif op == 5 and anr.index:
        # A predicted GOP, consistent in the index and in its chunk (version 2 and up).
        k = r.randrange(len(anr.index))
        anr.index[k].kind, anr.index[k].reference = PREDICTED, k - 1
        if k < len(anr.chunks):
            anr.chunks[k].head[3:5] = [PREDICTED, k - 1]
    elif op == 6 and anr.index:
        k = r.randrange(len(anr.index))
        what = r.randrange(3)
        if what == 0:
            anr.index.pop(k)
            if k < len(anr.chunks):
                anr.chunks.pop(k)
        elif what == 1 and k < len(anr.chunks):
            anr.index.insert(k, dataclasses.replace(anr.index[k]))
            anr.chunks.insert(k, parse_chunk(anr.chunks[k].pack(anr.version), anr.version))
        else:
            # A chunk without its index entry, or an entry without its chunk.
            target = anr.chunks if anr.chunks and r.random() < 0.5 else anr.index
            target.pop(min(k, len(target) - 1))
    elif op == 7:
        name = r.choice(["body_length", "gop_count", "crc"])
        setattr(anr, name, some_int(r))
    elif op == 8:
        anr.trailing = r.choice([b"", b"\0", r.randbytes(r.randint(1, 12))])
        anr.header_extra = r.choice([b"", anr.header_extra, r.randbytes(r.randint(1, 8))])
    elif op == 9:
        relayout(anr, r)
    elif anr.chunks:
        mutate_chunk(r.choice(anr.chunks), r)


# -- Layers: inputs, mutators and targets ----------------------------------------------

@dataclass
class EntropyInput:
    items: list[tuple[int, Model]]
    payload: bytes

    def pack(self) -> bytes:
        return (pk("<B", len(self.items) - 1) + b"".join(pk("<I", n) + m.pack() for n, m in self.items)
                + self.payload)


def parse_entropy(data: bytes) -> EntropyInput | None:
    try:
        cursor = Cursor(data, "entropy input")
        items = []
        for _ in range(1 + cursor.one("<B") % 4):
            items.append((cursor.one("<I") % (ENTROPY_MAX_ELEMENTS + 1), read_fuzz_model(cursor)))
        return EntropyInput(items, bytes(cursor.take(cursor.remaining)))
    except (BitstreamError, struct.error):
        return None


def mutate_entropy(data: bytes, r: random.Random) -> bytes:
    parsed = parse_entropy(data)
    if parsed is None or r.random() < 0.2:
        return mutate_bytes(data, r)
    items = [(n, dataclasses.replace(m, counts=list(m.counts))) for n, m in parsed.items]
    for _ in range(r.randint(1, 3)):
        op = r.randrange(6)
        i = r.randrange(len(items))
        n, model = items[i]
        if op == 0:
            items[i] = (r.choice([0, 1, 2, 1000, ENTROPY_MAX_ELEMENTS, some_int(r, n)]), model)
        elif op == 1:
            mutate_model(model, n, r)
        elif op == 2 and len(items) < 4:
            items.insert(i, (n, dataclasses.replace(model, counts=list(model.counts))))
        elif op == 3 and len(items) > 1:
            items.pop(i)
        elif op == 4:
            parsed.payload = r.choice([b"", r.randbytes(4 * r.randint(1, 16)), parsed.payload[4:],
                                       parsed.payload + r.randbytes(4), mutate_bytes(parsed.payload, r)])
    tensors = [Tensor(b"t", [n % (ENTROPY_MAX_ELEMENTS + 1)], 0, m) for n, m in items]
    payload = reencode(tensors, r) if r.random() < 0.5 else None
    if payload is not None and r.random() < 0.5:
        payload = mutate_bytes(payload, r)
    return EntropyInput(items, parsed.payload if payload is None else payload).pack()


def mutate_container(data: bytes, r: random.Random) -> bytes:
    anr = parse_file(data)
    if anr is None or r.random() < 0.15:
        return fix_crcs(mutate_bytes(data, r)) if r.random() < 0.9 else mutate_bytes(data, r)
    for _ in range(r.choice([1, 1, 2, 3])):
        mutate_file(anr, r)
    out = anr.pack()
    if r.random() < 0.15:
        out = fix_crcs(mutate_bytes(out, r))
    return out


def chunk_version(data: bytes) -> int:
    return 1 + data[0] % 3 if data else 3


def mutate_chunk_input(data: bytes, r: random.Random) -> bytes:
    if len(data) < 2 or r.random() < 0.05:
        return bytes([r.randrange(3)]) + data[1:]
    version = chunk_version(data)
    if r.random() < 0.2:
        return data[:1] + fix_chunk_frame(mutate_bytes(data[1:], r), r.random() < 0.8)
    chunk = parse_chunk(data[1:], version)
    for _ in range(r.choice([1, 1, 2, 3])):
        mutate_chunk(chunk, r)
    return data[:1] + chunk.pack(version)


def run_container(data: bytes) -> str:
    """Read every GOP, then build every GOP's tensors and model; the outcome as a string."""
    outcomes = []
    try:
        with AnrReader(data) as reader:
            for k in range(len(reader.index)):
                reader.read_gop(k)
        outcomes.append("ok")
    except BitstreamError as exc:
        outcomes.append(str(exc))
    try:
        with AnrDecoder(data) as decoder:
            for k in range(len(decoder.gops)):
                # model(k) first, as a player asks for it: it builds the model and decodes
                # the GOP's tensors; tensors(k) then returns them from its cache.
                decoder.model(k)
                decoder.tensors(k)
        outcomes.append("ok")
    except BitstreamError as exc:
        outcomes.append(str(exc))
    return " | ".join(outcomes)


def run_chunk(data: bytes) -> str:
    """decode_chunk on the chunk, with the index entry its own head describes."""
    version, chunk = chunk_version(data), data[1:]
    fmt = "<III" if version == 1 else "<IIIBI"
    fields = (struct.unpack_from(fmt, chunk, 8) if len(chunk) >= 8 + struct.calcsize(fmt)
              else (0, 0, 1, INTRA, NO_REFERENCE))
    number, start, stop, kind, reference = (*fields, INTRA, NO_REFERENCE)[:5]
    entry = GopIndexEntry(start, stop, 0, len(chunk), kind,
                          None if reference == NO_REFERENCE else reference)
    try:
        record = decode_chunk(chunk, number, entry, version)
    except BitstreamError as exc:
        return str(exc)
    for tensor in record.tensors:
        if tensor.symbols.shape != tuple(tensor.shape) or tensor.symbols.dtype != np.int32:
            raise AssertionError(f"tensor {tensor.name!r} decoded with the wrong shape or type")
    return "ok"


def run_entropy(data: bytes) -> str:
    """decode_symbols with the models read_model accepts, within the chunk's limits."""
    try:
        cursor = Cursor(data, "entropy input")
        items, elements, alphabet = [], 0, 0
        for i in range(1 + cursor.one("<B") % 4):
            count = cursor.one("<I") % (ENTROPY_MAX_ELEMENTS + 1)
            model = read_model(cursor, count, f"t{i}")
            elements += count
            alphabet += model.size if model.kind != CONSTANT else 0
            if elements > MAX_GOP_ELEMENTS or alphabet > MAX_GOP_ALPHABET:
                raise BitstreamError("over the GOP limits")
            items.append((model, count))
        flat = decode_symbols(bytes(cursor.take(cursor.remaining)), items)
    except BitstreamError as exc:
        return str(exc)
    if len(flat) != len(items):
        raise AssertionError("decode_symbols returned the wrong number of arrays")
    for (model, count), symbols in zip(items, flat, strict=True):
        if symbols.shape != (count,) or symbols.dtype != np.int32 or (
                count and not model.lo <= symbols.min() <= symbols.max() <= model.hi):
            raise AssertionError("decode_symbols returned symbols outside the model")
    return "ok"


TARGETS: dict[str, Callable[[bytes], str]] = {
    "container": run_container, "chunk": run_chunk, "entropy": run_entropy}
MUTATORS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "container": mutate_container, "chunk": mutate_chunk_input, "entropy": mutate_entropy}


def golden_files() -> list[bytes]:
    return [p.read_bytes() for p in sorted(GOLDEN.glob("v*/*.anr"))]


def seeds(layer: str) -> list[bytes]:
    """Valid inputs of the layer, from the golden files (and their raw-table twins)."""
    files = []
    for data in golden_files():
        anr = parse_file(data)
        files += [data, raw_tables(anr).pack()]
    if layer == "container":
        return files
    out = []
    for data in files:
        anr = parse_file(data)
        for chunk in anr.chunks:
            packed = chunk.pack(anr.version)
            if layer == "chunk":
                out.append(bytes([anr.version - 1]) + packed)
            elif chunk.tensors:
                items = [(t.elements, t.model) for t in chunk.tensors if t.elements <= ENTROPY_MAX_ELEMENTS]
                if items:
                    for start in range(0, len(items), 4):
                        group = items[start:start + 4]
                        out.append(EntropyInput(group, chunk.payload if start == 0 else b"").pack())
    return list(dict.fromkeys(out))


# -- Running and classifying -----------------------------------------------------------

class FuzzTimeout(BaseException):
    """Raised by the watchdog timer in an input that runs too long (not an Exception, so
    no handler in the reader swallows it)."""


def where(exc: BaseException) -> str:
    """The innermost line of the reader's own code in the traceback, and the innermost line
    overall when that lies elsewhere (numpy, torch...)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if f.filename.startswith(str(ROOT)) and "/bench/" not in f.filename]
    def show(f: traceback.FrameSummary) -> str:
        path = Path(f.filename)
        with contextlib.suppress(ValueError):
            path = path.relative_to(ROOT)
        return f"{path}:{f.lineno} ({f.name})"
    if not ours:
        return show(frames[-1]) if frames else "?"
    inner = show(ours[-1])
    if frames and frames[-1] is not ours[-1]:
        inner += f" via {Path(frames[-1].filename).name}:{frames[-1].lineno}"
    return inner


def outcome_key(outcome: str) -> str:
    """An outcome with its numbers and quoted names blanked: distinct keys stand for
    distinct paths through the reader, the random engine's feedback."""
    return re.sub(r"-?\d+(\.\d+)?(e-?\d+)?", "#", re.sub(r"'[^']*'|\"[^\"]*\"", "'_'", outcome))


def current_rss_kb() -> tuple[int, int]:
    """(VmRSS, VmHWM) in KiB from /proc, or (0, maxrss) where /proc is unavailable."""
    try:
        with open("/proc/self/status") as handle:
            fields = dict(line.split(":", 1) for line in handle if line.startswith(("VmRSS", "VmHWM")))
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])
    except (OSError, KeyError, ValueError):
        return 0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark, so each input's own peak can be read (Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


@dataclass
class Finding:
    kind: str            # crash, slow, memory
    signature: str
    message: str
    data: bytes
    hits: int = 1
    seconds: float = 0.0
    peak_mb: float = 0.0


@dataclass
class Campaign:
    """Runs inputs of one layer, classifies what they do and keeps the findings."""

    layer: str
    timeout_s: float = 0.0          # 0: no watchdog (in tests)
    memory_flag_mb: float = 256.0
    executions: int = 0
    findings: dict[str, Finding] = field(default_factory=dict)
    outcomes: set[str] = field(default_factory=set)
    slowest_s: float = 0.0
    per_input_peak: bool = field(default_factory=reset_peak)

    def execute(self, data: bytes) -> tuple[str | None, bool]:
        """(outcome key, or None for a finding; whether the outcome is new)."""
        self.executions += 1
        target = TARGETS[self.layer]
        if self.per_input_peak:
            reset_peak()
        before, _ = current_rss_kb()
        if self.timeout_s:
            signal.setitimer(signal.ITIMER_REAL, self.timeout_s)
        begin = time.perf_counter()
        try:
            key, problem = outcome_key(target(data)), None
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # every other exception is the finding
            key, problem = None, exc
        finally:
            if self.timeout_s:
                signal.setitimer(signal.ITIMER_REAL, 0)
        seconds = time.perf_counter() - begin
        _, peak = current_rss_kb()
        grown_mb = (peak - before) / 1024 if self.per_input_peak else 0.0
        self.slowest_s = max(self.slowest_s, seconds)
        if problem is not None:
            text = str(problem).splitlines()
            message = f"{type(problem).__name__}: {text[0][:200] if text else ''}"
            kind = "crash"
            signature = f"{type(problem).__name__} at {where(problem)}"
            if isinstance(problem, FuzzTimeout):
                kind, signature = "slow", f"hang over {self.timeout_s:g} s at {where(problem)}"
            self.record(kind, signature, message, data, seconds, grown_mb)
        if seconds > SLOW_S and key is not None:
            self.record("slow", f"slow input ({self.layer}): {key[:80]}", f"{seconds:.2f} s",
                        data, seconds, grown_mb)
        if grown_mb > self.memory_flag_mb:
            self.record("memory", f"large allocation ({self.layer}): {(key or '')[:80]}",
                        f"peak RSS +{grown_mb:.0f} MB", data, seconds, grown_mb)
        new = key is not None and key not in self.outcomes
        if new:
            self.outcomes.add(key)
        return key, new

    def record(self, kind: str, signature: str, message: str, data: bytes, seconds: float,
               peak_mb: float) -> None:
        found = self.findings.get(signature)
        if found is None:
            self.findings[signature] = Finding(kind, signature, message, data, 1, seconds, peak_mb)
            return
        found.hits += 1
        if len(data) < len(found.data):
            found.data, found.message = data, message

    def crashes(self) -> list[Finding]:
        return [f for f in self.findings.values() if f.kind == "crash"]

    def summary(self) -> dict:
        return {
            "executions": self.executions, "distinct_outcomes": len(self.outcomes),
            "crashes": len(self.crashes()), "slowest_s": round(self.slowest_s, 3),
            "findings": [{"kind": f.kind, "signature": f.signature, "message": f.message,
                          "hits": f.hits, "bytes": len(f.data), "seconds": round(f.seconds, 3),
                          "peak_mb": round(f.peak_mb, 1)} for f in self.findings.values()]}


def alarm(signum, frame):
    raise FuzzTimeout("input ran past the watchdog")


def fuzz_random(layer: str, runs: int | None, seconds: float | None, seed: int,
                timeout_s: float = 0.0, memory_flag_mb: float = 256.0,
                corpus_limit: int = 2000) -> Campaign:
    """The seeded random engine: mutate a corpus member, keep inputs with a new outcome."""
    campaign = Campaign(layer, timeout_s=timeout_s, memory_flag_mb=memory_flag_mb)
    r = random.Random(seed)
    corpus = seeds(layer)
    for data in corpus:
        campaign.execute(data)
    mutate = MUTATORS[layer]
    deadline = time.monotonic() + seconds if seconds else math.inf
    while (runs is None or campaign.executions < runs) and time.monotonic() < deadline:
        data = r.choice(corpus)
        for _ in range(r.choice([1, 1, 1, 2, 4])):
            data = mutate(data, r)
        key, new = campaign.execute(data)
        if new and len(corpus) < corpus_limit:
            corpus.append(data)
    return campaign


# -- Minimising and saving -------------------------------------------------------------

def same(layer: str, signature: str) -> Callable[[bytes], bool]:
    def check(data: bytes) -> bool:
        probe = Campaign(layer, per_input_peak=False)
        probe.execute(data)
        return signature in probe.findings
    return check


def shrink_structure(layer: str, data: bytes, keeps: Callable[[bytes], bool]) -> bytes:
    """Drop GOPs, config entries, tensors and payload words while the finding stays."""
    if layer == "entropy":
        parsed = parse_entropy(data)
        if parsed is None:
            return data
        for i in reversed(range(len(parsed.items))):
            trial = EntropyInput(parsed.items[:i] + parsed.items[i + 1:], parsed.payload)
            if trial.items and keeps(trial.pack()):
                parsed = trial
        while parsed.payload:
            trial = EntropyInput(parsed.items, parsed.payload[:len(parsed.payload) // 2 // 4 * 4])
            if not keeps(trial.pack()):
                break
            parsed = trial
        return parsed.pack()
    if layer == "chunk":
        version = chunk_version(data)
        chunk = parse_chunk(data[1:], version)
        wrap = lambda c: data[:1] + c.pack(version)  # noqa: E731
        anr, pack = None, wrap
    else:
        anr = parse_file(data)
        if anr is None:
            return data
        pack = lambda a: a.pack()  # noqa: E731
        for i in reversed(range(len(anr.config))):
            trial = dataclasses.replace(anr, config=anr.config[:i] + anr.config[i + 1:])
            if keeps(trial.pack()):
                anr = trial
        if anr.index and anr.chunks:
            # GOP 0 alone, the video cut to its frames.
            info = [*anr.info[:2], anr.index[0].stop, *anr.info[3:]]
            trial = dataclasses.replace(anr, info=info, index=anr.index[:1], chunks=anr.chunks[:1])
            if keeps(trial.pack()):
                anr = trial
        for k in reversed(range(1, len(anr.chunks))):
            trial = dataclasses.replace(anr, chunks=anr.chunks[:k] + anr.chunks[k + 1:],
                                        index=anr.index[:k] + anr.index[k + 1:])
            if keeps(trial.pack()):
                anr = trial
        data = anr.pack()
    chunks = [chunk] if anr is None else anr.chunks
    for c in chunks:
        if c.opaque is not None or c.tensors is None:
            continue
        for i in reversed(range(len(c.tensors))):
            saved = c.tensors
            c.tensors = saved[:i] + saved[i + 1:]
            if not keeps(pack(anr if anr is not None else c)):
                c.tensors = saved
        while c.payload:
            saved = c.payload
            c.payload = saved[:len(saved) // 2 // 4 * 4]
            if not keeps(pack(anr if anr is not None else c)):
                c.payload = saved
                break
    return pack(anr if anr is not None else chunk)


def minimise(layer: str, finding: Finding, budget_s: float = 20.0) -> bytes:
    """A smaller input with the same signature (structure first, then trailing bytes)."""
    keeps = same(layer, finding.signature)
    if not keeps(finding.data):
        return finding.data  # flaky (timing or memory): keep as found
    deadline = time.monotonic() + budget_s
    def bounded(data: bytes) -> bool:
        return time.monotonic() < deadline and keeps(data)
    data = shrink_structure(layer, finding.data, bounded)
    return data if keeps(data) else finding.data


def as_file(layer: str, data: bytes) -> bytes | None:
    """A chunk- or entropy-layer input as a one-GOP .anr file, if its chunk can be GOP 0."""
    if layer == "entropy":
        parsed = parse_entropy(data)
        if parsed is None:
            return None
        tensors = [Tensor(f"t{i}".encode(), [n], float32_bits(1.0), m)
                   for i, (n, m) in enumerate(parsed.items)]
        version, chunk = 3, Chunk([0, 0, 1, INTRA, NO_REFERENCE, 0, 0, 0, 0], tensors,
                                  payload=parsed.payload)
    else:
        version = chunk_version(data)
        chunk = Chunk(parse_chunk(data[1:], version).head, None, opaque=data[1:])
    number, start, stop, kind = chunk.head[:4]
    if (number, start, kind) != (0, 0, INTRA) or not 1 <= stop <= 64:
        return None
    return AnrFile(version, [16, 16, stop, 25, 1, 0], [], [Entry(0, stop)], [chunk]).pack()


def save(layer: str, finding: Finding, out: Path) -> Path:
    """Write a finding under out: a crash minimised, and as a .anr file where it reproduces
    as one; a slow or large input as found (timing and memory do not minimise reliably)."""
    crash = finding.kind == "crash"
    data = minimise(layer, finding) if crash else finding.data
    name = re.sub(r"[^a-z0-9]+", "_", f"{finding.kind} {finding.signature}".lower()).strip("_")[:90]
    suffix = SUFFIX[layer]
    if layer != "container" and crash:
        wrapped = as_file(layer, data)
        if wrapped is not None and same("container", finding.signature)(wrapped):
            data, suffix = wrapped, ".anr"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{layer}_{name}{suffix}"
    path.write_bytes(data)
    return path


def replay(path: str | Path) -> str:
    """The target of a saved input's layer (by its suffix) on it: its outcome, or the
    exception it raises."""
    path = Path(path)
    layer = {v: k for k, v in SUFFIX.items()}[path.suffix]
    return TARGETS[layer](path.read_bytes())


# -- The atheris engine ----------------------------------------------------------------

def instrument_project() -> int:
    """Add atheris coverage to the functions of bitstream and actinr_codec already imported
    (instrument_imports would need them imported after atheris, and instrument_all would
    instrument torch as well)."""
    import gc

    import atheris

    count = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # touching some of torch's objects warns
        functions = [obj for obj in gc.get_objects() if isinstance(obj, types.FunctionType)]
    for function in functions:
        if (function.__module__ or "").startswith(("bitstream", "actinr_codec")):
            atheris.instrument_func(function)
            count += 1
    return count


def atheris_worker(layer: str, seconds: float, runs: int | None, seed: int, out: Path,
                   timeout_s: float, rss_limit_mb: int, memory_flag_mb: float) -> None:
    """One layer under libFuzzer; writes its stats and findings to out/<layer>.json."""
    import atheris

    instrument_project()
    campaign = Campaign(layer, memory_flag_mb=memory_flag_mb)
    corpus = out / f"corpus-{layer}"
    corpus.mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(seeds(layer)):
        (corpus / f"seed{i:03d}").write_bytes(data)
    report = out / f"{layer}.json"
    last = [0.0]

    def dump() -> None:
        summary = campaign.summary()
        summary["inputs"] = {f.signature: f.data.hex() for f in campaign.findings.values()}
        summary["outcomes"] = sorted(campaign.outcomes)
        report.write_text(json.dumps(summary))

    def test_one_input(data: bytes) -> None:
        campaign.execute(bytes(data))
        if time.monotonic() - last[0] > 1.0 or campaign.executions % 500 == 0:
            last[0] = time.monotonic()
            dump()

    mutate = MUTATORS[layer]

    def custom_mutator(data: bytes, max_size: int, mutator_seed: int) -> bytes:
        r = random.Random(mutator_seed)
        if r.random() < 0.3:
            data = atheris.Mutate(data, max_size)
            if layer == "container":
                data = fix_crcs(data)
            elif layer == "chunk" and len(data) > 1:
                data = data[:1] + fix_chunk_frame(data[1:], r.random() < 0.8)
        else:
            data = mutate(bytes(data), r)
        return data[:max_size]

    args = [sys.argv[0], str(corpus), f"-seed={seed}", f"-timeout={int(max(1, timeout_s))}",
            f"-rss_limit_mb={rss_limit_mb}", "-max_len=65536", f"-artifact_prefix={out}/{layer}-",
            "-print_final_stats=1", "-print_pcs=0"]
    args.append(f"-runs={runs}" if runs else f"-max_total_time={int(seconds)}")
    atheris.Setup(args, test_one_input, custom_mutator=custom_mutator)
    try:
        atheris.Fuzz()
    finally:
        dump()


def fuzz_atheris(layer: str, seconds: float, runs: int | None, seed: int, out: Path,
                 timeout_s: float, rss_limit_mb: int, memory_limit_mb: int,
                 memory_flag_mb: float) -> Campaign:
    """Run one layer's atheris worker in a child process (libFuzzer exits the process when
    done, and stops at a hang or an out-of-memory), restarting it after such a stop until
    the time is spent; its findings come back through out/<layer>.json."""
    campaign = Campaign(layer, per_input_peak=False)
    deadline = time.monotonic() + seconds
    attempt = 0
    while True:
        left = deadline - time.monotonic()
        if left < 5 and attempt:
            break
        report = out / f"{layer}.json"
        report.unlink(missing_ok=True)
        command = [sys.executable, __file__, "--worker", "--layer", layer, "--engine", "atheris",
                   "--seconds", str(max(1, int(left))), "--seed", str(seed + attempt),
                   "--out", str(out), "--timeout", str(timeout_s), "--rss-limit-mb", str(rss_limit_mb),
                   "--memory-limit-mb", str(memory_limit_mb), "--memory-flag-mb", str(memory_flag_mb)]
        if runs:
            command += ["--runs", str(runs)]
        done = subprocess.run(command, capture_output=True, text=True, env={
            **os.environ, "PYTHONPATH": str(ROOT)})
        (out / f"{layer}-worker{attempt}.log").write_text(done.stdout + done.stderr)
        attempt += 1
        counted = re.findall(r"Done (\d+) runs", done.stderr)
        stats = json.loads(report.read_text()) if report.exists() else {"executions": 0, "findings": []}
        campaign.executions += int(counted[-1]) if counted else stats["executions"]
        campaign.slowest_s = max(campaign.slowest_s, stats.get("slowest_s", 0.0))
        campaign.outcomes.update(stats.get("outcomes", []))
        for f in stats["findings"]:
            data = bytes.fromhex(stats["inputs"][f["signature"]])
            campaign.record(f["kind"], f["signature"], f["message"], data, f["seconds"], f["peak_mb"])
            campaign.findings[f["signature"]].hits += f["hits"] - 1
        for artifact in out.glob(f"{layer}-*-*"):
            if artifact.name.startswith(f"{layer}-worker"):
                continue
            kind = artifact.name.split("-")[1]  # timeout, oom, crash, slow-unit
            campaign.record("slow" if kind in ("timeout", "slow") else "memory" if kind == "oom"
                            else "crash", f"libFuzzer {kind} ({layer})", artifact.name,
                            artifact.read_bytes(), 0.0, 0.0)
            artifact.rename(artifact.with_name("seen-" + artifact.name))
        if runs or done.returncode == 0:
            break
    return campaign


# -- Command line ----------------------------------------------------------------------

def have_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layer", choices=(*LAYERS, "all"), default="all")
    parser.add_argument("--engine", choices=("auto", "atheris", "random"), default="auto")
    parser.add_argument("--seconds", type=float, help="budget per layer")
    parser.add_argument("--runs", type=int, help="executions per layer (seeds included)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "actinr-fuzz")
    parser.add_argument("--timeout", type=float, default=10.0, help="an input's watchdog, seconds")
    parser.add_argument("--memory-limit-mb", type=int, default=4096,
                        help="address-space limit of the process running the inputs (RLIMIT_AS), 0 for none")
    parser.add_argument("--memory-flag-mb", type=float, default=256.0,
                        help="flag an input raising peak resident memory by more than this")
    parser.add_argument("--rss-limit-mb", type=int, default=4096, help="libFuzzer's -rss_limit_mb")
    parser.add_argument("--replay", nargs="+", type=Path, help="saved inputs or folders to replay")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.replay:
        paths = [p for item in args.replay for p in (sorted(item.iterdir()) if item.is_dir() else [item])
                 if p.suffix in SUFFIX.values()]
        failed = 0
        for path in paths:
            try:
                print(f"{path}: {replay(path)}")
            except Exception as exc:  # noqa: BLE001
                failed += 1
                print(f"{path}: {type(exc).__name__} at {where(exc)}: {exc}")
        return 1 if failed else 0
    if args.memory_limit_mb and (args.worker or args.engine == "random" or not have_atheris()):
        # A huge allocation then fails as MemoryError (a finding) instead of swapping.
        limit = args.memory_limit_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if args.worker:
        atheris_worker(args.layer, args.seconds or 60, args.runs, args.seed, args.out, args.timeout,
                       args.rss_limit_mb, args.memory_flag_mb)
        return 0
    if args.seconds is None and args.runs is None:
        parser.error("give --seconds and/or --runs")
    engine = args.engine if args.engine != "auto" else "atheris" if have_atheris() else "random"
    if engine == "random":
        signal.signal(signal.SIGALRM, alarm)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"engine": engine, "seed": args.seed, "seconds_per_layer": args.seconds,
              "runs_per_layer": args.runs, "layers": {}}
    for layer in (LAYERS if args.layer == "all" else (args.layer,)):
        begin = time.monotonic()
        if engine == "atheris":
            campaign = fuzz_atheris(layer, args.seconds or 3600, args.runs, args.seed, args.out,
                                    args.timeout, args.rss_limit_mb, args.memory_limit_mb,
                                    args.memory_flag_mb)
        else:
            campaign = fuzz_random(layer, args.runs, args.seconds, args.seed, timeout_s=args.timeout,
                                   memory_flag_mb=args.memory_flag_mb)
        summary = campaign.summary()
        summary["wall_s"] = round(time.monotonic() - begin, 1)
        summary["saved"] = [str(save(layer, f, args.out / "findings")) for f in campaign.findings.values()]
        report["layers"][layer] = summary
        print(f"{layer}: {campaign.executions} executions, {len(campaign.crashes())} crashes, "
              f"{len(campaign.findings)} findings, slowest {campaign.slowest_s:.2f} s",
              file=sys.stderr)
    report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    report["peak_rss_children_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    print(json.dumps(report, indent=1))
    return 1 if any(s["crashes"] for s in report["layers"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
