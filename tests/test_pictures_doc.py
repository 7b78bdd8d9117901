"""Conformance test: the golden file of pictures (tests/golden/v5/picture.anr) read and
rendered from docs/bitstream.md alone (sections "Header", "GOP chunk", "Model parameters",
"Picture GOPs", "Latent grids under a context model", "Range coder").

Everything below is written from those sections in plain Python and numpy, with the
document's range decoder (tests/test_range_coder_doc.py) and latent reader
(tests/test_latents_doc.py); the frames must match the ones stored beside the file, with
test_golden.py's tolerance.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from test_golden import assert_same_frames
from test_latents_doc import doc_decode as doc_grids
from test_latents_doc import doc_ranges
from test_range_coder_doc import cumulative, doc_decode, frequency_table

GOLDEN = Path(__file__).parent / "golden" / "v5"
DEFAULTS = {"latent_levels": 7, "synthesis_width": 40, "synthesis_layers": 1,
            "refine_layers": 2, "context_width": 8, "context_layers": 2}
f32 = np.float32


class Bytes:
    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def take(self, fmt: str) -> tuple:
        out = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return out

    def raw(self, n: int) -> bytes:
        self.at += n
        return self.data[self.at - n:self.at]


def header(data: bytes) -> tuple[tuple[int, int, int], dict, list[tuple], int]:
    """(width, height, frames), configuration, index entries and the body's end."""
    b = Bytes(data)
    magic, version, length = b.take("<8sII")
    assert magic == b"\x89ANR\r\n\x1a\n" and version == 5
    assert struct.unpack_from("<I", data, 16 + length)[0] == zlib.crc32(data[:16 + length])
    width, height, frames, _, _, _ = b.take("<IIIIIB")
    config = {}
    for _ in range(b.take("<H")[0]):
        key = b.raw(b.take("<B")[0]).decode()
        tag = b.take("<B")[0]
        config[key] = {1: lambda: bool(b.take("<B")[0]), 2: lambda: b.take("<q")[0]}[tag]()
    index = [b.take("<QIIIBI") for _ in range(b.take("<I")[0])]
    (side,) = b.take("<Q")
    return (width, height, frames), config, index, len(data) - side


def model(b: Bytes) -> tuple[list[int] | None, int]:
    """Section "Model parameters": the cumulative table (None for a constant) and lo."""
    kind, lo = b.take("<Bi")
    if kind == 0:
        return None, lo
    if kind == 1:
        return cumulative(frequency_table(1, lo, b.take("<iiH"))), lo
    (hi,) = b.take("<i")
    counts = []
    for _ in range(hi - lo + 1):
        value, shift = 0, 0
        while True:
            (byte,) = b.take("<B")
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        counts.append(value)
    return cumulative(frequency_table(2, lo, (hi, counts))), lo


def linear_shapes(widths: list[int]) -> list[tuple[int, ...]]:
    return [shape for i, o in zip(widths, widths[1:]) for shape in ((o, i), (o,))]


def read_picture(chunk: bytes, cfg: dict, size: tuple[int, int, int]):
    """(synthesis layers, refinement layers, grids) of one picture chunk, in float32."""
    width, height, _ = size
    b = Bytes(chunk)
    tag, length = b.take("<4sI")
    assert tag == b"ANRG" and len(chunk) == length + 12
    assert struct.unpack_from("<I", chunk, 8 + length)[0] == zlib.crc32(chunk[:8 + length])
    _, start, stop, kind, reference = b.take("<IIIBI")
    assert (kind, reference, stop - start) == (2, 0xFFFFFFFF, 1)
    levels, depth, refine = cfg["latent_levels"], cfg["synthesis_layers"], cfg["refine_layers"]
    networks = [
        linear_shapes([levels] + [cfg["synthesis_width"]] * depth + [3]),
        [(3, 3, 3, 3), (3,)] * refine,
        linear_shapes([12] + [cfg["context_width"]] * cfg["context_layers"] + [2]),
    ]
    shifts = list(b.take(f"<{len(networks[0]) + len(networks[1])}B"))
    (context_shift,) = b.take("<B")
    models = [model(b) for net in networks if net]
    ranges = doc_ranges(b.raw(b.take("<H")[0]), levels)
    payload = b.raw(b.take("<I")[0])
    counts = [sum(math.prod(s) for s in net) for net in networks if net]
    flat, ok = doc_decode(payload, [(c, lo, n) for (c, lo), n in zip(models, counts)])
    assert ok
    symbols = iter(flat)
    tensors = []
    for net in networks:
        values, at = next(symbols) if net else [], 0
        for shape in net:
            tensors.append(np.array(values[at:at + math.prod(shape)]).reshape(shape))
            at += math.prod(shape)
    synthesis = tensors[:len(networks[0])]
    refinement = tensors[len(networks[0]):len(networks[0]) + len(networks[1])]
    context = tensors[len(networks[0]) + len(networks[1]):]
    scaled = [(t * 2.0 ** -s).astype(f32) for t, s in zip(synthesis + refinement, shifts)]
    shapes = [(math.ceil(height / 2**k), math.ceil(width / 2**k)) for k in range(levels)]
    grids = doc_grids(b.raw(length + 8 - b.at), [(s, lo, hi) for s, (lo, hi) in zip(shapes, ranges)],
                      list(zip(context[::2], context[1::2])), context_shift, [None] * levels)
    return scaled[:len(synthesis)], scaled[len(synthesis):], grids


