"""Motion fields' integer values range-coded bin by bin under adaptive binary models.

A GOP's motion fields are small grids of integers (vectors at a step, less a prediction
from values already decoded): half of them zero, most small, a few of ten or more.
A Laplace or histogram table fitted per tensor (models.py) cannot follow both the peak
at zero and the long tail, and costs 4-6 bits a value on carphone's fields. Here a value
is split into yes/no questions (is its magnitude above 0, above 1, ...; its sign; the
rest of a large magnitude in an Exp-Golomb code) and each question has a probability
learnt from the answers coded before it, as H.264's CABAC codes motion vector
differences: on carphone's GOP fits that took 14-35 % off a GOP's fields' bits.

The probabilities are counts of integers, and the tables handed to constriction are
integer weights (see entropy.py), so a decoder computes every table exactly, on any
machine. The layout is specified in docs/bitstream.md, "Motion fields".
"""

from __future__ import annotations

import math

import constriction
import numpy as np

from .entropy import checked
from .errors import BitstreamError
from .models import TOTAL

# Magnitude questions asked under learnt probabilities ("above b?" for b < UNARY); a
# magnitude of UNARY or more codes the rest, m - UNARY, in an Exp-Golomb code of order
# SUFFIX_ORDER with even odds.
UNARY = 16
SUFFIX_ORDER = 2
# The largest magnitude coded, and the leading zeros of the Exp-Golomb code beyond which
# a reader stops counting (enough for every magnitude up to it).
MAX_MAGNITUDE = 1 << 20
MAX_SUFFIX_ZEROS = 18
# A count pair is halved once its sum passes this, so that the odds follow the field.
COUNT_LIMIT = 1024
# Values per field at most: a reader's work is bounded by what it is told to read.
MAX_VALUES = 1 << 24


class _Bins:
    """The coder's adaptive questions: one pair of counts per context."""

    def __init__(self):
        # Three contexts for "above 0" (by the neighbours' magnitudes), one for each
        # further question.
        self.counts = [[1, 1] for _ in range(3 + UNARY - 1)]

    def table(self, context: int) -> np.ndarray:
        zeros, ones = self.counts[context]
        one = (TOTAL - 2) * ones // (zeros + ones)
        return np.array([TOTAL - 2 - one, one], np.float64)

    def update(self, context: int, bit: int) -> None:
        pair = self.counts[context]
        pair[bit] += 1
        if pair[0] + pair[1] > COUNT_LIMIT:
            pair[0], pair[1] = (pair[0] + 1) // 2, (pair[1] + 1) // 2


