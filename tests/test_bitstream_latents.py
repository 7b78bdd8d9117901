"""Latent grids under the fixed-point context model: round trips, exactness, hostile input."""

import hashlib

import numpy as np
import pytest

from bitstream import BitstreamError
from bitstream.latents import (
    CONTEXT,
    REFERENCE,
    ContextModel,
    decode_grids,
    encode_grids,
    ideal_bits,
    pack_ranges,
    table_weights,
    unpack_ranges,
)
from bitstream.models import TOTAL


def random_model(seed: int, hidden: int = 8, shift: int = 8, inputs: int = CONTEXT
                 ) -> ContextModel:
    rng = np.random.default_rng(seed)
    sizes = [inputs, hidden, hidden, 2]
    layers = tuple((rng.integers(-40, 41, (o, i)), rng.integers(-40, 41, o))
                   for i, o in zip(sizes, sizes[1:]))
    return ContextModel(layers, shift)


def left_neighbour_model(log2_scale: int) -> ContextModel:
    """One layer: the mean is the latent to the left, the scale 2**log2_scale."""
    shift = 4
    w = np.zeros((2, CONTEXT), np.int64)
    w[0, CONTEXT - 1] = 1 << shift
    return ContextModel(((w, np.array([0, log2_scale << shift])),), shift)


def ramp_grid(rng, h: int, w: int) -> np.ndarray:
    return np.cumsum(rng.integers(-1, 2, (h, w)), axis=1).astype(np.int32)


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (7, 1), (2, 2), (5, 3), (13, 17)])
def test_grids_round_trip(shape):
    rng = np.random.default_rng(sum(shape))
    grids = [rng.laplace(0, 2, shape).round().astype(np.int32),
             np.full(shape, 3, np.int32), ramp_grid(rng, *shape)]
    model = random_model(1)
    payload = encode_grids(grids, model)
    ranges = [(g.shape, int(g.min()), int(g.max())) for g in grids]
    decoded = decode_grids(payload, ranges, model)
    for got, want in zip(decoded, grids):
        np.testing.assert_array_equal(got, want)


def test_stream_is_close_to_the_ideal_code_length():
    rng = np.random.default_rng(3)
    grid = ramp_grid(rng, 40, 60)
    model = left_neighbour_model(0)
    bits = 8 * len(encode_grids([grid], model))
    ideal = ideal_bits(grid, model)
    assert ideal < bits < ideal * 1.01 + 64


def test_context_model_predicts():
    """A model that reads the left neighbour codes a random walk along rows far below what
    a wide, context-blind law does."""
    rng = np.random.default_rng(4)
    grid = ramp_grid(rng, 30, 40)
    blind = ContextModel(((np.zeros((2, CONTEXT), np.int64), np.array([0, 5 << 4])),), 4)
    assert ideal_bits(grid, left_neighbour_model(0)) < 0.5 * ideal_bits(grid, blind)


def test_tables_are_normalised_and_peak_at_the_mean():
    means = np.array([-17, 0, 3, 8, 100])  # eighths; 100 lies beyond the range: clamped
    scales = np.array([-28, 0, 4, -8, 28])
    weights = table_weights(means, scales, -3, 5)
    assert weights.dtype == np.int64 and (weights >= 0).all()
    np.testing.assert_array_equal(weights.sum(axis=1), TOTAL - 9)
    assert list(np.argmax(weights, axis=1)) == [1, 3, 3, 4, 8]


def test_coded_bytes_are_pinned():
    """The format's bytes for fixed input: any change to the model layer, the tables or
    the coding order changes them, and needs a format decision."""
    rng = np.random.default_rng(5)
    grids = [rng.laplace(0, 3, (9, 11)).round().astype(np.int32), ramp_grid(rng, 4, 20)]
    payload = encode_grids(grids, random_model(6))
    assert hashlib.sha256(payload).hexdigest()[:16] == "a56aa92df7a339e4"


@pytest.mark.parametrize("layers,shift,message", [
    (((np.zeros((2, CONTEXT), np.int64), np.zeros(2, np.int64)),), 25, "shift"),
    (((np.zeros((2, 5), np.int64), np.zeros(2, np.int64)),), 4, "shapes"),
    (((np.full((2, CONTEXT), 2**15), np.zeros(2, np.int64)),), 4, "parameter"),
    ((), 4, "layers"),
])
def test_bad_context_models_are_refused(layers, shift, message):
    with pytest.raises(BitstreamError, match=message):
        ContextModel(layers, shift)


