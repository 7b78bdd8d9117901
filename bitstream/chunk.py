"""One GOP chunk: its tensor table (names, shapes, steps, model parameters) and the
entropy-coded symbols, or a picture GOP's body (pictures.py), framed by a tag, a length
and a CRC32."""

from __future__ import annotations

import dataclasses
import math
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np
import zstandard

from .entropy import decode_symbols, encode_symbols
from .errors import BitstreamError
from .header import VERSION, wire_reference
from .limits import (
    MAX_CHUNK_BYTES,
    MAX_GOP_ALPHABET,
    MAX_GOP_ELEMENTS,
    MAX_NAME_BYTES,
    MAX_NDIM,
    MAX_SYMBOL,
    MAX_TABLE_BYTES,
    MAX_TENSORS,
    check_shape,
)
from .models import CONSTANT, SymbolModel, fit_model, pack_model, read_model
from .pictures import GridDecoder, PictureLayout, decode_picture, encode_picture
from .records import PICTURE, GOPRecord, GopSpan, TensorRecord, reference_of
from .wire import Cursor, pack_str

CHUNK_TAG = b"ANRG"
FRAME = struct.Struct("<4sI")          # tag, body length; the CRC32 follows the body
# gop, start, stop, [kind, reference] (from version 2)
SPAN_HEAD = {1: struct.Struct("<III"), 2: struct.Struct("<IIIBI"), 3: struct.Struct("<IIIBI"),
             4: struct.Struct("<IIIBI"), 5: struct.Struct("<IIIBI")}
# then, but in a picture GOP: tensors, coding, stored, raw
TABLE_HEAD = struct.Struct("<HBII")
CHUNK_OVERHEAD = FRAME.size + 4
TABLE_RAW, TABLE_ZSTD = 0, 1
ZSTD_LEVEL = 19  # the tensor table's; bitstream.stats compares tensors at the same level


def _float32_step(name: str, step: float) -> float:
    value = float(step)
    if not math.isfinite(value) or float(np.float32(value)) != value:
        raise BitstreamError(f"tensor {name!r}: step {step!r} is not a finite float32 value")
    return value


def _checked_symbols(tensor: TensorRecord) -> np.ndarray:
    symbols = np.asarray(tensor.symbols)
    if not np.issubdtype(symbols.dtype, np.integer):
        raise BitstreamError(f"tensor {tensor.name!r}: symbols must be integers, "
                             f"not {symbols.dtype}")
    if symbols.shape != tuple(tensor.shape):
        raise BitstreamError(f"tensor {tensor.name!r}: symbols have shape {symbols.shape}, "
                             f"record says {tuple(tensor.shape)}")
    if symbols.size and max(-int(symbols.min()), int(symbols.max())) > MAX_SYMBOL:
        raise BitstreamError(f"tensor {tensor.name!r}: a symbol exceeds +-{MAX_SYMBOL}")
    return symbols.astype(np.int32)


def _pack_table(tensors: list[TensorRecord]) -> tuple[bytes, list[tuple[np.ndarray,
                                                                        SymbolModel]]]:
    entries, coded, names = [], [], set()
    elements = alphabet = 0
    for tensor in tensors:
        if tensor.name in names:
            raise BitstreamError(f"duplicate tensor name {tensor.name!r}")
        names.add(tensor.name)
        name = pack_str(tensor.name, "ascii", "tensor name", MAX_NAME_BYTES)
        elements += check_shape(tensor.name, tensor.shape)
        symbols = _checked_symbols(tensor)
        model, _ = fit_model(symbols)
        alphabet += model.size if model.kind != CONSTANT else 0
        entries += [name, struct.pack("<B", len(tensor.shape)),
                    struct.pack(f"<{len(tensor.shape)}I", *tensor.shape),
                    struct.pack("<f", _float32_step(tensor.name, tensor.step)),
                    pack_model(model)]
        coded.append((symbols, model))
        _check_totals(elements, alphabet)
    return b"".join(entries), coded


def _check_totals(elements: int, alphabet: int) -> None:
    if elements > MAX_GOP_ELEMENTS:
        raise BitstreamError(f"GOP holds {elements} elements (limit {MAX_GOP_ELEMENTS})")
    if alphabet > MAX_GOP_ALPHABET:
        raise BitstreamError(f"GOP alphabets total {alphabet} symbols "
                             f"(limit {MAX_GOP_ALPHABET})")


