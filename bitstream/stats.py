"""Per-tensor coding cost report: coded size against the model's ideal, the empirical
entropy and zstd, for judging the entropy coder."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import zstandard

from .chunk import ZSTD_LEVEL
from .entropy import encode_symbols
from .models import KIND_NAMES, fit_model, ideal_bits, pack_model
from .records import GOPRecord


@dataclass(frozen=True)
class TensorStats:
    name: str
    elements: int
    model: str            # "constant", "laplace" or "histogram"
    coded_bits: int       # range coder output for this tensor alone, whole 32-bit words
    ideal_bits: float     # -sum log2 p of its symbols under the chosen integer model
    side_bits: int        # model parameters as stored in the tensor table (before zstd)
    entropy_bits: float   # N * H of the tensor's own symbol histogram
    zstd_bytes: int       # zstd level 19 of the symbols in the narrowest integer dtype


def _narrowest(symbols: np.ndarray) -> np.ndarray:
    for dtype in (np.int8, np.int16):
        info = np.iinfo(dtype)
        if symbols.size == 0 or (symbols.min() >= info.min and symbols.max() <= info.max):
            return symbols.astype(dtype)
    return symbols.astype(np.int32)


def tensor_stats(name: str, symbols: np.ndarray) -> TensorStats:
    symbols = np.asarray(symbols).astype(np.int32)
    model, counts = fit_model(symbols)
    seen = counts[counts > 0]
    entropy = float(np.dot(seen, np.log2(symbols.size / seen))) if symbols.size else 0.0
    coded = encode_symbols([(symbols, model)])
    narrow = _narrowest(symbols)
    raw = narrow.astype(narrow.dtype.newbyteorder("<")).tobytes()
    return TensorStats(name=name, elements=int(symbols.size), model=KIND_NAMES[model.kind],
                       coded_bits=8 * len(coded), ideal_bits=ideal_bits(model, counts),
                       side_bits=8 * len(pack_model(model)), entropy_bits=entropy,
                       zstd_bytes=len(zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(raw)))


def measure(gop: GOPRecord) -> list[TensorStats]:
    """Coding cost of every tensor of a GOP, each coded on its own.

    In a file the GOP's tensors share one stream, so the flush (about 32-64 bits) is paid
    once instead of per tensor, and the tensor table may be zstd-compressed.
    """
    return [tensor_stats(t.name, t.symbols) for t in gop.tensors]
