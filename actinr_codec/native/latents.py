"""Decoding latent grids in C (latents.c): the same grids or the same refusal as
bitstream.latents.decode_grids, the format's reference, which is used where no C compiler is.

The reference decodes a wave of latents per numpy call, about 4 s for a 640x360 frame's
pyramid; the C decoder takes one symbol at a time with no Python in the loop.
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path

import numpy as np

from bitstream import BitstreamError
from bitstream import latents as reference_decoder
from bitstream.latents import ContextModel, check_grid

from . import build

SOURCE = Path(__file__).with_name("latents.c")
# -O3 vectorises the context network over a wave's latents (at -O2 the batched loops ran
# slower than one latent at a time: 87 against 73 ms for a synthetic 640x360 frame).
FLAGS = ["-O3", "-march=native", "-shared", "-fPIC"]
# latent_decode's return codes, and what each means to a reader.
FAILURES = {1: "latent decoding failed (invalid data)",
            2: "latent payload has data left after the last symbol",
            3: "latent decoding failed (out of memory)"}


@functools.cache
def library() -> ctypes.CDLL | None:
    """The C decoder, or None (with a warning) where it cannot be built."""
    lib = build.optional("latents", [SOURCE], [], FLAGS, "native latent decoder",
                         "decoding latents with numpy")
    if lib is None:
        return None
    lib.latent_decode.restype = ctypes.c_int64
    lib.latent_decode.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                                  ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                  ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                  ctypes.c_void_p]
    return lib


def decode_grids(payload: bytes, grids: list[tuple[tuple[int, int], int, int]],
                 model: ContextModel, references: list[np.ndarray | None] | None = None
                 ) -> list[np.ndarray]:
    """bitstream.latents.decode_grids, run in C where it can be built."""
    lib = library()
    if lib is None:
        return reference_decoder.decode_grids(payload, grids, model, references)
    if len(payload) % 4:
        raise BitstreamError(f"latent payload length {len(payload)} is not a multiple of 4")
    references = references or [None] * len(grids)
    if len(references) != len(grids):
        raise ValueError("one reference (or None) per grid")
    table = np.zeros((len(grids), 4), np.int64)
    kept = []  # the reference arrays, alive until the call returns
    pointers = (ctypes.c_void_p * max(1, len(grids)))()
    for k, ((shape, lo, hi), ref) in enumerate(zip(grids, references)):
        check_grid(tuple(shape), lo, hi)
        table[k] = (*shape, lo, hi)
        if ref is not None:
            if ref.shape != tuple(shape):
                raise BitstreamError(f"reference grid of shape {ref.shape} for a grid of "
                                     f"shape {tuple(shape)}")
            kept.append(np.ascontiguousarray(ref, np.int32))
            pointers[k] = kept[-1].ctypes.data
    sizes = np.array([model.layers[0][0].shape[1], *(w.shape[0] for w, _ in model.layers)],
                     np.int64)
    params = np.concatenate([np.concatenate([w.ravel(), b.ravel()]) for w, b in model.layers]
                            ).astype(np.int64)
    words = np.frombuffer(payload, "<u4").astype(np.uint32)
    out = np.empty(int(sum(h * w for (h, w), _, _ in grids)), np.int32)
    status = lib.latent_decode(words.ctypes.data, len(words), len(grids), table.ctypes.data,
                               pointers, len(model.layers), sizes.ctypes.data,
                               params.ctypes.data, model.shift, out.ctypes.data)
    if status:
        raise BitstreamError(FAILURES[status])
    decoded, start = [], 0
    for (h, w), _, _ in grids:
        decoded.append(out[start:start + h * w].reshape(h, w))
        start += h * w
    return decoded