def encode_chunk(k: int, gop: GOPRecord) -> bytes:
    """GOP k as a framed, checksummed chunk."""
    head = SPAN_HEAD[VERSION].pack(k, gop.start, gop.stop, gop.kind, wire_reference(gop.reference))
    if gop.kind == PICTURE:
        if gop.picture is None or gop.tensors or gop.stop - gop.start != 1:
            raise BitstreamError(f"GOP {k}: a picture GOP is one frame, a picture and no "
                                 f"tensors")
        try:
            return _framed(k, head + encode_picture(gop.picture))
        except BitstreamError as exc:
            raise BitstreamError(f"GOP {k}: {exc}") from None
    return _framed(k, head + _tensor_body(k, gop))


def _framed(k: int, body: bytes) -> bytes:
    if len(body) + CHUNK_OVERHEAD > MAX_CHUNK_BYTES:
        raise BitstreamError(f"GOP {k} chunk exceeds 4 GiB")
    framed = FRAME.pack(CHUNK_TAG, len(body)) + body
    return framed + struct.pack("<I", zlib.crc32(framed))


def _tensor_body(k: int, gop: GOPRecord) -> bytes:
    """A model GOP's body after its span fields: tensor table, then symbols."""
    if len(gop.tensors) > MAX_TENSORS:
        raise BitstreamError(f"GOP {k} has {len(gop.tensors)} tensors (limit {MAX_TENSORS})")
    try:
        table, coded = _pack_table(gop.tensors)
    except BitstreamError as exc:
        raise BitstreamError(f"GOP {k}: {exc}") from None
    if len(table) > MAX_TABLE_BYTES:
        raise BitstreamError(f"GOP {k} tensor table is {len(table)} bytes "
                             f"(limit {MAX_TABLE_BYTES})")
    packed = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(table)
    coding, stored = (TABLE_ZSTD, packed) if len(packed) < len(table) else (TABLE_RAW, table)
    return b"".join([TABLE_HEAD.pack(len(gop.tensors), coding, len(stored), len(table)),
                     stored, encode_symbols(coded)])


@dataclass(frozen=True)
class CodedGOP:
    """GOP ``index`` of a video as its file holds it: the chunk and the span it claims."""

    index: int
    span: GopSpan
    chunk: bytes = field(repr=False)

    def record(self, layout: PictureLayout | None = None,
               grid_decoder: GridDecoder | None = None) -> GOPRecord:
        """The GOP's symbols, decoded back from the chunk (a picture's with its file's
        layout, as decode_chunk's)."""
        return decode_chunk(self.chunk, self.index, self.span, VERSION, layout, grid_decoder)


def code_gop(k: int, gop: GOPRecord) -> CodedGOP:
    """Entropy-code ``gop`` as GOP k of its video, predicted (if it is) from GOP k - 1."""
    span = GopSpan(gop.start, gop.stop, gop.kind, reference_of(k, gop.kind))
    gop = dataclasses.replace(gop, reference=span.reference)
    return CodedGOP(k, span, encode_chunk(k, gop))


def _unpack_table(data: bytes, stored: int, raw: int, coding: int) -> bytes:
    if coding == TABLE_RAW:
        if raw != stored:
            raise BitstreamError("raw tensor table sizes disagree")
        return data
    if coding != TABLE_ZSTD:
        raise BitstreamError(f"unknown table coding {coding}")
    if raw > MAX_TABLE_BYTES:
        raise BitstreamError(f"tensor table of {raw} bytes exceeds limit")
    try:
        # The frame's own size field decides the allocation, so it must match first.
        if zstandard.frame_content_size(data) != raw:
            raise BitstreamError("compressed tensor table has the wrong size")
        table = zstandard.ZstdDecompressor().decompress(data, max_output_size=raw,
                                                        allow_extra_data=False)
    except zstandard.ZstdError:
        raise BitstreamError("corrupt compressed tensor table") from None
    if len(table) != raw:
        raise BitstreamError("compressed tensor table has the wrong size")
    return table


def _read_table(table: bytes, count: int) -> list[tuple[str, tuple, float, SymbolModel, int]]:
    cursor = Cursor(table, "tensor table")
    rows, names = [], set()
    elements = alphabet = 0
    for _ in range(count):
        name = cursor.text("ascii", "tensor name", MAX_NAME_BYTES)
        if name in names:
            raise BitstreamError(f"duplicate tensor name {name!r}")
        names.add(name)
        ndim = cursor.one("<B")
        if ndim > MAX_NDIM:
            raise BitstreamError(f"tensor {name!r} has {ndim} dimensions")
        shape = cursor.unpack(f"<{ndim}I")
        size = check_shape(name, shape)
        step = cursor.one("<f")
        if not math.isfinite(step):
            raise BitstreamError(f"tensor {name!r} has a non-finite step")
        model = read_model(cursor, size, name)
        elements += size
        alphabet += model.size if model.kind != CONSTANT else 0
        _check_totals(elements, alphabet)
        rows.append((name, shape, step, model, size))
    cursor.finish()
    return rows


