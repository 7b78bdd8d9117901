"""Range coding of symbol arrays with constriction under the integer models of models.py.

The coder's arithmetic (constriction 0.5's queue range coder, 32-bit words, 64-bit state,
24-bit probabilities) is defined in docs/bitstream.md, section "Range coder".

constriction's Categorical(perfect=False) quantises float probabilities p_i to 24-bit
frequencies as floor(P_i * (2**24 - n) / sum(p)) + i on the running sums P_i. We hand it
the integer weights w = f - 1, which already sum to 2**24 - n: every value and partial sum
is an integer below 2**53 and the scale is exactly 1.0, so each floating-point operation
is exact and the coder's table is exactly f, on any machine. A test pins this.

All coded tensors of a GOP share one RangeEncoder stream (32-bit words, little-endian in
the file), so the flush overhead (about 32-64 bits) is paid once per GOP. Measured on
Laplace-like symbols (tests/test_bitstream_efficiency.py), the stream is within 0.1 % of
the models' ideal code length plus that flush.
"""

from __future__ import annotations

from collections.abc import Sequence

import constriction
import numpy as np

from .errors import BitstreamError
from .models import CONSTANT, SymbolModel, model_weights


def categorical(model: SymbolModel) -> constriction.stream.model.Categorical:
    return constriction.stream.model.Categorical(model_weights(model).astype(np.float64),
                                                 perfect=False)


def encode_symbols(items: Sequence[tuple[np.ndarray, SymbolModel]]) -> bytes:
    """One stream holding each (symbols, model) pair in turn; constant tensors add nothing."""
    encoder = constriction.stream.queue.RangeEncoder()
    for symbols, model in items:
        if model.kind != CONSTANT:
            indices = (symbols.ravel().astype(np.int64) - model.lo).astype(np.int32)
            encoder.encode(indices, categorical(model))
    return encoder.get_compressed().astype("<u4").tobytes()


def decode_symbols(payload: bytes, items: Sequence[tuple[SymbolModel, int]]) -> list[np.ndarray]:
    """Flat int32 arrays for each (model, element count) pair, read from one stream."""
    if len(payload) % 4:
        raise BitstreamError(f"payload length {len(payload)} is not a multiple of 4")
    words = np.frombuffer(payload, "<u4").astype(np.uint32)
    out = []
    try:
        decoder = constriction.stream.queue.RangeDecoder(words)
        for model, count in items:
            if model.kind == CONSTANT:
                out.append(np.full(count, model.lo, np.int32))
            else:
                out.append(decoder.decode(categorical(model), count).astype(np.int32)
                           + np.int32(model.lo))
        exhausted = decoder.maybe_exhausted()
    except Exception as exc:  # constriction reports bad data with its own exception types
        raise BitstreamError(f"entropy decoding failed ({exc})") from None
    if not exhausted:
        raise BitstreamError("payload has data left after the last symbol")
    return out
