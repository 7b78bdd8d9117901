"""The journal of an encode in progress: every finished GOP, kept on disk beside the output
so that an interrupted encode can resume where it stopped (``--resume``).

``OUTPUT.journal`` holds, all integers little-endian:

- a head: the magic ``ANRJ``, a u8 version (1), a u32 length and that many bytes of UTF-8
  JSON naming the encode (content digest, settings, GOP plan, ...: whatever decides its
  bits), and a u32 CRC-32 of all the head's bytes before it;
- then one entry per finished GOP, appended and flushed to disk as the GOP completes: a
  u32 length L, L bytes of payload, and a u32 CRC-32 of the length and payload. The
  payload is a u32 length M, M bytes of UTF-8 JSON with the GOP's number and measurements,
  and the GOP's chunk exactly as the .anr file will hold it.

An entry cut short or damaged (a kill mid-write, a full disk) ends the journal: resuming
drops it and everything after it, and fits those GOPs again. The journal is private to
actinr and may change between versions: a journal from another version is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import struct
import zlib
from pathlib import Path

from bitstream.chunk import CodedGOP
from bitstream.errors import BitstreamError
from bitstream.pictures import PictureLayout
from bitstream.records import INTRA, PICTURE, PREDICTED, GopSpan, reference_of

from ..native.latents import decode_grids
from .encoder import EncodedGOP, FitStats

MAGIC = b"ANRJ"
VERSION = 1
_HEAD = struct.Struct("<4sBI")
_U32 = struct.Struct("<I")


class JournalMismatch(ValueError):
    """A journal written by a different encode than the one asked to resume it."""


def journal_path(output: str | os.PathLike) -> Path:
    """Where the journal of an encode to ``output`` lives."""
    return Path(f"{os.fspath(output)}.journal")


def _crc(data: bytes) -> bytes:
    return _U32.pack(zlib.crc32(data))


def _fsync(handle) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _describe(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


class Journal:
    """An open journal, appended to as GOPs finish; ``close`` it, or ``discard`` it once
    the output is complete."""

    def __init__(self, path: Path, handle, entries: int = 0):
        self.path, self._handle = path, handle
        self.entries = entries  # GOPs it holds

    @classmethod
    def create(cls, path: str | os.PathLike, identity: dict) -> Journal:
        """A new, empty journal for the encode ``identity`` names, replacing any other."""
        path = Path(path)
        text = json.dumps(identity, sort_keys=True).encode()
        head = _HEAD.pack(MAGIC, VERSION, len(text)) + text
        handle = open(path, "wb")  # noqa: SIM115 (held open until close)
        handle.write(head + _crc(head))
        _fsync(handle)
        return cls(path, handle)

    @classmethod
    def resume(cls, path: str | os.PathLike, identity: dict,
               layout: PictureLayout | None = None) -> tuple[Journal, dict[int, EncodedGOP]]:
        """Reopen the journal at ``path`` for the encode ``identity`` names (layout: its
        pictures', for an encode of pictures): the journal, to append to, and the GOPs it
        holds by number. Raises JournalMismatch, naming the first difference, when the
        journal is another encode's, and ValueError when it is not a journal at all."""
        path = Path(path)
        _, gops, end = read_journal(path, layout, identity)
        handle = open(path, "r+b")  # noqa: SIM115 (held open until close)
        handle.truncate(end)  # a torn last entry goes
        handle.seek(end)
        return cls(path, handle, len(gops)), gops

    def add(self, gop: EncodedGOP) -> None:
        """Record a finished GOP, on disk before this returns."""
        span = gop.coded.span
        meta = json.dumps({
            "gop": gop.coded.index, "frames": [span.start, span.stop], "kind": span.kind,
            **dataclasses.asdict(gop.stats),
        }).encode()
        payload = _U32.pack(len(meta)) + meta + gop.coded.chunk
        framed = _U32.pack(len(payload)) + payload
        self._handle.write(framed + _crc(framed))
        _fsync(self._handle)
        self.entries += 1

    def close(self) -> None:
        self._handle.close()

    def discard(self) -> None:
        self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def read_journal(path: str | os.PathLike, layout: PictureLayout | None = None,
                 expected: dict | None = None) -> tuple[dict, dict[int, EncodedGOP], int]:
    """A journal's identity, its intact GOPs by number, and where its intact part ends; its
    pictures are checked against layout (a journal of pictures needs one). Raises
    ValueError when ``path`` is not a journal of this version, and JournalMismatch when
    its identity is not ``expected`` (checked before any GOP is read)."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) < _HEAD.size + _U32.size or data[:4] != MAGIC:
        raise ValueError(f"{path} is not an actinr journal")
    _, version, length = _HEAD.unpack_from(data)
    offset = _HEAD.size + length
    if version != VERSION or offset + _U32.size > len(data) or data[offset:offset + 4] != _crc(data[:offset]):
        raise ValueError(f"{path} is damaged or from another actinr version; run without "
                         f"--resume to start over")
    damaged = ValueError(f"{path} is damaged or not written by actinr; run without --resume "
                         f"to start over")
    try:
        identity = json.loads(data[_HEAD.size:offset])
    except ValueError:
        raise damaged from None
    if not isinstance(identity, dict):
        raise damaged
    if expected is not None:
        _check_identity(path, identity, expected)
    offset += _U32.size
    gops: dict[int, EncodedGOP] = {}
    while offset + _U32.size <= len(data):
        length = _U32.unpack_from(data, offset)[0]
        end = offset + _U32.size + length
        if end + _U32.size > len(data) or data[end:end + 4] != _crc(data[offset:end]):
            break
        # Past its CRC an entry is what a writer meant: one that does not parse was not
        # written by this code, so the journal is refused rather than half trusted.
        try:
            gop = _entry(data[offset + _U32.size:end], layout)
        except (ValueError, KeyError, TypeError, struct.error, BitstreamError):
            raise damaged from None
        gops[gop.coded.index] = gop
        offset = end + _U32.size
    return identity, gops, offset


def _check_identity(path: Path, stored: dict, identity: dict) -> None:
    """JournalMismatch naming the first key where a journal's identity is not this one's,
    in the order the identity lists them, so that the root cause (another source) is
    named rather than what follows from it (another GOP plan)."""
    for key in [*identity, *(k for k in stored if k not in identity)]:
        if identity.get(key) != stored.get(key):
            raise JournalMismatch(
                f"{path} is from a different encode ({key}: {_describe(stored.get(key))} "
                f"there, {_describe(identity.get(key))} now); run without --resume to "
                f"start over")


def _entry(payload: bytes, layout: PictureLayout | None) -> EncodedGOP:
    """A journal entry's GOP, as it was when written."""
    length = _U32.unpack_from(payload)[0]
    meta = json.loads(payload[_U32.size:_U32.size + length])
    start, stop = meta["frames"]
    numbers = [start, stop, meta["kind"], meta["gop"], meta["iters"], meta["params"]]
    if not all(type(n) is int for n in numbers) or meta["kind"] not in (INTRA, PREDICTED, PICTURE):
        raise ValueError("journal entry fields have the wrong types")
    stats = FitStats(psnr_float=float(meta["psnr_float"]),
                     psnr_quantized=float(meta["psnr_quantized"]), psnr=float(meta["psnr"]),
                     seconds=float(meta["seconds"]), iters=meta["iters"], params=meta["params"],
                     rate_weight=float(meta["rate_weight"]))
    k, kind = meta["gop"], meta["kind"]
    coded = CodedGOP(k, GopSpan(start, stop, kind, reference_of(k, kind)),
                     payload[_U32.size + length:])
    coded.record(layout, decode_grids)  # decodes the chunk: the file will hold it as it is
    return EncodedGOP(stats, coded)
