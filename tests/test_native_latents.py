"""The C latent decoder against the format's reference decoder: same grids, same refusals."""

import numpy as np
import pytest
from test_bitstream_latents import ramp_grid, random_model

from actinr_codec.native import latents as native
from bitstream import BitstreamError
from bitstream.latents import CONTEXT, REFERENCE, decode_grids, encode_grids


def ranges(grids):
    return [(g.shape, int(g.min()), int(g.max())) for g in grids]


def outcome(decoder, payload, grid_ranges, model, references=None):
    """The decoded grids, or the error message a reader gets."""
    try:
        return decoder(payload, grid_ranges, model, references)
    except BitstreamError as exc:
        return str(exc)


@pytest.mark.parametrize("seed", range(6))
def test_native_decoder_matches_the_reference(seed):
    rng = np.random.default_rng(seed)
    inputs = CONTEXT + REFERENCE if seed % 2 else CONTEXT
    model = random_model(seed, hidden=int(rng.integers(1, 17)), shift=int(rng.integers(0, 25)),
                         inputs=inputs)
    shapes = [tuple(int(v) for v in rng.integers(1, 30, 2)) for _ in range(4)]
    grids = [rng.laplace(0, rng.uniform(0.3, 20), s).round().astype(np.int32) for s in shapes]
    grids.append(np.full((3, 5), -2, np.int32))
    grids.append(ramp_grid(rng, 6, 40))
    # A range past 32 symbols, whose tables the C decoder builds for each latent anew.
    grids.append(np.concatenate([[-30, 30], rng.integers(-30, 31, 97)]).reshape(9, 11)
                 .astype(np.int32))
    # Mostly zeros, as a low rate's grids are: the C decoder gives a context of zeros the
    # grid's law of zeros without running the network.
    grids.append((rng.laplace(0, 2, (24, 28)) * (rng.random((24, 28)) < 0.1)).round()
                 .astype(np.int32))
    references = None
    if inputs > CONTEXT:
        references = [None if k % 3 == 0 else g + rng.integers(-2, 3, g.shape)
                      for k, g in enumerate(grids)]
    payload = encode_grids(grids, model, references)
    got = native.decode_grids(payload, ranges(grids), model, references)
    for a, b in zip(got, grids, strict=True):
        np.testing.assert_array_equal(a, b)


def test_native_decoder_refuses_what_the_reference_refuses():
    """Damaged payloads (bytes changed, cut, extended) give the reference decoder's grids
    or its refusal, whichever it gives: the end check and invalid data included."""
    rng = np.random.default_rng(20)
    grids = [rng.laplace(0, 4, (16, 16)).round().astype(np.int32), ramp_grid(rng, 5, 9)]
    model = random_model(21)
    payload = encode_grids(grids, model)
    damaged = [payload[:-4], payload[:-8], payload + b"\0" * 4, payload + b"\1\0\0\0",
               payload[:-4] + b"\xff" * 12, b"", b"\xff" * 8]
    for _ in range(40):
        b = bytearray(payload)
        b[int(rng.integers(len(b)))] ^= 1 << int(rng.integers(8))
        damaged.append(bytes(b))
    refused = 0
    for data in damaged:
        want = outcome(decode_grids, data, ranges(grids), model)
        got = outcome(native.decode_grids, data, ranges(grids), model)
        if isinstance(want, str):
            refused += 1
            assert isinstance(got, str), data.hex()
            assert ("left after" in want) == ("left after" in got)
        else:
            assert not isinstance(got, str), got
            for a, b in zip(got, want, strict=True):
                np.testing.assert_array_equal(a, b)
    assert refused >= 3
    with pytest.raises(BitstreamError, match="multiple of 4"):
        native.decode_grids(payload[:-1], ranges(grids), model)
    with pytest.raises(BitstreamError, match="wider"):
        native.decode_grids(payload, [((4, 4), -5000, 5000)], model)
    with pytest.raises(BitstreamError, match="reference grid of shape"):
        native.decode_grids(payload, ranges(grids), random_model(1, inputs=CONTEXT + REFERENCE),
                            [grids[0][1:], None])


def test_without_a_compiler_latents_decode_with_numpy(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTINR_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    native.library.cache_clear()
    try:
        grids = [ramp_grid(np.random.default_rng(3), 7, 9)]
        model = random_model(4)
        with pytest.warns(UserWarning, match="native latent decoder unavailable"):
            got = native.decode_grids(encode_grids(grids, model), ranges(grids), model)
        np.testing.assert_array_equal(got[0], grids[0])
        assert list(tmp_path.iterdir()) == []
    finally:
        native.library.cache_clear()
