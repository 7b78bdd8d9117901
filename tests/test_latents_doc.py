"""Conformance test: latent grids under the context model, decoded from docs/bitstream.md
alone (section "Latent grids under a context model").

The context, the fixed-point network, the tables and the wave order below are written in
plain Python integers from that section, with the document's range decoder of
tests/test_range_coder_doc.py; they must read bitstream.latents' streams to the grids it
coded, and build the same tables.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_range_coder_doc import DocRangeDecoder, cumulative, decay_powers

from bitstream.latents import ContextModel, encode_grids, pack_ranges, table_weights

D = [0, 0, 1, 5, 22, 79, 229, 563, 1200, 2268, 3874, 6075, 8869, 12192, 15933, 19953, 24109,
     28267, 32314, 36162, 39750, 43041, 46019, 48681, 51039, 53111, 54917, 56484, 57835,
     58997, 59992, 60842, 61565, 62181, 62703, 63145, 63520, 63836, 64104, 64329, 64520,
     64681, 64816, 64930, 65026, 65107, 65175, 65232, 65280, 65321, 65355, 65384, 65408,
     65428, 65446, 65460, 65472]


def R(x: int, s: int) -> int:
    return (x + (1 << (s - 1))) >> s if s > 0 else x << -s


def context(y: dict, r: int, c: int, inputs: int, ref) -> list[int]:
    cells = ([(r - 2, c + j) for j in range(-2, 3)] + [(r - 1, c + j) for j in range(-2, 3)]
             + [(r, c - 2), (r, c - 1)])
    out = [y.get(cell, 0) for cell in cells]
    if inputs == 22:
        if ref is None:
            return out + [0] * 10
        h, w = ref.shape
        for i in range(r - 1, r + 2):
            for j in range(c - 1, c + 2):
                out.append(int(ref[min(max(i, 0), h - 1), min(max(j, 0), w - 1)]))
        out.append(1)
    return out


def network(layers, shift: int, a: list[int], lo: int, hi: int) -> tuple[int, int]:
    frac = 0
    for k, (w, b) in enumerate(layers):
        acc = [sum(int(wij) * aj for wij, aj in zip(row, a)) + int(bi) * 2**frac
               for row, bi in zip(w, b)]
        a = [R(x, shift + frac - 8) for x in acc]
        if k < len(layers) - 1:
            a = [max(x, 0) for x in a]
        a = [min(max(x, -2**24), 2**24) for x in a]
        frac = 8
    m = min(max(R(a[0], 5), 8 * lo), 8 * hi)
    return m, min(max(R(a[1], 6), -28), 28)


def table(m: int, k: int, lo: int, hi: int) -> list[int]:
    p = decay_powers(D[k + 28], 8 * (hi - lo) + 2 * abs(m) + 16)

    def below(e):
        return p[-e] >> 1 if e < 0 else 2**30 - (p[e] >> 1)

    v = [below(8 * s + 4 - m) - below(8 * s - 4 - m) for s in range(lo, hi + 1)]
    n = hi - lo + 1
    free = 2**24 - n
    w = [x * free // sum(v) for x in v]
    w[v.index(max(v))] += free - sum(w)
    return [x + 1 for x in w]


def doc_decode(payload: bytes, grids, layers, shift, references) -> list[np.ndarray]:
    decoder = DocRangeDecoder(payload)
    inputs = len(layers[0][0][0])
    out = []
    for ((h, w), lo, hi), ref in zip(grids, references):
        y = {}
        for t in range(w + 3 * (h - 1)):
            for r in range(h):
                c = t - 3 * r
                if 0 <= c < w:
                    if lo == hi:
                        y[r, c] = lo
                        continue
                    m, k = network(layers, shift, context(y, r, c, inputs, ref), lo, hi)
                    y[r, c] = decoder.decode(cumulative(table(m, k, lo, hi))) + lo
        out.append(np.array([[y[r, c] for c in range(w)] for r in range(h)]))
    assert decoder.end_check()
    return out


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_doc_reader_decodes_the_coders_streams(seed):
    """Seeds 0-2 read the grid's own neighbours; seed 3 a reference grid too."""
    rng = np.random.default_rng(seed)
    sizes = {0: [12, 2], 3: [22, 5, 2]}.get(seed, [12, 6, 2])
    layers = tuple((rng.integers(-300, 301, (o, i)), rng.integers(-300, 301, o))
                   for i, o in zip(sizes, sizes[1:]))
    shift = int(rng.integers(4, 12))
    grids = [rng.laplace(0, 3, (6, 7)).round().astype(np.int32),
             np.cumsum(rng.integers(-2, 3, (3, 10)), axis=1).astype(np.int32),
             np.full((2, 2), -4, np.int32), rng.integers(-1, 2, (5, 1)).astype(np.int32)]
    references = [None] * len(grids)
    if seed == 3:
        references = [grids[0][:, ::-1].copy(), None, rng.integers(-3, 4, (2, 2)),
                      grids[3] + 1]
    model = ContextModel(layers, shift)
    payload = encode_grids(grids, model, references)
    ranges = [(g.shape, int(g.min()), int(g.max())) for g in grids]
    for got, want in zip(doc_decode(payload, ranges, layers, shift, references), grids):
        np.testing.assert_array_equal(got, want)


def test_doc_tables_match():
    rng = np.random.default_rng(9)
    lo, hi = -6, 9
    means = rng.integers(8 * lo - 20, 8 * hi + 20, 40)
    scales = rng.integers(-28, 29, 40)
    got = table_weights(np.clip(means, 8 * lo, 8 * hi), scales, lo, hi) + 1
    for row, m, k in zip(got, means, scales):
        assert list(row) == table(min(max(int(m), 8 * lo), 8 * hi), int(k), lo, hi)


def doc_ranges(data: bytes, n: int) -> list[tuple[int, int]]:
    """The section's "Ranges": se(lo), ue(hi - lo) per grid, MSB first."""
    bits = [(byte >> (7 - i)) & 1 for byte in data for i in range(8)]
    at = 0

    def ue() -> int:
        nonlocal at
        z = 0
        while bits[at + z] == 0:
            z += 1
        value = 0
        for bit in bits[at + z:at + 2 * z + 1]:
            value = 2 * value + bit
        at += 2 * z + 1
        return value - 1

    out = []
    for _ in range(n):
        code = ue()
        lo = (code + 1) // 2 if code % 2 else -(code // 2)
        out.append((lo, lo + ue()))
    assert not any(bits[at:]) and len(bits) - at < 8
    return out


def test_doc_reader_reads_the_ranges():
    rng = np.random.default_rng(4)
    ranges = [(0, 0), (-1, 1), (-2**15, -2**15 + 4095), (2**15, 2**15)]
    ranges += [(int(lo), int(lo) + int(rng.integers(0, 20))) for lo in rng.integers(-99, 99, 30)]
    assert doc_ranges(pack_ranges(ranges), len(ranges)) == ranges