def _check_layout(rows: list, layout: list[tuple[str, tuple[int, ...]]]) -> None:
    """The table's tensors are exactly the declared ones: what the symbols' decoding
    allocates is then bounded by the model the header describes."""
    names = [name for name, *_ in rows]
    if names != [name for name, _ in layout]:
        raise BitstreamError("tensors do not match the model")
    for (name, shape, *_), (_, expected) in zip(rows, layout, strict=True):
        if tuple(shape) != tuple(expected):
            raise BitstreamError(f"tensor {name} has shape {tuple(shape)}, expected "
                                 f"{tuple(expected)}")


def decode_chunk(data: bytes, k: int, span: GopSpan, version: int,
                 layout: list[tuple[str, tuple[int, ...]]] | PictureLayout | None = None,
                 grid_decoder: GridDecoder | None = None) -> GOPRecord:
    """GOP k from its chunk bytes in a file of this format version, checked against the
    span its index entry gives and, when given, against the tensors (name, shape) the
    file's model layer declares, before any symbol is decoded. A picture GOP needs its
    file's PictureLayout, and decodes its latents with grid_decoder (by default
    bitstream.latents')."""
    if len(data) < CHUNK_OVERHEAD:
        raise BitstreamError(f"truncated: GOP {k} chunk is {len(data)} bytes")
    tag, body_length = FRAME.unpack_from(data)
    if tag != CHUNK_TAG:
        raise BitstreamError(f"GOP {k}: bad chunk tag {tag!r}")
    if body_length + CHUNK_OVERHEAD != len(data):
        raise BitstreamError(f"GOP {k}: chunk length field disagrees with the index")
    if zlib.crc32(data[:-4]) != struct.unpack_from("<I", data, len(data) - 4)[0]:
        raise BitstreamError(f"GOP {k} CRC mismatch")
    try:
        return _decode_body(Cursor(memoryview(data)[FRAME.size:-4], "chunk"), k, span, version,
                            layout, grid_decoder)
    except BitstreamError as exc:
        raise BitstreamError(f"GOP {k}: {exc}") from None


def _decode_body(cursor: Cursor, k: int, span: GopSpan, version: int,
                 layout: list[tuple[str, tuple[int, ...]]] | PictureLayout | None,
                 grid_decoder: GridDecoder | None) -> GOPRecord:
    number, start, stop, *kind = cursor.unpack(SPAN_HEAD[version].format)
    if number != k or (start, stop) != (span.start, span.stop):
        raise BitstreamError(f"chunk says GOP {number} frames [{start}, {stop}), "
                             f"index says frames [{span.start}, {span.stop})")
    if kind and tuple(kind) != (span.kind, wire_reference(span.reference)):
        raise BitstreamError(f"chunk says kind {kind[0]} with reference {kind[1]}, the index "
                             f"says kind {span.kind} with reference {span.reference}")
    if span.kind == PICTURE:
        if not isinstance(layout, PictureLayout):
            raise BitstreamError("a picture GOP needs its file's picture layout")
        if stop - start != 1:
            raise BitstreamError(f"a picture GOP covers one frame, not [{start}, {stop})")
        return GOPRecord(start, stop, [], span.kind, span.reference,
                         decode_picture(cursor, layout, grid_decoder))
    if isinstance(layout, PictureLayout):
        raise BitstreamError("a model GOP in a file of pictures")
    count, coding, stored, raw = cursor.unpack(TABLE_HEAD.format)
    if count > MAX_TENSORS:
        raise BitstreamError(f"{count} tensors exceeds limit {MAX_TENSORS}")
    rows = _read_table(_unpack_table(bytes(cursor.take(stored)), stored, raw, coding), count)
    if layout is not None:
        _check_layout(rows, layout)
    payload = bytes(cursor.take(cursor.remaining))
    flat = decode_symbols(payload, [(model, size) for _, _, _, model, size in rows])
    return GOPRecord(start, stop, [TensorRecord(name, tuple(shape), step, symbols.reshape(shape))
                                   for (name, shape, step, _, _), symbols in zip(rows, flat)],
                     span.kind, span.reference)
