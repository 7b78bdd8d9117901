"""The file header: magic, version, video info, model configuration and the GOP index,
protected by its own CRC32."""

from __future__ import annotations

import struct
import zlib

import numpy as np

from .errors import BitstreamError
from .limits import (
    MAX_CONFIG_ENTRIES,
    MAX_CONFIG_KEY_BYTES,
    MAX_CONFIG_STR_BYTES,
    check_gop_count,
    check_gop_kinds,
    check_gop_ranges,
    check_info,
    is_int,
)
from .records import COLOURS, INTRA, GopIndexEntry, VideoInfo
from .wire import Cursor, pack_str

MAGIC = b"\x89ANR\r\n\x1a\n"
VERSION = 5  # what the writer writes; the reader reads every version in SUPPORTED
# Version 3 keeps version 2's container and adds to the model layer; version 4 adds the
# side section (frame timestamps, carried streams) after the chunks; version 5 adds
# picture GOPs (latent grids, bitstream/pictures.py) (docs/bitstream.md).
SUPPORTED = (1, 2, 3, 4, 5)
PREFIX = struct.Struct("<8sII")     # magic, version, body length
INFO = struct.Struct("<IIIIIB")     # width, height, frames, fps_num, fps_den, colour
INDEX_ENTRY = {1: struct.Struct("<QIII"),     # offset, length, start, stop
               2: struct.Struct("<QIIIBI"),   # ... kind, reference
               3: struct.Struct("<QIIIBI"),
               4: struct.Struct("<QIIIBI"),
               5: struct.Struct("<QIIIBI")}
SIDE = struct.Struct("<Q")          # version 4: side section length, after the index
NO_REFERENCE = 0xFFFFFFFF
CRC_SIZE = 4

T_NONE, T_BOOL, T_INT, T_FLOAT, T_STR = range(5)

ConfigValue = int | float | str | bool | None


def _pack_value(key: str, value: ConfigValue) -> bytes:
    if value is None:
        return struct.pack("<B", T_NONE)
    if isinstance(value, (bool, np.bool_)):
        return struct.pack("<BB", T_BOOL, bool(value))
    if is_int(value):
        if not -2**63 <= int(value) < 2**63:
            raise BitstreamError(f"config {key!r}: integer {value} does not fit 64 bits")
        return struct.pack("<Bq", T_INT, int(value))
    if isinstance(value, (float, np.floating)):
        return struct.pack("<Bd", T_FLOAT, float(value))
    if isinstance(value, str):
        return struct.pack("<B", T_STR) + pack_str(value, "utf-8", f"config {key!r} value",
                                                   MAX_CONFIG_STR_BYTES, "<H", minimum=0)
    raise BitstreamError(f"config {key!r}: unsupported type {type(value).__name__}")


def pack_config(config: dict[str, ConfigValue]) -> bytes:
    if not isinstance(config, dict):
        raise BitstreamError("config must be a dict")
    if len(config) > MAX_CONFIG_ENTRIES:
        raise BitstreamError(f"config has {len(config)} entries (limit {MAX_CONFIG_ENTRIES})")
    parts = [struct.pack("<H", len(config))]
    for key, value in config.items():
        parts += [pack_str(key, "utf-8", "config key", MAX_CONFIG_KEY_BYTES),
                  _pack_value(key, value)]
    return b"".join(parts)


def read_config(cursor: Cursor) -> dict[str, ConfigValue]:
    count = cursor.one("<H")
    if count > MAX_CONFIG_ENTRIES:
        raise BitstreamError(f"config has {count} entries (limit {MAX_CONFIG_ENTRIES})")
    config: dict[str, ConfigValue] = {}
    for _ in range(count):
        key = cursor.text("utf-8", "config key", MAX_CONFIG_KEY_BYTES)
        if key in config:
            raise BitstreamError(f"duplicate config key {key!r}")
        tag = cursor.one("<B")
        if tag == T_NONE:
            config[key] = None
        elif tag == T_BOOL:
            flag = cursor.one("<B")
            if flag > 1:
                raise BitstreamError(f"config {key!r}: invalid boolean {flag}")
            config[key] = bool(flag)
        elif tag == T_INT:
            config[key] = cursor.one("<q")
        elif tag == T_FLOAT:
            config[key] = cursor.one("<d")
        elif tag == T_STR:
            config[key] = cursor.text("utf-8", f"config {key!r} value", MAX_CONFIG_STR_BYTES,
                                      "<H", minimum=0)
        else:
            raise BitstreamError(f"config {key!r}: unknown value type {tag}")
    return config


