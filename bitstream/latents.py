"""Latent grids range-coded under a learned auto-regressive context model in fixed point.

Each latent of a grid gets its own probability table from a small network (the context
model) reading its causal neighbours: the five latents of each of the two rows above
(columns c-2..c+2) and the two to its left. The network's parameters are integers times
2**-shift and every activation is an integer with ACT_BITS fractional bits, so a decoder
computes the same tables as the encoder on every machine, bit for bit; nothing here uses
floating point except constriction's exact handling of integer weights (see entropy.py).
The network gives a mean, rounded to eighths, and log2 of a Laplace scale, rounded to
quarters; the table is the Laplace law's mass over each symbol's bin, its powers of the
per-eighth decay computed by models.decay_powers, normalised like every other table.

A latent at row r, column c waits for (r, c-1) and (r-1, c+2), so all latents with the
same c + 3r can be decoded at once: symbols are coded wave by wave in increasing c + 3r,
in increasing r within a wave, and a decoder makes one call per wave instead of one per
latent. The layout is specified in docs/bitstream.md, "Latent grids".
"""

from __future__ import annotations

from dataclasses import dataclass

import constriction
import numpy as np

from .entropy import checked
from .errors import BitstreamError
from .models import ONE, PRECISION, TOTAL, decay_powers

CONTEXT = 12
# A context model may also read a reference grid of the same shape (the previous frame's
# latents at the same level): its 3x3 window around the latent, then a 1 saying that the
# reference exists (all ten 0 for a grid coded without one).
REFERENCE = 10
ACT_BITS = 8
MAX_SHIFT = 24
MAX_PARAMETER = 2**15
MAX_WIDTH = 64
MAX_LAYERS = 4
# Activations are clamped to this magnitude after every layer, so that with parameters
# below 2**15 and at most 64 inputs each product sum stays far inside int64.
MAX_ACTIVATION = 2**24
MAX_LATENT = 2**15
MAX_ALPHABET = 2**12
# Leading zeros of an Exp-Golomb code of a range: se(lo) of |lo| <= 2**15 takes 16 at
# most, ue(hi - lo) of a span below 2**12 takes 12; a reader stops counting beyond.
MAX_RANGE_ZEROS = 16
# log2 of the Laplace scale in quarters, SCALE_MIN..SCALE_MAX (scales 2**-7 .. 2**7), and
# the decay per eighth of a symbol, round(2**16 * exp(-1 / (8 b))) capped at 2**16 - 1,
# listed here: this list, not a floating-point formula, is the format.
SCALE_MIN, SCALE_MAX = -28, 28
DECAYS = (
    0, 0, 1, 5, 22, 79, 229, 563, 1200, 2268, 3874, 6075, 8869, 12192, 15933, 19953, 24109,
    28267, 32314, 36162, 39750, 43041, 46019, 48681, 51039, 53111, 54917, 56484, 57835,
    58997, 59992, 60842, 61565, 62181, 62703, 63145, 63520, 63836, 64104, 64329, 64520,
    64681, 64816, 64930, 65026, 65107, 65175, 65232, 65280, 65321, 65355, 65384, 65408,
    65428, 65446, 65460, 65472,
)
# Latents per batch when the encoder builds tables: bounds its memory to a few MB per
# symbol of alphabet.
BATCH = 4096


