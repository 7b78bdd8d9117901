"""Reading and writing the primitive fields of the format: fixed-width little-endian
values, length-prefixed strings and LEB128 varint arrays."""

from __future__ import annotations

import struct

import numpy as np

from .errors import BitstreamError

# Histogram counts never exceed MAX_TENSOR_ELEMENTS = 2**26, so four 7-bit groups suffice.
VARINT_MAX_BYTES = 4
VARINT_LIMIT = 1 << (7 * VARINT_MAX_BYTES)


def pack_str(text: str, encoding: str, what: str, limit: int, length_fmt: str = "<B",
             minimum: int = 1) -> bytes:
    try:
        raw = text.encode(encoding)
    except (UnicodeError, AttributeError):
        raise BitstreamError(f"{what} {text!r} is not {encoding} text") from None
    if not minimum <= len(raw) <= limit:
        raise BitstreamError(f"{what} {text!r} must be {minimum} to {limit} bytes long")
    return struct.pack(length_fmt, len(raw)) + raw


def pack_varints(values: np.ndarray) -> bytes:
    v = np.asarray(values, dtype=np.int64)
    if v.size and (v.min() < 0 or v.max() >= VARINT_LIMIT):
        raise BitstreamError("varint value out of range")
    groups = np.stack([(v >> (7 * j)) & 0x7F for j in range(VARINT_MAX_BYTES)], axis=1)
    used = 1 + sum((v >= 1 << (7 * j)).astype(np.int64) for j in range(1, VARINT_MAX_BYTES))
    lane = np.arange(VARINT_MAX_BYTES)
    groups |= np.where(lane < (used - 1)[:, None], 0x80, 0)
    return groups.astype(np.uint8)[lane < used[:, None]].tobytes()


class Cursor:
    """Sequential reader over a byte string; running past its end is a truncation error."""

    def __init__(self, data: bytes | memoryview, what: str):
        self._data = memoryview(data)
        self._pos = 0
        self.what = what

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def take(self, n: int) -> memoryview:
        if n < 0 or n > self.remaining:
            raise BitstreamError(f"truncated: {self.what} ends early")
        out = self._data[self._pos:self._pos + n]
        self._pos += n
        return out

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))

    def one(self, fmt: str):
        return self.unpack(fmt)[0]

    def text(self, encoding: str, field: str, limit: int, length_fmt: str = "<B",
             minimum: int = 1) -> str:
        length = self.one(length_fmt)
        if not minimum <= length <= limit:
            raise BitstreamError(f"{self.what}: {field} length {length} outside "
                                 f"{minimum}..{limit}")
        raw = bytes(self.take(length))
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            raise BitstreamError(f"{self.what}: {field} is not {encoding} text") from None

    def varints(self, count: int) -> np.ndarray:
        """count >= 1 LEB128 values, each at most VARINT_MAX_BYTES long and minimal."""
        window = np.frombuffer(self._data[self._pos:self._pos + count * VARINT_MAX_BYTES],
                               np.uint8)
        ends = np.flatnonzero(window < 0x80)[:count]
        if len(ends) < count:
            if len(window) < count * VARINT_MAX_BYTES:
                raise BitstreamError(f"truncated: {self.what} ends early")
            raise BitstreamError(f"{self.what}: overlong varint")
        starts = np.concatenate(([0], ends[:-1] + 1))
        lengths = ends - starts + 1
        if lengths.max() > VARINT_MAX_BYTES:
            raise BitstreamError(f"{self.what}: overlong varint")
        if np.any((lengths > 1) & (window[ends] == 0)):
            raise BitstreamError(f"{self.what}: non-minimal varint")
        values = np.zeros(count, np.int64)
        for j in range(VARINT_MAX_BYTES):
            live = lengths > j
            values[live] |= (window[starts[live] + j].astype(np.int64) & 0x7F) << (7 * j)
        self._pos += int(ends[-1]) + 1
        return values

    def finish(self) -> None:
        if self.remaining:
            raise BitstreamError(f"{self.what}: {self.remaining} unexpected trailing bytes")
