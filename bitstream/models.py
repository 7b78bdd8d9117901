"""Integer probability models for a tensor's symbols: construction, fitting, parameters.

A model is a table of integer frequencies f over the alphabet [lo, hi], every f >= 1 and
sum(f) = 2**PRECISION. It is built from stored integers with integer arithmetic only, so
every decoder on every machine gets the same table. Three kinds:

- CONSTANT: every symbol equals lo; nothing is coded.
- LAPLACE: two-sided geometric, f ~ r**|k - centre| with r = decay / 2**16, the powers of r
  computed in 30-bit fixed point by rounded integer products.
- HISTOGRAM: f ~ the stored symbol counts.

The encoder picks whichever kind costs fewest bits, side information included; how it
fits the parameters is not part of the format (any stored parameters decode).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from .errors import BitstreamError
from .limits import MAX_SYMBOL
from .wire import Cursor, pack_varints

PRECISION = 24
TOTAL = 1 << PRECISION
DECAY_BITS = 16
FRAC_BITS = 30
ONE = 1 << FRAC_BITS
HALF = 1 << (FRAC_BITS - 1)

CONSTANT, LAPLACE, HISTOGRAM = 0, 1, 2
KIND_NAMES = {CONSTANT: "constant", LAPLACE: "laplace", HISTOGRAM: "histogram"}

# Search grid for the decay, as factors on the tail mass 2**16 - decay around the
# moment estimate: coarse steps of 2**(1/4), then fine steps of 2**(1/16) around the best.
_COARSE = [2.0 ** (k / 4) for k in range(-4, 5)]
_FINE = [2.0 ** (k / 16) for k in range(-3, 4)]


@dataclass(frozen=True, eq=False)
class SymbolModel:
    kind: int
    lo: int
    hi: int
    centre: int = 0
    decay: int = 0
    counts: np.ndarray | None = None

    @property
    def size(self) -> int:
        return self.hi - self.lo + 1


def decay_powers(decay: int, length: int) -> np.ndarray:
    """v[d] ~ 2**30 * (decay / 2**16)**d for 0 <= d < length, as int64.

    v[0] = 2**30, v[1] = decay * 2**14; for d >= 2 with b the largest power of two <= d,
    v[d] = rnd(v[b/2]**2) if d == b else rnd(v[b] * v[d - b]), rnd(x) = (x + 2**29) >> 30.
    Products stay below 2**60. Doubling blocks make this O(length) vectorised work.
    """
    v = np.zeros(length, np.int64)
    v[0] = ONE
    if length == 1:
        return v
    v[1] = decay << (FRAC_BITS - DECAY_BITS)
    block = 1
    # Once v[block] is 0 every later value is 0, which the zero fill already says.
    while v[block]:
        stop = min(2 * block, length)
        v[block + 1:stop] = (v[block] * v[1:stop - block] + HALF) >> FRAC_BITS
        if stop == length:
            break
        v[stop] = (v[block] * v[block] + HALF) >> FRAC_BITS
        block = stop
    return v


def _normalise(values: np.ndarray, peak: int) -> np.ndarray:
    """Integer weights w with sum(w) = TOTAL - len(values), proportional to values (floor),
    the rounding remainder going to index peak. The frequencies are w + 1."""
    free = TOTAL - len(values)
    weights = values * free // int(values.sum())
    weights[peak] += free - int(weights.sum())
    return weights


def model_weights(model: SymbolModel) -> np.ndarray:
    """The model's frequencies minus one (int64, summing to TOTAL - size); not for CONSTANT."""
    if model.kind == LAPLACE:
        reach = max(model.centre - model.lo, model.hi - model.centre) + 1
        distance = np.abs(np.arange(model.lo - model.centre, model.hi - model.centre + 1))
        return _normalise(decay_powers(model.decay, reach)[distance], model.centre - model.lo)
    counts = model.counts.astype(np.int64)
    return _normalise(counts, int(np.argmax(counts)))