def wire_reference(reference: int | None) -> int:
    return NO_REFERENCE if reference is None else reference


def encode_header(info: VideoInfo, packed_config: bytes, ranges: list[tuple[int, int]],
                  kinds: list[tuple[int, int | None]], chunk_lengths: list[int],
                  side_length: int = 0) -> bytes:
    """The header for already checked info, GOP ranges and kinds (kind, reference),
    chunks of these lengths and a side section of side_length bytes after them."""
    head = INFO.pack(info.width, info.height, info.frames, info.fps_num, info.fps_den,
                     COLOURS.index(info.colour)) + packed_config
    entry = INDEX_ENTRY[VERSION]
    body_length = len(head) + 4 + entry.size * len(ranges) + SIDE.size
    offset = PREFIX.size + body_length + CRC_SIZE
    index = [struct.pack("<I", len(ranges))]
    for (start, stop), (kind, reference), length in zip(ranges, kinds, chunk_lengths,
                                                        strict=True):
        index.append(entry.pack(offset, length, start, stop, kind, wire_reference(reference)))
        offset += length
    framed = (PREFIX.pack(MAGIC, VERSION, body_length) + head + b"".join(index)
              + SIDE.pack(side_length))
    return framed + struct.pack("<I", zlib.crc32(framed))


def header_size(prefix: bytes, file_size: int) -> tuple[int, int]:
    """Total header bytes (prefix, body, CRC) announced by the file's first bytes, and the
    format version."""
    if prefix[:len(MAGIC)] != MAGIC[:len(prefix)]:
        raise BitstreamError("not an .anr file (bad magic)")
    if len(prefix) < PREFIX.size:
        raise BitstreamError("truncated: header ends past end of file")
    _, version, body_length = PREFIX.unpack_from(prefix)
    if version not in SUPPORTED:
        raise BitstreamError(f"unsupported format version {version}")
    size = PREFIX.size + body_length + CRC_SIZE
    if size > file_size:
        raise BitstreamError("truncated: header ends past end of file")
    return size, version


def decode_header(header: bytes, file_size: int, version: int
                  ) -> tuple[VideoInfo, dict[str, ConfigValue], list[GopIndexEntry], int]:
    """Info, config, index and the side section's length (0 before version 4) from the
    complete header bytes of a file of file_size bytes."""
    if zlib.crc32(header[:-CRC_SIZE]) != struct.unpack_from("<I", header, len(header) - 4)[0]:
        raise BitstreamError("header CRC mismatch")
    cursor = Cursor(memoryview(header)[PREFIX.size:-CRC_SIZE], "header")
    *fields, colour = cursor.unpack(INFO.format)
    if colour >= len(COLOURS):
        raise BitstreamError(f"unknown colour code {colour}")
    info = VideoInfo(*fields, colour=COLOURS[colour])
    check_info(info)
    config = read_config(cursor)
    count = cursor.one("<I")
    check_gop_count(count, info.frames, version)
    entry = INDEX_ENTRY[version]
    side = SIDE.size if version >= 4 else 0
    if cursor.remaining != count * entry.size + side:
        raise BitstreamError(f"header: GOP index size disagrees with GOP count {count}")
    index = []
    for offset, length, start, stop, *kind in entry.iter_unpack(cursor.take(count * entry.size)):
        # Version 1 has intra GOPs only.
        kind, reference = kind or (INTRA, NO_REFERENCE)
        index.append(GopIndexEntry(start, stop, offset, length, kind,
                                   None if reference == NO_REFERENCE else reference))
    check_gop_ranges([(e.start, e.stop) for e in index], info.frames, version)
    check_gop_kinds([(e.kind, e.reference) for e in index], version)
    side_length = cursor.one("<Q") if side else 0
    if side_length > file_size - len(header):
        raise BitstreamError("truncated: side section ends past end of file")
    _check_placement(index, len(header), file_size - side_length)
    return info, config, index, side_length


def _check_placement(index: list[GopIndexEntry], header_end: int, file_size: int) -> None:
    """Chunks follow the header back to back and end exactly at file_size, where the side
    section (if any) begins."""
    expected = header_end
    for k, entry in enumerate(index):
        if entry.offset != expected:
            raise BitstreamError(f"GOP {k} chunk offset {entry.offset} is not the "
                                 f"expected {expected}")
        if entry.offset + entry.length > file_size:
            raise BitstreamError(f"truncated: GOP {k} chunk ends past end of file")
        expected += entry.length
    if expected != file_size:
        raise BitstreamError(f"{file_size - expected} unexpected bytes after the last GOP")