def test_hostile_payloads_are_refused():
    rng = np.random.default_rng(7)
    grid = rng.laplace(0, 4, (16, 16)).round().astype(np.int32)
    model = random_model(8)
    payload = encode_grids([grid], model)
    ranges = [(grid.shape, int(grid.min()), int(grid.max()))]
    with pytest.raises(BitstreamError):
        decode_grids(payload[:-4] + b"\xff\xff\xff\xff" * 3, ranges, model)
    with pytest.raises(BitstreamError, match="multiple of 4"):
        decode_grids(payload[:-1], ranges, model)
    with pytest.raises(BitstreamError, match="wider"):
        decode_grids(payload, [((4, 4), -5000, 5000)], model)


def reference_model(log2_scale: int) -> ContextModel:
    """One layer reading a reference grid: the mean is the reference's co-located latent."""
    shift = 4
    w = np.zeros((2, CONTEXT + REFERENCE), np.int64)
    w[0, CONTEXT + 4] = 1 << shift  # the centre of the 3x3 window
    return ContextModel(((w, np.array([0, log2_scale << shift])),), shift)


def test_grids_with_references_round_trip():
    rng = np.random.default_rng(10)
    model = random_model(11, inputs=CONTEXT + REFERENCE)
    grids = [rng.laplace(0, 2, (9, 8)).round().astype(np.int32) for _ in range(3)]
    references = [None, grids[0] + rng.integers(-1, 2, (9, 8)), grids[1][::-1].copy()]
    payload = encode_grids(grids, model, references)
    ranges = [(g.shape, int(g.min()), int(g.max())) for g in grids]
    for got, want in zip(decode_grids(payload, ranges, model, references), grids):
        np.testing.assert_array_equal(got, want)
    # Another reference gives other tables: the stream does not decode to the same grids.
    wrong = [None, references[2], references[1]]
    try:
        decoded = decode_grids(payload, ranges, model, wrong)
    except BitstreamError:
        return
    assert not all(np.array_equal(a, b) for a, b in zip(decoded, grids))


def test_reference_makes_a_repeated_grid_cheap():
    rng = np.random.default_rng(12)
    grid = rng.laplace(0, 4, (20, 24)).round().astype(np.int32)
    model = reference_model(-6)
    assert ideal_bits(grid, model, grid) < 0.05 * ideal_bits(grid, model, None)
    with pytest.raises(BitstreamError, match="reference grid of shape"):
        encode_grids([grid], model, [grid[1:]])


def test_ranges_round_trip_in_few_bits():
    rng = np.random.default_rng(13)
    ranges = [(0, 0), (-1, 1), (-2**15, -2**15 + 4095), (2**15, 2**15), (0, 4095)]
    ranges += [(lo, lo + int(rng.integers(0, 9))) for lo in rng.integers(-40, 41, 50)]
    assert unpack_ranges(pack_ranges(ranges), len(ranges)) == ranges
    assert unpack_ranges(pack_ranges([]), 0) == []
    # [0, 0] is two bits, [-1, 1] six: 105 such grids in 27 bytes, not 420.
    assert len(pack_ranges([(0, 0)] * 4)) == 1
    assert len(pack_ranges([(-1, 1)] * 4)) == 3


@pytest.mark.parametrize("data,count,message", [
    (bytes([0b11000000]), 2, "truncated"),            # one range's bits, two asked for
    (bytes([0b11000000, 0]), 1, "followed"),          # a whole byte after the codes
    (bytes([0b11000100]), 1, "followed"),             # a set bit in the padding
    (bytes(3) + b"\xff", 1, "too long"),              # 24 leading zeros
    (pack_ranges([(0, 4095)])[:-1] + b"\xff", 1, "wider|followed"),
])
def test_hostile_ranges_are_refused(data, count, message):
    with pytest.raises(BitstreamError, match=message):
        unpack_ranges(data, count)


def test_ranges_beyond_the_limits_are_refused():
    # se(-2**15 - 1), then ue(0): a legal code, a value beyond the limit.
    code = format(2 * (2**15 + 1) + 1, "b")
    bits = "0" * (len(code) - 1) + code + "1"
    data = int(bits + "0" * (-len(bits) % 8), 2).to_bytes(-(-len(bits) // 8), "big")
    with pytest.raises(BitstreamError, match="beyond"):
        unpack_ranges(data, 1)
    # ue(4096) as a span: a legal code, an alphabet too wide.
    code = format(4097, "b")
    bits = "1" + "0" * (len(code) - 1) + code
    data = int(bits + "0" * (-len(bits) % 8), 2).to_bytes(-(-len(bits) // 8), "big")
    with pytest.raises(BitstreamError, match="wider"):
        unpack_ranges(data, 1)
    with pytest.raises(BitstreamError, match="wider"):
        pack_ranges([(0, 4096)])
