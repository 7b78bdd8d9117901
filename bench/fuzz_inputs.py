"""The fuzzer's inputs (bench/fuzz.py): .anr files, lone chunks and entropy-layer inputs
parsed into fields and serialised back with lengths and CRC32s recomputed, and the
structure-aware mutations that edit them, so that mutated bytes reach the parsers behind
the checksums."""

from __future__ import annotations

import dataclasses
import math
import random
import re
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np
import zstandard

from actinr_codec.model.config import KEYS
from actinr_codec.model.schema import GOP_SIZE_KEY, parse_config, tensor_layout, tile_count
from bitstream.entropy import encode_symbols
from bitstream.errors import BitstreamError
from bitstream.header import MAGIC, NO_REFERENCE, T_BOOL, T_FLOAT, T_INT, T_NONE, T_STR
from bitstream.limits import MAX_SYMBOL
from bitstream.models import CONSTANT, HISTOGRAM, LAPLACE, SymbolModel, fit_model
from bitstream.records import INTRA, PREDICTED
from bitstream.wire import Cursor, pack_varints

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
    side: bytes = b""                      # version 4: the side section after the chunks
    side_length: int | None = None         # None: the side section's own length
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
        side = (pk("<Q", len(self.side) if self.side_length is None else self.side_length)
                if self.version >= 4 else b"")
        head_size = (21 + sum(len(c) for c in config) + 4 + entry_size * len(self.index)
                     + len(side) + len(self.header_extra))
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
                         *entries, side, self.header_extra])
        framed = self.magic + pk("<II", self.version,
                                 len(head) if self.body_length is None else self.body_length) + head
        crc = pk("<I", zlib.crc32(framed) if self.crc is None else self.crc)
        return framed + crc + b"".join(chunks) + self.side + self.trailing

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
    if version not in (1, 2, 3, 4, 5):
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
    side_length = cursor.one("<Q") if version >= 4 else 0
    anr = AnrFile(version, info, config, index, [], header_extra=bytes(cursor.take(cursor.remaining)),
                  magic=magic)
    pos, chunks_end = 16 + body_length + 4, max(16 + body_length + 4, len(data) - side_length)
    while pos + 12 <= chunks_end:
        end = pos + 12 + struct.unpack_from("<I", data, pos + 4)[0]
        if end > chunks_end:
            break
        anr.chunks.append(parse_chunk(data[pos:end], version))
        pos = end
    if pos == chunks_end:
        anr.side = data[pos:]
    else:
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


def mutate_side(anr: AnrFile, r: random.Random) -> None:
    """An edit of the side section (version 4): its length in the header, a box's type or
    length, the TIME box's fields, or the section's bytes, with its CRC recomputed mostly."""
    op = r.randrange(4)
    if op == 0:
        anr.side_length = r.choice([0, 1, 15, 16, len(anr.side) + 1, some_int(r, len(anr.side))])
        return
    body = bytearray(anr.side[:-4] if len(anr.side) >= 4 else b"")
    if op == 1 and len(body) >= 12:
        # The first box: another type, or another payload length.
        if r.random() < 0.5:
            body[0:4] = r.choice([b"TIME", b"STRM", b"time", b"\0\0\0\0", r.randbytes(4)])
        else:
            body[4:12] = pk("<Q", r.choice([0, 1, 15, len(body), 2**40, 2**64 - 1, some_int(r)]))
    elif op == 2:
        # A TIME box of its own: time base, first stamp and steps, valid or not.
        count = max(0, anr.info[2] - 1) if r.random() < 0.7 else r.choice([0, 1, 2, 300])
        steps = [r.choice([1, 2, 3, 1000, 0, 2**28 - 1]) for _ in range(min(count, 4096))]
        payload = (pk("<IIq", r.choice([1, 0, 2**32 - 1]), r.choice([90000, 1000, 0, 1]),
                      r.choice([0, -3003, 2**62, -2**62 - 1]))
                   + pack_varints(np.asarray(steps, dtype=np.int64)))
        body = bytearray(pk("<4sQ", b"TIME", len(payload)) + payload) + (
            body if r.random() < 0.5 else b"")
    else:
        body = bytearray(mutate_bytes(bytes(body), r))
    crc = zlib.crc32(body) if r.random() < 0.9 else r.getrandbits(32)
    anr.side = bytes(body) + pk("<I", crc)


def mutate_file(anr: AnrFile, r: random.Random) -> None:
    """One structural edit of a parsed file, in place."""
    op = r.randrange(17)
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
    elif op == 10 and anr.version >= 4:
        mutate_side(anr, r)
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
    return 1 + data[0] % 4 if data else 4


def mutate_chunk_input(data: bytes, r: random.Random) -> bytes:
    if len(data) < 2 or r.random() < 0.05:
        return bytes([r.randrange(4)]) + data[1:]
    version = chunk_version(data)
    if r.random() < 0.2:
        return data[:1] + fix_chunk_frame(mutate_bytes(data[1:], r), r.random() < 0.8)
    chunk = parse_chunk(data[1:], version)
    for _ in range(r.choice([1, 1, 2, 3])):
        mutate_chunk(chunk, r)
    return data[:1] + chunk.pack(version)