def cubic(d: np.ndarray) -> np.ndarray:
    a, d = -0.75, np.abs(d)
    return np.where(d <= 1, (a + 2) * d**3 - (a + 3) * d**2 + 1,
                    np.where(d < 2, a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a, 0.0))


def upsample_matrix(n: int, size: int) -> np.ndarray:
    """(size, n): output i reads (i + 1/2) n / size - 1/2 from its four nearest taps."""
    out = np.zeros((size, n))
    for i in range(size):
        x = (i + 0.5) * n / size - 0.5
        base = math.floor(x)
        for tap in range(base - 1, base + 3):
            out[i, min(max(tap, 0), n - 1)] += cubic(np.array(x - tap))
    return out.astype(f32)


def render(picture, height: int, width: int) -> np.ndarray:
    """Float RGB (height, width, 3) of a picture, steps 1-3 of "Rendering"."""
    synthesis, refinement, grids = picture
    v = np.stack([g.astype(f32) if g.shape == (height, width) else
                  upsample_matrix(g.shape[0], height) @ g.astype(f32)
                  @ upsample_matrix(g.shape[1], width).T for g in grids], axis=-1)
    layers = list(zip(synthesis[::2], synthesis[1::2]))
    for k, (w, b) in enumerate(layers):
        v = v @ w.T + b
        if k < len(layers) - 1:
            v = np.maximum(v, 0)
    convs = list(zip(refinement[::2], refinement[1::2]))
    for k, (w, b) in enumerate(convs):
        padded = np.pad(v, ((1, 1), (1, 1), (0, 0)), mode="edge")
        out = np.broadcast_to(b, v.shape).copy()
        for dr in range(3):
            for dc in range(3):
                out += padded[dr:dr + height, dc:dc + width] @ w[:, :, dr, dc].T
        v = v + out
        if k < len(convs) - 1:
            v = np.maximum(v, 0)
    return v


def frame(pictures, t: float, height: int, width: int) -> np.ndarray:
    k = min(int(math.floor(t)), len(pictures) - 1)
    colour = np.clip(render(pictures[k], height, width), 0, 1)
    if t > k:
        share = f32(t - k)
        colour = (1 - share) * colour + share * np.clip(render(pictures[k + 1], height, width), 0, 1)
    return np.floor(colour * f32(255) + f32(0.5)).astype(np.uint8)


@pytest.fixture(scope="module")
def golden():
    data = (GOLDEN / "picture.anr").read_bytes()
    size, config, index, end = header(data)
    assert config.pop("latent") is True
    cfg = {**DEFAULTS, **config}
    assert index[-1][0] + index[-1][1] == end
    pictures = [read_picture(data[offset:offset + length], cfg, size)
                for offset, length, *_ in index]
    return size, pictures, json.loads((GOLDEN / "manifest.json").read_text())["files"]["picture"]


def test_golden_pictures_render_from_the_doc(golden):
    (width, height, _), pictures, entry = golden
    stored = np.load(GOLDEN / "picture.npz")
    assert set(entry["renders"]) == {"playback", "between_2x", "odd_size"}
    for name, spec in entry["renders"].items():
        w, h = spec["size"] or (width, height)
        got = np.stack([frame(pictures, t, h, w) for t in spec["times"]])
        assert_same_frames(got, stored[name])


def test_the_doc_reader_sees_a_changed_network(golden):
    """The comparison can fail: a synthesis bias moved by a tenth changes the frames."""
    (width, height, _), pictures, _ = golden
    synthesis, refinement, grids = pictures[0]
    moved = [t.copy() for t in synthesis]
    moved[-1] = moved[-1] + f32(0.1)
    stored = np.load(GOLDEN / "picture.npz")["playback"][0]
    assert np.abs(frame([(moved, refinement, grids)], 0.0, height, width).astype(int)
                  - stored).max() > 1
