"""Coding efficiency against the model's ideal, the empirical entropy and zstd, and the
exactness of the integer model inside constriction."""

from __future__ import annotations

import numpy as np
import pytest
from test_bitstream_support import laplace_symbols

from bitstream import GOPRecord, TensorRecord, measure, tensor_stats
from bitstream.entropy import decode_symbols, encode_symbols
from bitstream.models import HISTOGRAM, LAPLACE, PRECISION, SymbolModel, fit_model, ideal_bits


@pytest.mark.parametrize("scale", [0.3, 1.0, 4.0, 30.0, 300.0])
def test_laplace_symbols_code_near_ideal_and_entropy(scale):
    symbols = laplace_symbols(np.random.default_rng(7), 20000, scale)
    stats = tensor_stats("w", symbols)
    assert stats.coded_bits <= 1.01 * stats.ideal_bits + 64
    assert stats.ideal_bits <= 1.03 * stats.entropy_bits + 64
    assert stats.coded_bits + stats.side_bits < 8 * stats.zstd_bytes


def test_gop_payload_close_to_ideal_and_beats_zstd():
    rng = np.random.default_rng(3)
    shapes = [(64, 3, 24), (64, 24, 24), (64, 24, 24), (64, 24, 3), (64, 24), (64, 3), (96, 32)]
    tensors = [TensorRecord(f"w{i}", s, 1.0, laplace_symbols(rng, s, rng.uniform(0.5, 20)))
               for i, s in enumerate(shapes)]
    stats = measure(GOPRecord(0, 8, tensors))
    items = [(t.symbols, fit_model(t.symbols)[0]) for t in tensors]
    payload_bits = 8 * len(encode_symbols(items))
    ideal = sum(s.ideal_bits for s in stats)
    entropy = sum(s.entropy_bits for s in stats)
    zstd_bits = 8 * sum(s.zstd_bytes for s in stats)
    assert payload_bits <= 1.001 * ideal + 64
    assert payload_bits <= 1.01 * entropy + 64
    assert payload_bits < 0.97 * zstd_bits


def test_histogram_model_wins_on_multimodal_symbols():
    symbols = np.random.default_rng(1).choice([-9, -8, 0, 8, 9], 5000, p=[.3, .1, .2, .1, .3])
    model, counts = fit_model(symbols.astype(np.int32))
    assert model.kind == HISTOGRAM
    stats = tensor_stats("m", symbols)
    assert stats.coded_bits <= 1.01 * stats.entropy_bits + stats.side_bits + 64


def test_constriction_uses_exactly_the_integer_frequencies():
    # f = w + 1: symbol 0 gets frequency 1 and symbol 1 frequency 3, so 1000 copies of
    # them cost exactly 24000 and 1000 * log2(2**24 / 3) bits; any other quantisation
    # would miss by hundreds of bits.
    counts = np.array([0, 2, 2**24 - 7, 0, 0], np.int64)
    model = SymbolModel(HISTOGRAM, 0, 4, counts=counts)
    for symbol, freq in [(0, 1), (1, 3)]:
        symbols = np.full(1000, symbol, np.int32)
        want = 1000 * (PRECISION - np.log2(freq))
        coded = 8 * len(encode_symbols([(symbols, model)]))
        assert want <= coded <= want + 64


def test_large_gop_round_trips_through_one_stream():
    rng = np.random.default_rng(0)
    shapes = [(64, 24, 24)] * 2 + [(64, 24)] * 10 + [(64, 3, 24)] * 3
    symbols = [laplace_symbols(rng, shape, 5) for shape in shapes]
    tensors = [(s, fit_model(s)[0]) for s in symbols]
    assert 60000 <= sum(s.size for s, _ in tensors) <= 120000
    payload = encode_symbols(tensors)
    decoded = decode_symbols(payload, [(m, s.size) for s, m in tensors])
    for (s, _), d in zip(tensors, decoded):
        np.testing.assert_array_equal(s.ravel(), d)


def test_laplace_ideal_matches_model_shape():
    model = SymbolModel(LAPLACE, -4, 4, centre=0, decay=32768)
    counts = np.array([0, 0, 0, 0, 1, 0, 0, 0, 0])
    # Half-decay table: f(0) = (2**24 - 9) * 2**30 / (2**30 * (1 + 2 * (1 - 2**-4))) + 1.
    assert abs(ideal_bits(model, counts) - np.log2(1 + 2 * 0.9375)) < 1e-4