@dataclass(frozen=True, eq=False)
class ContextModel:
    """The context network: layers of integer (weights (out, in), biases (out,)), every
    parameter times 2**-shift; ReLU between layers; the last layer gives (mean, log2 scale)."""

    layers: tuple[tuple[np.ndarray, np.ndarray], ...]
    shift: int

    def __post_init__(self) -> None:
        if not 0 <= self.shift <= MAX_SHIFT:
            raise BitstreamError(f"context model shift {self.shift} outside 0..{MAX_SHIFT}")
        if not 1 <= len(self.layers) <= MAX_LAYERS:
            raise BitstreamError(f"context model has {len(self.layers)} layers "
                                 f"(1..{MAX_LAYERS})")
        inputs = self.inputs
        for k, (w, b) in enumerate(self.layers):
            last = k == len(self.layers) - 1
            outputs = 2 if last else w.shape[0]
            if w.shape != (outputs, inputs) or b.shape != (outputs,):
                raise BitstreamError(f"context model layer {k} has shapes {w.shape}, "
                                     f"{b.shape} where ({outputs}, {inputs}) was due")
            if not 1 <= outputs <= MAX_WIDTH:
                raise BitstreamError(f"context model layer {k} is {outputs} wide")
            if max(int(np.abs(w).max()), int(np.abs(b).max())) >= MAX_PARAMETER:
                raise BitstreamError(f"context model layer {k} has a parameter beyond "
                                     f"+-{MAX_PARAMETER}")
            inputs = outputs

    @property
    def inputs(self) -> int:
        """CONTEXT, or CONTEXT + REFERENCE for a model that reads a reference grid: the
        first layer's width says which."""
        first = self.layers[0][0].shape[1] if self.layers and self.layers[0][0].ndim == 2 else 0
        return CONTEXT + REFERENCE if first == CONTEXT + REFERENCE else CONTEXT

    def parameters(self, contexts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For (n, inputs) integer contexts: each latent's mean in eighths and its scale
        index (log2 of the scale in quarters), int64, the scale index clamped."""
        a = contexts.astype(np.int64)
        scale_in = 0  # fractional bits of a: the contexts are integers
        for k, (w, b) in enumerate(self.layers):
            acc = a @ w.T.astype(np.int64) + (b.astype(np.int64) << scale_in)
            a = _rescale(acc, self.shift + scale_in - ACT_BITS)
            if k < len(self.layers) - 1:
                np.maximum(a, 0, out=a)
            np.clip(a, -MAX_ACTIVATION, MAX_ACTIVATION, out=a)
            scale_in = ACT_BITS
        eighths = _rescale(a[:, 0], ACT_BITS - 3)
        scales = np.clip(_rescale(a[:, 1], ACT_BITS - 2), SCALE_MIN, SCALE_MAX)
        return eighths, scales


def _rescale(x: np.ndarray, shift: int) -> np.ndarray:
    """x * 2**-shift rounded half up (an arithmetic shift), or x * 2**-shift exactly."""
    if shift <= 0:
        return x << -shift
    return (x + (1 << (shift - 1))) >> shift


def context_windows(padded: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                    reference: np.ndarray | None, inputs: int) -> np.ndarray:
    """(n, inputs) contexts of latents (rows, cols) of a grid stored with two rows of zeros
    above and two columns of zeros on each side: the causal neighbours and, for a model of
    CONTEXT + REFERENCE inputs, the reference's window (reference: the reference grid with
    its edges repeated once all round, or None for none) and its presence."""
    r, c = rows[:, None], cols[:, None] + 2
    above = np.arange(-2, 3)[None]
    parts = [padded[r, c + above], padded[r + 1, c + above],
             padded[r + 2, c + np.array([[-2, -1]])]]
    if inputs > CONTEXT:
        if reference is None:
            parts.append(np.zeros((len(rows), REFERENCE), np.int64))
        else:
            around = np.arange(3)[None]
            parts += [reference[r + k, cols[:, None] + around] for k in range(3)]
            parts.append(np.ones((len(rows), 1), np.int64))
    return np.concatenate(parts, axis=1)


def _reference(reference: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
    if reference is None:
        return None
    if reference.shape != shape:
        raise BitstreamError(f"reference grid of shape {reference.shape} for a grid of "
                             f"shape {shape}")
    return np.pad(reference.astype(np.int64), 1, mode="edge")


def table_weights(eighths: np.ndarray, scales: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """(n, hi - lo + 1) integer weights (frequencies less one, each row summing to
    2**24 - (hi - lo + 1)) of the Laplace laws with these means and scale indices."""
    size = hi - lo + 1
    eighths = np.clip(eighths, 8 * lo, 8 * hi)
    # Bin edges of symbol s, in eighths from the mean: 8 s - 4 - m and 8 s + 4 - m.
    edges = 8 * np.arange(lo, hi + 2)[None] - 4 - eighths[:, None]
    reach = int(np.abs(edges).max()) + 1
    below = np.empty(edges.shape, np.int64)
    for k in np.unique(scales):
        rows = scales == k
        powers = decay_powers(DECAYS[int(k) - SCALE_MIN], reach)
        e = edges[rows]
        tail = powers[np.abs(e)] >> 1  # half the law's mass beyond |e| eighths
        # Mass below each edge, 30-bit fixed point.
        below[rows] = np.where(e < 0, tail, ONE - tail)
    mass = np.diff(below, axis=1)
    free = TOTAL - size
    weights = mass * free // mass.sum(axis=1, keepdims=True)
    peak = np.argmax(mass, axis=1)
    weights[np.arange(len(weights)), peak] += free - weights.sum(axis=1)
    return weights


def check_grid(shape: tuple[int, int], lo: int, hi: int) -> None:
    h, w = shape
    if h < 1 or w < 1:
        raise BitstreamError(f"latent grid of shape {shape}")
    if not -MAX_LATENT <= lo <= hi <= MAX_LATENT:
        raise BitstreamError(f"latent range [{lo}, {hi}] beyond +-{MAX_LATENT}")
    if hi - lo + 1 > MAX_ALPHABET:
        raise BitstreamError(f"latent range [{lo}, {hi}] wider than {MAX_ALPHABET}")


def pack_ranges(ranges: list[tuple[int, int]]) -> bytes:
    """Grids' symbol ranges [lo, hi] as bits: se(lo) then ue(hi - lo) for each grid, in
    H.264's Exp-Golomb codes, most significant bit first, zero bits to the byte's end.
    Most grids' ranges are a few symbols about zero and take a few bits, where two 16-bit
    numbers took 32 (a GOP's many sparse grids paid 5 % of their bits for them)."""
    bits = []
    for lo, hi in ranges:
        lo, hi = int(lo), int(hi)
        check_grid((1, 1), lo, hi)
        for code in (2 * lo - 1 if lo > 0 else -2 * lo, hi - lo):
            bits.append(format(code + 1, "b").rjust(2 * (code + 1).bit_length() - 1, "0"))
    text = "".join(bits)
    text += "0" * (-len(text) % 8)
    return int(text, 2).to_bytes(len(text) // 8, "big") if text else b""


def unpack_ranges(data: bytes, count: int) -> list[tuple[int, int]]:
    """count ranges [lo, hi] from pack_ranges' bytes, which they must fill exactly (the
    padding zero, nothing after it), each within check_grid's limits."""
    bits = "".join(format(byte, "08b") for byte in data)
    at, codes = 0, []
    for _ in range(2 * count):
        zeros = 0
        while at + zeros < len(bits) and bits[at + zeros] == "0":
            zeros += 1
            if zeros > MAX_RANGE_ZEROS:
                raise BitstreamError("latent range code is too long")
        end = at + 2 * zeros + 1
        if end > len(bits):
            raise BitstreamError("latent ranges are truncated")
        codes.append(int(bits[at + zeros:end], 2) - 1)
        at = end
    if len(bits) - at >= 8 or "1" in bits[at:]:
        raise BitstreamError("latent ranges are followed by data")
    out = []
    for signed, span in zip(codes[::2], codes[1::2]):
        lo = (signed + 1) // 2 if signed % 2 else -(signed // 2)
        check_grid((1, 1), lo, lo + span)
        out.append((lo, lo + span))
    return out


def _waves(shape: tuple[int, int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The coding order: (rows, cols) of each wave c + 3 r = t, t ascending, r ascending."""
    h, w = shape
    out = []
    for t in range(w + 3 * (h - 1)):
        rows = np.arange(max(0, -(-(t - w + 1) // 3)), min(h - 1, t // 3) + 1)
        if len(rows):  # a grid narrower than three columns has empty waves
            out.append((rows, t - 3 * rows))
    return out


def _tables(model: ContextModel, padded: np.ndarray, rows: np.ndarray, cols: np.ndarray,
            reference: np.ndarray | None, lo: int, hi: int) -> np.ndarray:
    """The integer table weights of latents (rows, cols), their contexts read from padded."""
    contexts = context_windows(padded, rows, cols, reference, model.inputs)
    return table_weights(*model.parameters(contexts), lo, hi)


def _family() -> constriction.stream.model.Categorical:
    return constriction.stream.model.Categorical(perfect=False)


def encode_grids(grids: list[np.ndarray], model: ContextModel,
                 references: list[np.ndarray | None] | None = None) -> bytes:
    """One range-coder stream of the grids' latents, grid after grid, each in wave order,
    each with its reference grid (or None) if the model reads one. Each grid's symbols
    lie in [grid.min(), grid.max()], the range a reader is told."""
    encoder = constriction.stream.queue.RangeEncoder()
    for grid, reference in zip(grids, references or [None] * len(grids), strict=True):
        lo, hi = int(grid.min()), int(grid.max())
        check_grid(grid.shape, lo, hi)
        reference = _reference(reference, grid.shape)
        if lo == hi:
            continue
        padded = np.pad(grid.astype(np.int64), ((2, 0), (2, 2)))
        order = [np.concatenate(parts) for parts in zip(*_waves(grid.shape))]
        for start in range(0, grid.size, BATCH):
            rows, cols = (o[start:start + BATCH] for o in order)
            weights = _tables(model, padded, rows, cols, reference, lo, hi).astype(np.float64)
            encoder.encode((grid[rows, cols] - lo).astype(np.int32), _family(), weights)
    return encoder.get_compressed().astype("<u4").tobytes()


def decode_grids(payload: bytes, grids: list[tuple[tuple[int, int], int, int]],
                 model: ContextModel, references: list[np.ndarray | None] | None = None
                 ) -> list[np.ndarray]:
    """The int32 grids, given each one's (shape, lo, hi) and reference grid (or None),
    from encode_grids' stream."""
    if len(payload) % 4:
        raise BitstreamError(f"latent payload length {len(payload)} is not a multiple of 4")
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(payload, "<u4"))
    return checked(decoder, lambda: _read_grids(decoder, grids, model, references), "latent")


def _read_grids(decoder: constriction.stream.queue.RangeDecoder,
                grids: list[tuple[tuple[int, int], int, int]], model: ContextModel,
                references: list[np.ndarray | None] | None) -> list[np.ndarray]:
    out = []
    for (shape, lo, hi), reference in zip(grids, references or [None] * len(grids),
                                          strict=True):
        check_grid(shape, lo, hi)
        reference = _reference(reference, tuple(shape))
        h, w = shape
        padded = np.zeros((h + 2, w + 4), np.int64)
        if lo == hi:
            padded[2:, 2:-2] = lo
        else:
            for rows, cols in _waves(shape):
                weights = _tables(model, padded, rows, cols, reference, lo, hi)
                symbols = decoder.decode(_family(), weights.astype(np.float64))
                padded[rows + 2, cols + 2] = symbols + lo
        out.append(padded[2:, 2:-2].astype(np.int32))
    return out


def ideal_bits(grid: np.ndarray, model: ContextModel,
               reference: np.ndarray | None = None) -> float:
    """The grid's ideal code length under the model, in bits (for encoders' choices)."""
    lo, hi = int(grid.min()), int(grid.max())
    reference = _reference(reference, grid.shape)
    if lo == hi:
        return 0.0
    padded = np.pad(grid.astype(np.int64), ((2, 0), (2, 2)))
    rows, cols = (a.ravel() for a in np.indices(grid.shape))
    bits = 0.0
    for start in range(0, grid.size, BATCH):
        r, c = rows[start:start + BATCH], cols[start:start + BATCH]
        weights = _tables(model, padded, r, c, reference, lo, hi)
        chosen = weights[np.arange(len(r)), grid[r, c] - lo] + 1
        bits += float(np.sum(PRECISION - np.log2(chosen)))
    return bits
