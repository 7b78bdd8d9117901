"""Motion fields under adaptive binary models: round trips, cost, exactness, hostile input."""

import hashlib

import constriction
import numpy as np
import pytest

from bitstream import BitstreamError
from bitstream.fields import (
    EVEN,
    MAX_MAGNITUDE,
    UNARY,
    _Bins,
    decode_fields,
    encode_fields,
    field_bits,
)


def sparse_field(rng, shape, scale=3.0, share=0.5) -> np.ndarray:
    """Mostly zeros and small values, a few large: what a GOP's fields look like."""
    values = rng.laplace(0, scale, shape) * (rng.random(shape) < share)
    return values.round().astype(np.int32)


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (6, 1), (2, 2, 9, 11), (4, 2, 2, 5, 6)])
def test_fields_round_trip(shape):
    rng = np.random.default_rng(len(shape) + sum(shape))
    fields = [sparse_field(rng, shape), np.zeros(shape, np.int32),
              rng.integers(-100, 101, shape).astype(np.int32)]
    payload = encode_fields(fields)
    for got, want in zip(decode_fields(payload, [f.shape for f in fields]), fields):
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, want)


def test_extreme_magnitudes_round_trip():
    field = np.array([[MAX_MAGNITUDE, -MAX_MAGNITUDE, UNARY, UNARY - 1, -UNARY - 1, 0]],
                     np.int32)
    np.testing.assert_array_equal(decode_fields(encode_fields([field]), [field.shape])[0],
                                  field)


def test_stream_is_close_to_the_ideal_code_length():
    field = sparse_field(np.random.default_rng(1), (8, 2, 9, 11))
    bits = 8 * len(encode_fields([field]))
    assert field_bits([field]) <= bits <= field_bits([field]) + 96


def test_learnt_odds_make_repeated_answers_cheap():
    # A field of zeros costs what its first question's odds learn: log2(n + 1) bits for n.
    assert field_bits([np.zeros((1000, 1), np.int32)]) < 11
    # Where the neighbours moved, "above 0" has its own odds: a moving block inside a
    # still field costs less than its values scattered at random.
    block = np.zeros((40, 40), np.int32)
    block[10:20, 10:20] = 3
    scattered = np.random.default_rng(2).permutation(block.ravel()).reshape(block.shape)
    assert field_bits([block]) < 0.8 * field_bits([scattered])


def test_payload_is_pinned():
    """The stream for a fixed field never changes: files decode the same forever."""
    # Integer arithmetic, not a random generator, whose streams may change.
    i = np.arange(180).reshape(3, 2, 5, 6)
    field = np.where(i % 3 == 0, 0, (i * 37) % 45 - 22).astype(np.int32)
    payload = encode_fields([field, field[:1]])
    assert hashlib.sha256(payload).hexdigest()[:16] == "7023e428cf5f1156"


def test_encoder_refuses_what_it_cannot_code():
    with pytest.raises(ValueError, match="within"):
        encode_fields([np.array([[MAX_MAGNITUDE + 1]], np.int64)])
    with pytest.raises(ValueError, match="grids"):
        encode_fields([np.zeros(5, np.int32)])
    with pytest.raises(ValueError, match="grids"):
        encode_fields([np.zeros((3, 0), np.int32)])


def test_reader_refuses_damaged_payloads():
    field = sparse_field(np.random.default_rng(3), (2, 9, 11))
    payload = encode_fields([field])
    with pytest.raises(BitstreamError, match="multiple of 4"):
        decode_fields(payload[:-1], [field.shape])
    with pytest.raises(BitstreamError, match="left after"):
        decode_fields(payload + payload, [field.shape])
    with pytest.raises(BitstreamError):
        decode_fields(payload, [(0, 4)])
    # Refused before anything is allocated for it.
    with pytest.raises(BitstreamError, match="at most"):
        decode_fields(payload, [(2**20, 2**20, 2**20)])
    rng = np.random.default_rng(4)
    for _ in range(20):
        noise = rng.integers(0, 256, len(payload), np.uint8).tobytes()
        try:
            decoded, = decode_fields(noise, [field.shape])
        except BitstreamError:
            continue
        assert decoded.shape == field.shape and np.abs(decoded).max() <= MAX_MAGNITUDE


def test_reader_refuses_an_endless_suffix():
    # Sixteen yeses, then more leading zeros than the suffix may have.
    encoder = constriction.stream.queue.RangeEncoder()
    bins = _Bins()
    for m in range(UNARY):
        context = 0 if m == 0 else 2 + m
        encoder.encode(np.array([1], np.int32),
                       constriction.stream.model.Categorical(bins.table(context), perfect=False))
        bins.update(context, 1)
    for _ in range(40):
        encoder.encode(np.array([0], np.int32),
                       constriction.stream.model.Categorical(EVEN, perfect=False))
    payload = encoder.get_compressed().astype("<u4").tobytes()
    with pytest.raises(BitstreamError, match="out of range"):
        decode_fields(payload, [(1, 1)])