EVEN = np.array([(TOTAL - 2) // 2, (TOTAL - 2) // 2], np.float64)


def _first_context(grid: np.ndarray, r: int, c: int) -> int:
    """The context of "above 0" at (r, c): the magnitudes left and above it, summed (0
    outside the grid): 0 if none, 1 if below 4, 2 otherwise."""
    total = (abs(int(grid[r, c - 1])) if c else 0) + (abs(int(grid[r - 1, c])) if r else 0)
    return 0 if total == 0 else 1 if total < 4 else 2


def _walk(fields: list[np.ndarray], ask, known: bool) -> None:
    """Visit every value of every field in order (its grids in C order, each grid's rows
    in turn), asking each question through ask(table, bit) -> bit: with known, the
    fields hold the values and bit is the answer; without, bit is None, ask reads the
    answer and the fields are filled. Each field starts its own counts."""
    for field in fields:
        bins = _Bins()
        grids = field.reshape(-1, *field.shape[-2:])
        for grid in grids:
            h, w = grid.shape
            for r in range(h):
                for c in range(w):
                    grid[r, c] = _value(grid, r, c, bins, ask, known)


def _value(grid: np.ndarray, r: int, c: int, bins: _Bins, ask, known: bool) -> int:
    value = int(grid[r, c]) if known else 0
    magnitude = abs(value)
    m = 0
    while m < UNARY:
        context = _first_context(grid, r, c) if m == 0 else 2 + m
        bit = ask(bins.table(context), int(magnitude > m) if known else None)
        bins.update(context, bit)
        if not bit:
            break
        m += 1
    if m == UNARY:
        m += _suffix(magnitude - UNARY if known else None, ask)
        if m > MAX_MAGNITUDE:
            raise BitstreamError("motion field magnitude out of range")
    if m and ask(EVEN, int(value < 0) if known else None):
        return -m
    return m


def _suffix(rest: int | None, ask) -> int:
    """rest in an Exp-Golomb code of order SUFFIX_ORDER, or (rest None) read back."""
    if rest is not None:
        q = (rest >> SUFFIX_ORDER) + 1
        zeros = q.bit_length() - 1
        bits = [0] * zeros + [(q >> i) & 1 for i in range(zeros, -1, -1)]
        bits += [(rest >> i) & 1 for i in range(SUFFIX_ORDER - 1, -1, -1)]
        for bit in bits:
            ask(EVEN, bit)
        return rest
    zeros = 0
    while not ask(EVEN, None):
        zeros += 1
        if zeros > MAX_SUFFIX_ZEROS:
            raise BitstreamError("motion field magnitude out of range")
    q = 1
    for _ in range(zeros):
        q = 2 * q + ask(EVEN, None)
    low = 0
    for _ in range(SUFFIX_ORDER):
        low = 2 * low + ask(EVEN, None)
    return ((q - 1) << SUFFIX_ORDER) + low


def _check_shape(shape: tuple[int, ...]) -> None:
    if (len(shape) < 2 or min(shape) < 0 or 0 in shape[-2:]
            or math.prod(shape) > MAX_VALUES):
        raise ValueError(f"a motion field is grids of at most {MAX_VALUES} values, "
                         f"not shape {tuple(shape)}")


def _check(fields: list[np.ndarray]) -> None:
    for field in fields:
        _check_shape(field.shape)
        if field.size and int(np.abs(field.astype(np.int64)).max()) > MAX_MAGNITUDE:
            raise ValueError(f"motion field values must lie within +-{MAX_MAGNITUDE}")


def encode_fields(fields: list[np.ndarray]) -> bytes:
    """One range-coder stream of the integer fields (each ``(..., h, w)``), in turn."""
    _check(fields)
    encoder = constriction.stream.queue.RangeEncoder()

    def ask(table: np.ndarray, bit: int) -> int:
        encoder.encode(np.array([bit], np.int32), constriction.stream.model.Categorical(
            table, perfect=False))
        return bit

    _walk([f.astype(np.int64) for f in fields], ask, known=True)
    return encoder.get_compressed().astype("<u4").tobytes()


def decode_fields(payload: bytes, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    """The int32 fields of the given shapes from encode_fields' stream."""
    if len(payload) % 4:
        raise BitstreamError(f"motion field payload length {len(payload)} is not a "
                             "multiple of 4")
    try:
        for shape in shapes:
            _check_shape(tuple(shape))
    except ValueError as exc:
        raise BitstreamError(str(exc)) from None
    fields = [np.zeros(shape, np.int64) for shape in shapes]
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(payload, "<u4"))

    def ask(table: np.ndarray, bit: None) -> int:
        return int(decoder.decode(constriction.stream.model.Categorical(table, perfect=False)))

    checked(decoder, lambda: _walk(fields, ask, known=False), "motion field")
    return [f.astype(np.int32) for f in fields]


def field_bits(fields: list[np.ndarray]) -> float:
    """The fields' ideal code length in bits under the coder's models (what encode_fields
    writes, less the stream's flush): for encoders' choices."""
    _check(fields)
    total = 0.0

    def ask(table: np.ndarray, bit: int) -> int:
        nonlocal total
        total += math.log2(TOTAL) - math.log2(table[bit] + 1)
        return bit

    _walk([f.astype(np.int64) for f in fields], ask, known=True)
    return total
