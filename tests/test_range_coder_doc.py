"""Conformance test: the entropy layer of `.anr`, decoded from docs/bitstream.md alone.

Frequency tables (section "Entropy models") and a range decoder and encoder (section
"Range coder") in plain Python integers, without constriction, read every golden payload
(framing by `test_bitstream_golden.read_by_the_doc`) to the container's symbols,
reproduce constriction's words on random and steered streams, and give the same verdict
on damaged payloads (invalid data, data left over).
"""

from __future__ import annotations

import bisect
import copy
import math
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from test_bitstream_golden import golden_video, read_by_the_doc

from bitstream import BitstreamError, decode_file, encode_file
from bitstream.entropy import decode_symbols, encode_symbols
from bitstream.models import CONSTANT, HISTOGRAM, LAPLACE, SymbolModel

GOLDENS = Path(__file__).parent / "golden"


# --- Frequency tables and the range coder (sections "Entropy models" and "Range coder") -------

PRECISION_TOTAL = 2**24
MOD = 2**64


def decay_powers(decay: int, length: int) -> list[int]:
    """`P[0..length-1]`: `P[0] = 2**30`, `P[1] = decay * 2**14`, then doubling by rounded
    products, with Python integers."""
    def rnd(x):
        return (x + 2**29) >> 30

    powers = [2**30, decay * 2**14][:length]
    for d in range(2, length):
        b = 1 << (d.bit_length() - 1)
        powers.append(rnd(powers[b // 2] ** 2) if d == b else rnd(powers[b] * powers[d - b]))
    return powers


def frequency_table(kind: int, lo: int, params: tuple) -> list[int]:
    """The integer frequencies `f` of a laplace (params hi, centre, decay) or histogram
    (params hi, counts) model, with Python integers."""
    if kind == 1:
        hi, centre, decay = params
        powers = decay_powers(decay, max(centre - lo, hi - centre) + 1)
        v, peak = [powers[abs(s - centre)] for s in range(lo, hi + 1)], centre - lo
    else:
        hi, counts = params
        v = list(counts)
        peak = v.index(max(v))
    free = PRECISION_TOTAL - (hi - lo + 1)
    w = [x * free // sum(v) for x in v]
    w[peak] += free - sum(w)
    return [x + 1 for x in w]


def cumulative(freqs: list[int]) -> list[int]:
    """`c[0] = 0, c[i + 1] = c[i] + f[i]`, ending at 2**24."""
    c = [0]
    for f in freqs:
        c.append(c[-1] + f)
    assert c[-1] == PRECISION_TOTAL and min(freqs) >= 1
    return c


class DocRangeDecoder:
    """The decoder of "Range coder": 64-bit lower, range and point; 32-bit words."""

    def __init__(self, payload: bytes):
        if len(payload) % 4:
            raise ValueError("payload length is not a multiple of 4")
        self.words = struct.unpack(f"<{len(payload) // 4}I", payload)
        self.pos = 0
        self.lower, self.range = 0, MOD - 1
        self.point = (self._next() << 32) | self._next()

    def _next(self) -> int:
        """The next word; 0 past the end of the payload."""
        if self.pos == len(self.words):
            return 0
        self.pos += 1
        return self.words[self.pos - 1]

    def decode(self, c: list[int]) -> int:
        scale = self.range >> 24
        q = ((self.point - self.lower) % MOD) // scale
        if q >= PRECISION_TOTAL:
            raise ValueError("invalid range coder data")
        i = bisect.bisect_right(c, q) - 1
        self.lower = (self.lower + scale * c[i]) % MOD
        self.range = scale * (c[i + 1] - c[i])
        if self.range < 2**32:
            self.lower = (self.lower << 32) % MOD
            self.range <<= 32
            self.point = ((self.point << 32) % MOD) | self._next()
        return i

    def end_check(self) -> bool:
        """Every word read, and no symbol decoded or the point within 2**33 - 1 of lower."""
        return self.pos == len(self.words) and (
            self.range == MOD - 1 or (self.point - self.lower) % MOD < 2**33 - 1)


class DocRangeEncoder:
    """The encoder of "Range coder", with the carry (inverted situation) and the flush;
    `events` counts the rarer branches so that a test can see them taken."""

    def __init__(self):
        self.lower, self.range = 0, MOD - 1
        self.inverted: tuple[int, int] | None = None  # (k, a)
        self.words: list[int] = []
        self.events: Counter = Counter()

    def _settle(self, carry: bool) -> None:
        k, a = self.inverted
        self.words += [a + 1] + [0] * (k - 1) if carry else [a] + [0xFFFFFFFF] * (k - 1)
        self.inverted = None

    def encode(self, i: int, c: list[int]) -> None:
        scale = self.range >> 24
        lower = (self.lower + scale * c[i]) % MOD
        self.range = scale * (c[i + 1] - c[i])
        if self.inverted and lower + self.range < MOD:
            self.events["carry" if lower < self.lower else "no carry"] += 1
            self._settle(lower < self.lower)
        self.lower = lower
        if self.range < 2**32:
            top = self.lower >> 32
            self.lower = (self.lower << 32) % MOD
            self.range <<= 32
            if self.inverted:
                assert top == 0xFFFFFFFF
                self.inverted = (self.inverted[0] + 1, self.inverted[1])
                self.events["longer inversion"] += 1
            elif self.lower + self.range < MOD:
                self.words.append(top)
            else:
                self.inverted = (1, top)

    def finish(self) -> bytes:
        if self.range != MOD - 1:
            p = (self.lower + 2**32 - 1) % MOD
            if self.inverted:
                self.events["inverted at the end"] += 1
                self._settle(p < self.lower)
            self.words.append(p >> 32)
            if ((self.lower + self.range) % MOD) >> 32 == p >> 32:
                self.events["trailing zero"] += 1
                self.words.append(0)
        return struct.pack(f"<{len(self.words)}I", *self.words)


def doc_decode(payload: bytes, items: list[tuple[list[int] | None, int, int]]):
    """(indices + lo per item, end check) for items (cumulative table or None for a constant
    tensor, lo, element count) decoded in turn from one payload."""
    decoder = DocRangeDecoder(payload)
    out = [[lo] * count if c is None else [decoder.decode(c) + lo for _ in range(count)]
           for c, lo, count in items]
    return out, decoder.end_check()


# --- Range coder: the document's coder against the container's -------------------------------

# Files of GOP models; the pictures' payloads are read by tests/test_pictures_doc.py.
ANR_FILES = [p for p in sorted(GOLDENS.glob("v*/*.anr"))
             if "latent" not in decode_file(p.read_bytes())[1]]


def symbol_model(kind: int, lo: int, params: tuple) -> SymbolModel:
    """The container's model for a tensor table entry (for the reference decoder only)."""
    if kind == 0:
        return SymbolModel(CONSTANT, lo, lo)
    if kind == 1:
        hi, centre, decay = params
        return SymbolModel(LAPLACE, lo, hi, centre=centre, decay=decay)
    hi, counts = params
    return SymbolModel(HISTOGRAM, lo, hi, counts=np.array(counts, np.int64))


def both_outcomes(payload: bytes, models: list[tuple[int, int, tuple, int]]):
    """What the document's decoder and `bitstream.entropy` make of a payload under models
    (kind, lo, parameters, element count): the symbols, 'data left' or 'invalid'."""
    items = [(None if kind == 0 else cumulative(frequency_table(kind, lo, params)), lo, count)
             for kind, lo, params, count in models]
    try:
        symbols, ok = doc_decode(payload, items)
        doc = symbols if ok else "data left"
    except ValueError:
        doc = "invalid"
    try:
        ref = [a.tolist() for a in decode_symbols(
            payload, [(symbol_model(kind, lo, params), count) for kind, lo, params, count in models])]
    except BitstreamError as exc:
        ref = "data left" if "data left" in str(exc) else "invalid"
        assert ref == "data left" or "entropy decoding failed" in str(exc)
    return doc, ref


def damaged(payload: bytes, rng: np.random.Generator) -> list[bytes]:
    """The payload with a zero word more, its last word cut, and one random bit flipped."""
    out = [payload + bytes(4), payload[:-4]]
    if payload:
        flipped = bytearray(payload)
        bit = int(rng.integers(8 * len(payload)))
        flipped[bit // 8] ^= 1 << (bit % 8)
        out.append(bytes(flipped))
    return out


@pytest.mark.parametrize("path", [*ANR_FILES, None],
                         ids=[f"{p.parent.name}-{p.stem}" for p in ANR_FILES] + ["v3-container"])
def test_doc_range_decoder_reads_every_golden_payload(path):
    """Every GOP payload of every golden file (and of the version-3 container of
    test_bitstream_golden) decodes with the document's tables and decoder to the symbols the
    container reads, and passes the end check; damaged payloads get the same verdict."""
    data = encode_file(*golden_video()) if path is None else path.read_bytes()
    parsed = read_by_the_doc(data)
    gops = decode_file(data)[2]
    rng = np.random.default_rng(len(data))
    for entries, payload, gop in zip(parsed["chunks"], parsed["payloads"], gops, strict=True):
        models = [(kind, lo, params, math.prod(shape)) for _, shape, _, kind, lo, params in entries]
        doc, ref = both_outcomes(payload, models)
        assert doc == ref == [t.symbols.ravel().tolist() for t in gop.tensors]
        for bad in damaged(payload, rng):
            doc, ref = both_outcomes(bad, models)
            assert doc == ref


def random_models(rng: np.random.Generator) -> list[tuple[SymbolModel, tuple, np.ndarray]]:
    """One stream's worth of (model, its table parameters, symbols): laplace models with any
    decay (0 and 65535 included), histograms with empty and dominant bins, constants."""
    out = []
    for _ in range(int(rng.integers(1, 6))):
        lo = int(rng.integers(-60, 10))
        hi = lo + int(rng.integers(1, 40))
        count = int(rng.integers(1, 120))
        choice = rng.random()
        if choice < 0.1:
            out.append((SymbolModel(CONSTANT, lo, lo), (), np.full(count, lo, np.int32)))
            continue
        if choice < 0.55:
            decay = int(rng.choice([0, 1, 65535, int(rng.integers(30000, 65535))]))
            centre = int(rng.integers(lo, hi + 1))
            model, params = (SymbolModel(LAPLACE, lo, hi, centre=centre, decay=decay),
                             (hi, centre, decay))
        else:
            counts = rng.integers(0, 4, hi - lo + 1) * (rng.random(hi - lo + 1) < 0.6)
            counts[int(rng.integers(hi - lo + 1))] += int(rng.choice([1, 10**6]))
            model, params = SymbolModel(HISTOGRAM, lo, hi, counts=counts), (hi, tuple(counts.tolist()))
        freqs = np.array(frequency_table(model.kind, lo, params), np.float64)
        # Mostly the model's own law, and a share of arbitrary symbols (probability 2**-24 included).
        likely = rng.choice(hi - lo + 1, count, p=freqs / freqs.sum())
        anything = rng.integers(0, hi - lo + 1, count)
        symbols = lo + np.where(rng.random(count) < 0.7, likely, anything)
        out.append((model, params, symbols.astype(np.int32)))
    return out


def check_stream(stream: list[tuple[SymbolModel, tuple, np.ndarray]],
                 rng: np.random.Generator) -> Counter:
    """`bitstream.entropy.encode_symbols` (constriction) writes exactly the document
    encoder's words for the stream, the document's decoder reads them back and passes the end
    check, and damaged copies get the same verdict from both decoders. The encoder's events."""
    payload = encode_symbols([(symbols, model) for model, _, symbols in stream])
    encoder = DocRangeEncoder()
    for model, params, symbols in stream:
        if model.kind != CONSTANT:
            c = cumulative(frequency_table(model.kind, model.lo, params))
            for s in symbols.tolist():
                encoder.encode(s - model.lo, c)
    assert encoder.finish() == payload
    models = [(model.kind, model.lo, params, len(symbols)) for model, params, symbols in stream]
    doc, ref = both_outcomes(payload, models)
    assert doc == ref == [symbols.tolist() for _, _, symbols in stream]
    for bad in damaged(payload, rng):
        doc, ref = both_outcomes(bad, models)
        assert doc == ref
    return encoder.events


def test_doc_range_coder_matches_constriction_on_random_streams():
    """80 random streams of one to five models each, carries included."""
    rng = np.random.default_rng(20240611)
    events: Counter = Counter()
    for _ in range(80):
        events += check_stream(random_models(rng), rng)
    assert {"carry", "no carry", "inverted at the end"} <= set(events), events


def steered_indices(goal: str, c: list[int], rng: np.random.Generator) -> list[int]:
    """Indices under table c chosen, with the document's encoder as a guide, so that it
    takes a branch random data almost never does: 'longer inversion' (a renormalisation
    while inverted: keep picking the index whose interval straddles 2**64) or 'trailing
    zero' (try every last index at each step)."""
    n = len(c) - 1
    encoder, indices = DocRangeEncoder(), []
    while goal not in encoder.events:
        assert len(indices) < 1000, f"no {goal!r} in 1000 symbols"
        i = int(rng.integers(n))
        if goal == "longer inversion" and encoder.inverted:
            scale = encoder.range >> 24
            straddling = bisect.bisect_left([scale * x for x in c], MOD - encoder.lower) - 1
            i = straddling if straddling < n else i
        elif goal == "trailing zero":
            for last in range(n):
                trial = copy.deepcopy(encoder)
                trial.encode(last, c)
                trial.finish()
                if goal in trial.events:
                    return [*indices, last]
        encoder.encode(i, c)
        indices.append(i)
    return indices + [int(x) for x in rng.integers(n, size=5)]


@pytest.mark.parametrize("goal", ["longer inversion", "trailing zero"])
def test_doc_range_coder_rare_branches(goal):
    """The branches that random streams miss, on streams steered into them."""
    rng = np.random.default_rng(7)
    lo, hi, centre, decay = -30, 30, 0, 32768  # frequencies from 2**22 down to 1
    model = SymbolModel(LAPLACE, lo, hi, centre=centre, decay=decay)
    c = cumulative(frequency_table(LAPLACE, lo, (hi, centre, decay)))
    symbols = np.array(steered_indices(goal, c, rng), np.int32) + lo
    assert goal in check_stream([(model, (hi, centre, decay), symbols)], rng)


def test_doc_range_decoder_edge_cases():
    """The start of the stream and the end check's slack, as the document states them."""
    laplace = [(1, -2, (2, 0, 30000), 3)]
    constant = [(0, 5, (), 4)]
    # No coded symbol: nothing is written, yet up to two words pass the end check.
    assert encode_symbols([(np.full(4, 5, np.int32), SymbolModel(CONSTANT, 5, 5))]) == b""
    for words, verdict in [([], [[5] * 4]), ([7], [[5] * 4]), ([7, 9], [[5] * 4]),
                           ([7, 9, 11], "data left")]:
        assert both_outcomes(struct.pack(f"<{len(words)}I", *words), constant) == (verdict, verdict)
    # A point in the first interval's unassigned top (q >= 2**24) is invalid data.
    assert both_outcomes(struct.pack("<II", 0xFFFFFFFF, 0xFFFFFF00), laplace) == ("invalid",) * 2
    # An empty payload reads as zero words: the symbols of point 0, and it passes.
    doc, ref = both_outcomes(b"", laplace)
    assert doc == ref == [[-2, -2, -2]]