def ideal_bits(model: SymbolModel, counts: np.ndarray) -> float:
    """-sum log2 p over symbols with histogram counts (over [lo, hi]) under the model."""
    if model.kind == CONSTANT:
        return 0.0
    used = counts > 0
    freqs = model_weights(model)[used] + 1
    return float(np.dot(counts[used], PRECISION - np.log2(freqs)))


def pack_model(model: SymbolModel) -> bytes:
    head = struct.pack("<Bi", model.kind, model.lo)
    if model.kind == CONSTANT:
        return head
    if model.kind == LAPLACE:
        return head + struct.pack("<iiH", model.hi, model.centre, model.decay)
    return head + struct.pack("<i", model.hi) + pack_varints(model.counts)


def read_model(cursor: Cursor, elements: int, name: str) -> SymbolModel:
    kind, lo = cursor.unpack("<Bi")
    if abs(lo) > MAX_SYMBOL:
        raise BitstreamError(f"tensor {name!r}: symbol {lo} exceeds limit")
    if kind == CONSTANT:
        return SymbolModel(CONSTANT, lo, lo)
    if kind not in (LAPLACE, HISTOGRAM):
        raise BitstreamError(f"tensor {name!r}: unknown model kind {kind}")
    hi = cursor.one("<i")
    if not lo < hi <= MAX_SYMBOL:
        raise BitstreamError(f"tensor {name!r}: invalid symbol range [{lo}, {hi}]")
    if elements == 0:
        raise BitstreamError(f"tensor {name!r}: coded model for an empty tensor")
    if kind == LAPLACE:
        centre, decay = cursor.unpack("<iH")
        if not lo <= centre <= hi:
            raise BitstreamError(f"tensor {name!r}: centre {centre} outside [{lo}, {hi}]")
        return SymbolModel(LAPLACE, lo, hi, centre=centre, decay=decay)
    counts = cursor.varints(hi - lo + 1)
    if int(counts.sum()) != elements:
        raise BitstreamError(f"tensor {name!r}: histogram counts do not sum to {elements}")
    return SymbolModel(HISTOGRAM, lo, hi, counts=counts)


def _total_bits(model: SymbolModel, counts: np.ndarray) -> float:
    return ideal_bits(model, counts) + 8 * len(pack_model(model))


def _fit_laplace(lo: int, hi: int, counts: np.ndarray) -> SymbolModel:
    centre = lo + int(np.argmax(counts))
    offsets = np.abs(np.arange(lo, hi + 1) - centre)
    spread = float(np.dot(counts, offsets)) / float(counts.sum())
    # Maximum likelihood for an untruncated two-sided geometric law: E|k - centre| = spread.
    ratio = (np.sqrt(1.0 + spread * spread) - 1.0) / spread
    tail = max(1.0, (1.0 - ratio) * 2**DECAY_BITS)

    def candidate(factor: float, around: float) -> SymbolModel:
        decay = 2**DECAY_BITS - int(min(max(round(around * factor), 1), 2**DECAY_BITS))
        return SymbolModel(LAPLACE, lo, hi, centre=centre, decay=decay)

    best = min((candidate(f, tail) for f in _COARSE), key=lambda m: _total_bits(m, counts))
    best_tail = 2**DECAY_BITS - best.decay
    return min((candidate(f, best_tail) for f in _FINE), key=lambda m: _total_bits(m, counts))


def fit_model(symbols: np.ndarray) -> tuple[SymbolModel, np.ndarray]:
    """The cheapest model for these symbols and their histogram counts over [lo, hi]."""
    flat = symbols.ravel()
    if flat.size == 0:
        return SymbolModel(CONSTANT, 0, 0), np.zeros(1, np.int64)
    lo, hi = int(flat.min()), int(flat.max())
    counts = np.bincount(flat - lo, minlength=hi - lo + 1).astype(np.int64)
    if lo == hi:
        return SymbolModel(CONSTANT, lo, lo), counts
    options = [_fit_laplace(lo, hi, counts)]
    # A histogram with more bins than symbols cannot pay for itself.
    if hi - lo + 1 <= flat.size:
        options.append(SymbolModel(HISTOGRAM, lo, hi, counts=counts))
    return min(options, key=lambda m: _total_bits(m, counts)), counts
