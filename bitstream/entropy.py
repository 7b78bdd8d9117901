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

The decoder reads zeros past the end of the payload, so it would take a few bytes for
millions of symbols. A symbol costs at least -log2 of its model's largest probability and
the encoder's 64-bit state holds at most 64 bits not yet written, so a payload shorter
than that many bits less 64 cannot have been written for these models: it is refused
before decoding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import constriction
import numpy as np

from .errors import BitstreamError
from .models import CONSTANT, PRECISION, SymbolModel, model_weights

# Bits of coder state an encoder may leave unwritten (see above), plus a margin for the
# floating-point sum of the lower bound.
SLACK_BITS = 96


def categorical(model: SymbolModel) -> constriction.stream.model.Categorical:
    return _categorical(model_weights(model))


def _categorical(weights: np.ndarray) -> constriction.stream.model.Categorical:
    return constriction.stream.model.Categorical(weights.astype(np.float64), perfect=False)


def encode_symbols(items: Sequence[tuple[np.ndarray, SymbolModel]]) -> bytes:
    """One stream holding each (symbols, model) pair in turn; constant tensors add nothing."""
    encoder = constriction.stream.queue.RangeEncoder()
    for symbols, model in items:
        if model.kind != CONSTANT:
            indices = (symbols.ravel().astype(np.int64) - model.lo).astype(np.int32)
            encoder.encode(indices, categorical(model))
    return encoder.get_compressed().astype("<u4").tobytes()


def decode_symbols(payload: bytes, items: Sequence[tuple[SymbolModel, int]]) -> list[np.ndarray]:
    """Flat int32 arrays for each (model, element count) pair, read from one stream
    (a constant model's as a read-only view)."""
    if len(payload) % 4:
        raise BitstreamError(f"payload length {len(payload)} is not a multiple of 4")
    words = np.frombuffer(payload, "<u4").astype(np.uint32)
    weights = [None if model.kind == CONSTANT else model_weights(model) for model, _ in items]
    least_bits = sum(count * (PRECISION - math.log2(int(w.max()) + 1))
                     for (_, count), w in zip(items, weights) if w is not None)
    if least_bits > 32 * len(words) + SLACK_BITS:
        raise BitstreamError(f"payload of {len(payload)} bytes is too short for its symbols "
                             f"(at least {math.ceil(least_bits / 8)} bytes)")
    decoder = constriction.stream.queue.RangeDecoder(words)

    def read() -> list[np.ndarray]:
        out = []
        for (model, count), w in zip(items, weights):
            if w is None:
                # A read-only view of the one value: a constant tensor costs no memory,
                # however large a damaged file says it is (filling one of 49 million
                # elements took 1.4 s where a machine's fresh pages were slow).
                out.append(np.broadcast_to(np.int32(model.lo), (count,)))
            else:
                # In place: a GOP's symbols can take hundreds of megabytes.
                symbols = decoder.decode(_categorical(w), count).astype(np.int32, copy=False)
                symbols += np.int32(model.lo)
                out.append(symbols)
        return out

    return checked(decoder, read, "entropy")


def checked(decoder: constriction.stream.queue.RangeDecoder, read, what: str):
    """read()'s result, where read decodes from decoder: constriction's own errors on bad
    data, and data left after the last symbol, become BitstreamErrors naming what was
    read ("<what> decoding failed", "<what> payload has data left ...")."""
    try:
        out = read()
        exhausted = decoder.maybe_exhausted()
    except BitstreamError:
        raise
    except Exception as exc:  # constriction reports bad data with its own exception types
        raise BitstreamError(f"{what} decoding failed ({exc})") from None
    if not exhausted:
        raise BitstreamError(f"{what} payload has data left after the last symbol")
    return out
