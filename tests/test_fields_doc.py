"""Conformance test: motion fields decoded from docs/bitstream.md alone (section "Motion
fields under adaptive binary models").

The counts, the questions and their order are written in plain Python integers from that
section, with the document's range decoder of tests/test_range_coder_doc.py; they must
read bitstream.fields' streams to the fields it coded.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_range_coder_doc import DocRangeDecoder, cumulative

from bitstream.fields import encode_fields

HALF = cumulative([2**23, 2**23])


def ask(decoder: DocRangeDecoder, counts: list[list[int]], context: int) -> int:
    """One question under a context's counts, which then learn its answer."""
    n0, n1 = counts[context]
    one = (2**24 - 2) * n1 // (n0 + n1) + 1
    bit = decoder.decode(cumulative([2**24 - one, one]))
    counts[context][bit] += 1
    if sum(counts[context]) > 1024:
        counts[context] = [(n + 1) >> 1 for n in counts[context]]
    return bit


def doc_decode(payload: bytes, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    decoder = DocRangeDecoder(payload)
    out = []
    for shape in shapes:
        counts = [[1, 1] for _ in range(18)]
        h, w = shape[-2:]
        grids = np.zeros((int(np.prod(shape[:-2], dtype=np.int64)), h, w), np.int64)
        for v in grids:
            for r in range(h):
                for c in range(w):
                    s = (abs(v[r, c - 1]) if c else 0) + (abs(v[r - 1, c]) if r else 0)
                    m = 0
                    while m < 16:
                        context = (0 if s == 0 else 1 if s < 4 else 2) if m == 0 else 2 + m
                        if not ask(decoder, counts, context):
                            break
                        m += 1
                    if m == 16:
                        z = 0
                        while decoder.decode(HALF) == 0:
                            z += 1
                            assert z <= 18
                        q = 1
                        for _ in range(z):
                            q = 2 * q + decoder.decode(HALF)
                        low = 2 * decoder.decode(HALF) + decoder.decode(HALF)
                        m += ((q - 1) << 2) + low
                    if m and decoder.decode(HALF):
                        m = -m
                    v[r, c] = m
        out.append(grids.reshape(shape))
    assert decoder.end_check()
    return out


@pytest.mark.parametrize("seed", range(4))
def test_doc_reader_reads_the_fields(seed):
    rng = np.random.default_rng(seed)
    heavy = rng.laplace(0, 3, (3, 2, 5, 6)) * (rng.random((3, 2, 5, 6)) < 0.6)
    fields = [heavy.round().astype(np.int32),
              rng.integers(-40, 41, (2, 4, 3)).astype(np.int32),
              np.zeros((1, 1), np.int32),
              # Enough answers in one context for its counts to be halved.
              (rng.random((40, 40)) < 0.05).astype(np.int32),
              np.array([[2**20, -17, 16, -15, 0, 1 << 19]], np.int32)]
    payload = encode_fields(fields)
    for got, want in zip(doc_decode(payload, [f.shape for f in fields]), fields):
        np.testing.assert_array_equal(got, want)
