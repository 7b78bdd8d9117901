"""Conformance test: the model layer of `.anr`, decoded from docs/bitstream.md alone.

The reader below follows the section "Model layer: what the configuration and tensors
mean" (with the model clock of "Side section" for a file with frame timestamps) and
nothing else: it uses the container package for bytes to symbols, and numpy
for everything after. It renders the golden file's frames and compares them with the
stored ones, within the tolerance the document gives. The bytes-to-symbols step has its
own check from the document alone, tests/test_range_coder_doc.py.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from bitstream import AnrReader, decode_file

GOLDENS = Path(__file__).parent / "golden"
GOLDEN = GOLDENS / "v1"
f32 = np.float32


# --- Configuration keys -------------------------------------------------------------------


def _positive_float_upto(limit):
    """Range check (0, limit]."""
    return lambda v, cfg: 0 < v <= limit


# (key, type, range check given the value and the keys already parsed), in document order.
CONFIG_RULES = (
    ("tile", "int", lambda v, cfg: 4 <= v <= 4096),
    ("overlap", "int", lambda v, cfg: 0 <= v <= 2047 and 2 * v < cfg["tile"]),
    ("width", "int", lambda v, cfg: 1 <= v <= 256),
    ("depth", "int", lambda v, cfg: 1 <= v <= 8),
    ("activation", "str", lambda v, cfg: v in ("sine", "gabor", "gaussian")),
    ("omega", "float", lambda v, cfg: 1e-30 <= v <= 1000),
    ("gabor_scale", "float", lambda v, cfg: 1e-30 <= v <= 1000),
    ("n_freqs", "int", lambda v, cfg: 1 <= v <= 64),
    ("max_freq", "float", _positive_float_upto(0.5)),
    ("bias_hidden", "int", lambda v, cfg: 1 <= v <= 512),
    ("latent_dim", "int", lambda v, cfg: 1 <= v <= 128),
    ("seed", "int", lambda v, cfg: -(2**63) <= v < 2**63),
    ("motion", "int", lambda v, cfg: v in (0, 1)),
    ("gop_size", "int", lambda v, cfg: 2 <= v <= 10_000_000),
)


def parse_config(config: dict, version: int) -> dict:
    """The configuration entries of a file of that version (14 from version 3, 13 before,
    which mean motion 0), checked for keys, types and ranges; in document order."""
    rules = [rule for rule in CONFIG_RULES if version >= 3 or rule[0] != "motion"]
    expected = [key for key, _, _ in rules]
    if sorted(config) != sorted(expected):
        raise ValueError(f"configuration keys {list(config)} are not {expected}")
    parsed: dict = {"motion": 0}
    for key, kind, in_range in rules:
        value = config[key]
        # bool is a subclass of int in Python, but a bool entry (tag 1) is not an int.
        if kind == "int" and type(value) is not int:
            raise ValueError(f"{key}: expected an int, got {value!r}")
        if kind == "float":
            if type(value) not in (int, float):
                raise ValueError(f"{key}: expected a float, got {value!r}")
            value = float(value)
        if kind == "str" and type(value) is not str:
            raise ValueError(f"{key}: expected a str, got {value!r}")
        if not in_range(value, parsed):  # NaN fails every comparison, so it is out of range
            raise ValueError(f"{key}: {value!r} out of range")
        parsed[key] = value
    return parsed


# --- Time frequencies: MT19937 ----------------------------------------------------------------


def mt19937_words(seed: int):
    """The 32-bit outputs of MT19937 initialised with `seed mod 2**32`."""
    n, m = 624, 397
    x = [seed % 2**32]
    for i in range(1, n):
        x.append((1812433253 * (x[-1] ^ (x[-1] >> 30)) + i) % 2**32)
    i = n  # twist before the first output
    while True:
        if i == n:
            for k in range(n):
                y = (x[k] & 0x80000000) | (x[(k + 1) % n] & 0x7FFFFFFF)
                x[k] = x[(k + m) % n] ^ (y >> 1) ^ (0x9908B0DF if y & 1 else 0)
            i = 0
        y = x[i]
        i += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C5680
        y ^= (y << 15) & 0xEFC60000
        y ^= y >> 18
        yield y


def uniform_doubles(seed: int, count: int) -> list[float]:
    """`u_k = ((a * 2**32 + b) mod 2**53) * 2**-53` from consecutive word pairs (a, b)."""
    words = mt19937_words(seed)
    return [(((next(words) << 32) + next(words)) % 2**53) * 2.0**-53 for _ in range(count)]


def time_frequencies(seed: int, n_freqs: int, max_freq: float) -> np.ndarray:
    """`f_k = float32(((k + u_k) / K) * F)`, computed in binary64."""
    u = uniform_doubles(seed, n_freqs)
    return np.array([((k + u[k]) / n_freqs) * max_freq for k in range(n_freqs)], dtype=f32)


# --- Tiles ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AxisTiles:
    """One axis cut into tiles: count, core width `c` and margin `m` in [-1, 1] coordinates."""

    count: int
    core: np.float32
    margin: np.float32

    @classmethod
    def cut(cls, n: int, tile: int, overlap: int) -> AxisTiles:
        count = max(1, math.ceil(n / tile))
        return cls(count, f32(2 / count), f32(min(2 * overlap / n, 1 / count)))

    def centre(self, k: int) -> np.float32:
        return f32(-1) + (f32(k) + f32(0.5)) * self.core

    def extent(self, k: int) -> tuple[np.float32, np.float32]:
        return (f32(-1) + f32(k) * self.core - self.margin,
                f32(-1) + f32(k + 1) * self.core + self.margin)

    def local(self, k: int, u: np.ndarray) -> np.ndarray:
        """`(u - centre) / (c / 2 + m)`."""
        return (u - self.centre(k)) / (self.core / f32(2) + self.margin)

    def weight(self, k: int, u: np.ndarray) -> np.ndarray:
        """Tile k's blend weight on this axis at coordinates u."""
        if self.margin == 0:
            owner = np.clip(np.floor((u + f32(1)) / self.core), 0, self.count - 1)
            return (owner == k).astype(f32)
        lo, hi = self.extent(k)
        w = np.ones_like(u)
        if k > 0:
            w = w * np.clip((u - lo) / (f32(2) * self.margin), 0, 1)
        if k < self.count - 1:
            w = w * np.clip((hi - u) / (f32(2) * self.margin), 0, 1)
        return w


def pixel_centres(size: int) -> np.ndarray:
    """Output pixel centres `(i + 1/2) / size * 2 - 1` in float32."""
    return (np.arange(size, dtype=f32) + f32(0.5)) / f32(size) * f32(2) - f32(1)


# --- Tensors ----------------------------------------------------------------------------------


def expected_shapes(cfg: dict, tiles: int) -> dict[str, tuple[int, ...]]:
    """The `2 D + 9` tensor names and shapes (`2 D + 11` with motion), in the document's
    order."""
    d, w, hb, lat = cfg["depth"], cfg["width"], cfg["bias_hidden"], cfg["latent_dim"]
    nt, nb = 2 * cfg["n_freqs"] + 1, d * w + 3
    shapes = {"latents": (tiles, lat), "weights.0": (tiles, 2, w)}
    shapes |= {f"weights.{i}": (tiles, w, w) for i in range(1, d)}
    shapes[f"weights.{d}"] = (tiles, w, 3)
    shapes |= {f"base_biases.{i}": (tiles, w) for i in range(d)}
    shapes[f"base_biases.{d}"] = (tiles, 3)
    shapes |= {"bias_in.weight": (hb, nt + lat), "bias_in.bias": (hb,),
               "bias_mid.weight": (hb, hb), "bias_mid.bias": (hb,),
               "bias_out.weight": (nb, hb), "bias_out.bias": (nb,)}
    if cfg["motion"]:
        shapes |= {"motion_out.weight": (2, hb), "motion_out.bias": (2,)}
    return shapes


def tensor_values(gop, shapes: dict[str, tuple[int, ...]],
                  reference: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Each tensor's float32 values `float32(symbol) * step`, plus the reference's for a
    predicted GOP, after checking names, order, shapes."""
    found = [(t.name, tuple(t.shape)) for t in gop.tensors]
    if found != list(shapes.items()):
        raise ValueError(f"GOP {gop.start}..{gop.stop}: tensors {found} are not {list(shapes.items())}")
    values = {t.name: t.symbols.astype(f32) * f32(t.step) for t in gop.tensors}
    if reference is None:
        return values
    return {name: reference[name] + value for name, value in values.items()}


# --- Rendering --------------------------------------------------------------------------------


def frame_clock(stamps, frames: int) -> list[float]:
    """Each frame's model time `c_f`: `f`, or with a TIME box the exact rational
    `(F - 1) (p_f - p_0) / (p_(F-1) - p_0)` rounded to binary64."""
    if stamps is None:
        return [float(f) for f in range(frames)]
    p = stamps.pts
    return [float(Fraction((q - p[0]) * (frames - 1), p[-1] - p[0])) for q in p]


def silu(v: np.ndarray) -> np.ndarray:
    """`v / (1 + exp(-v))`."""
    return v / (f32(1) + np.exp(-v))


def activation(name: str, z: np.ndarray, omega: np.float32, gamma: np.float32) -> np.ndarray:
    """The hidden activation: sine, gabor or gaussian."""
    if name == "sine":
        return np.sin(z)
    if name == "gabor":
        return np.cos(z) * np.exp(-((gamma * z / omega) ** 2))
    return np.exp(-(z**2))


class ModelLayerReader:
    """Renders frames of an `.anr` file from its configuration and quantized tensors."""

    def __init__(self, data: bytes):
        self.info, config, gops = decode_file(data)
        (version,) = struct.unpack_from("<I", data, 8)
        cfg = self.cfg = parse_config(config, version)
        self.rows = AxisTiles.cut(self.info.height, cfg["tile"], cfg["overlap"])
        self.cols = AxisTiles.cut(self.info.width, cfg["tile"], cfg["overlap"])
        shapes = expected_shapes(cfg, self.rows.count * self.cols.count)
        with AnrReader(data) as container:
            clock = frame_clock(container.timestamps, self.info.frames)
        self.gops = []
        for k, gop in enumerate(gops):
            # A predicted GOP (kind 1) adds its residuals to the GOP before it, as decoded.
            reference = self.gops[k - 1][1] if gop.kind == 1 else None
            self.gops.append((clock[gop.start], tensor_values(gop, shapes, reference)))
        self.freqs = time_frequencies(cfg["seed"], cfg["n_freqs"], cfg["max_freq"])
        self.omega, self.gamma = f32(cfg["omega"]), f32(cfg["gabor_scale"])
        self.scale = self.gamma if cfg["activation"] == "gaussian" else self.omega
        hidden = cfg["depth"] * cfg["width"]
        self.base_scale = np.concatenate([np.full(hidden, self.scale, f32), np.ones(3, f32)])
        self.offset_scale = np.concatenate([np.full(hidden, self.scale / self.omega, f32),
                                            np.ones(3, f32)])

    def time_features(self, tau: np.float32) -> np.ndarray:
        """`sin(2π τ f_k)`, then `cos(2π τ f_k)`, then the ramp `τ F / K`."""
        phase = f32(2 * math.pi) * tau * self.freqs
        ramp = tau * f32(self.cfg["max_freq"]) / f32(self.cfg["n_freqs"])
        return np.concatenate([np.sin(phase), np.cos(phase), [ramp]]).astype(f32)

    def biases(self, v: dict[str, np.ndarray], phi: np.ndarray, t: int) -> list[np.ndarray]:
        """Tile t's biases `β_0 .. β_D` from the bias network."""
        h1 = silu(v["bias_in.weight"] @ np.concatenate([phi, v["latents"][t]]) + v["bias_in.bias"])
        h2 = silu(v["bias_mid.weight"] @ h1 + v["bias_mid.bias"])
        o = v["bias_out.weight"] @ h2 + v["bias_out.bias"]
        depth = self.cfg["depth"]
        base = np.concatenate([v[f"base_biases.{i}"][t] for i in range(depth + 1)])
        beta = base * self.base_scale + o * self.offset_scale
        if self.cfg["motion"]:
            d = (v["motion_out.weight"] @ h2 + v["motion_out.bias"]) * f32(0.1)
            width = self.cfg["width"]
            beta[:width] += d @ (self.scale * v["weights.0"][t])
        return np.split(beta, [self.cfg["width"] * (i + 1) for i in range(depth)])

    def tile_rgb(self, v: dict[str, np.ndarray], t: int, beta: list[np.ndarray],
                 yx: np.ndarray) -> np.ndarray:
        """Tile t's network at local coordinates yx (P, 2): (P, 3) colours."""
        depth = self.cfg["depth"]
        for layer in range(depth):
            z = self.scale * (yx @ v[f"weights.{layer}"][t]) + beta[layer]
            yx = activation(self.cfg["activation"], z, self.omega, self.gamma)
        return yx @ v[f"weights.{depth}"][t] + beta[depth]

    def render(self, time: float, width: int, height: int) -> np.ndarray:
        """The (height, width, 3) uint8 frame at real time `time`."""
        if not 0 <= time <= self.info.frames - 1:
            raise ValueError(f"time {time} outside [0, {self.info.frames - 1}]")
        start, v = [(s, v) for s, v in self.gops if s <= time][-1]
        tau = f32(time - start)
        phi = self.time_features(tau)
        ys, xs = pixel_centres(height), pixel_centres(width)
        total = np.zeros((height, width, 3), f32)
        weight_sum = np.zeros((height, width), f32)
        for row in range(self.rows.count):
            for col in range(self.cols.count):
                t = row * self.cols.count + col
                w = np.outer(self.rows.weight(row, ys), self.cols.weight(col, xs))
                inside = w > 0
                if not inside.any():
                    continue
                yy, xx = np.nonzero(inside)
                yx = np.stack([self.rows.local(row, ys[yy]), self.cols.local(col, xs[xx])], axis=1)
                rgb = self.tile_rgb(v, t, self.biases(v, phi, t), yx)
                total[yy, xx] += w[yy, xx, None] * rgb
                weight_sum[yy, xx] += w[yy, xx]
        colour = total / weight_sum[..., None]
        return np.floor(np.clip(colour, 0, 1) * f32(255) + f32(0.5)).astype(np.uint8)


# --- Tests ------------------------------------------------------------------------------------

MANIFESTS = {folder.name: json.loads((folder / "manifest.json").read_text())
             for folder in sorted(GOLDENS.glob("v*"))}
# The files of GOP models; pictures (version 5) have their own section and reader
# (tests/test_pictures_doc.py).
FILES = [(version, name) for version, manifest in MANIFESTS.items() for name in manifest["files"]
         if "latent" not in decode_file((GOLDENS / version / f"{name}.anr").read_bytes())[1]]
RENDERS = [(version, name, render) for version, name in FILES
           for render in sorted(MANIFESTS[version]["files"][name]["renders"])]


@pytest.fixture(scope="module")
def readers() -> dict[tuple[str, str], ModelLayerReader]:
    return {(version, name): ModelLayerReader((GOLDENS / version / f"{name}.anr").read_bytes())
            for version, name in FILES}


@pytest.fixture(scope="module")
def reader(readers) -> ModelLayerReader:
    return readers["v1", "sine"]


def test_goldens_cover_every_activation_both_blends_motion_and_predicted_gops(readers):
    assert {r.cfg["activation"] for r in readers.values()} == {"sine", "gabor", "gaussian"}
    assert {r.cfg["motion"] for r in readers.values()} == {0, 1}
    assert {r.cfg["overlap"] == 0 for r in readers.values()} == {True, False}
    kinds = {gop.kind for (version, name) in FILES
             for gop in decode_file((GOLDENS / version / f"{name}.anr").read_bytes())[2]}
    assert kinds == {0, 1}


@pytest.mark.parametrize(("version", "name", "render"), RENDERS)
def test_golden_render_matches_stored_frames(readers, version, name, render):
    """Every stored frame is reproduced within one level in at most 1 % of its samples."""
    reader = readers[version, name]
    spec = MANIFESTS[version]["files"][name]["renders"][render]
    width, height = spec["size"] or (reader.info.width, reader.info.height)
    stored = np.load(GOLDENS / version / f"{name}.npz")[render]
    assert stored.shape == (len(spec["times"]), height, width, 3)
    for time, expected in zip(spec["times"], stored, strict=True):
        diff = np.abs(reader.render(time, width, height).astype(int) - expected.astype(int))
        assert diff.max() <= 1, f"{render} t={time}: a sample differs by {diff.max()} levels"
        assert np.count_nonzero(diff) <= 0.01 * diff.size, f"{render} t={time}: too many off by one"


def test_mt19937_check_value():
    """The C++ standard's check: the 10000th output for seed 5489 is 4123659995."""
    words = mt19937_words(5489)
    for _ in range(9999):
        next(words)
    assert next(words) == 4123659995


def test_config_rules(readers):
    """The golden configs parse, in the document's order and in any other; missing, unknown,
    mistyped and out-of-range entries don't; `motion` exists from version 3 only."""
    for version in MANIFESTS:
        keys = [key for key, _, _ in CONFIG_RULES if key != "motion" or version >= "v3"]
        assert list(decode_file((GOLDENS / version / "sine.anr").read_bytes())[1]) == keys
    assert readers["v1", "sine"].cfg["motion"] == 0
    good = dict(readers["v3", "sine"].cfg)
    assert parse_config({**good, "omega": 12}, 3) == {**good, "omega": 12.0}  # an int is accepted
    assert parse_config(dict(reversed(list(good.items()))), 3) == good
    without_seed = {k: v for k, v in good.items() if k != "seed"}
    without_motion = {k: v for k, v in good.items() if k != "motion"}
    assert parse_config(without_motion, 2) == {**without_motion, "motion": 0}
    bad = [without_seed, without_motion, {**good, "extra": 1},
           {**good, "tile": 16.0}, {**good, "depth": True}, {**good, "omega": "12"},
           {**good, "activation": 1}, {**good, "tile": 3}, {**good, "tile": 4097},
           {**good, "overlap": 8}, {**good, "overlap": -1}, {**good, "width": 257},
           {**good, "depth": 9}, {**good, "activation": "relu"}, {**good, "omega": 0.0},
           {**good, "omega": float("nan")}, {**good, "gabor_scale": 1000.5}, {**good, "n_freqs": 65},
           {**good, "max_freq": 0.6}, {**good, "bias_hidden": 0}, {**good, "latent_dim": 129},
           {**good, "seed": 2**63}, {**good, "gop_size": 1}, {**good, "motion": 2},
           {**good, "motion": True}]
    for config in bad:
        with pytest.raises(ValueError):
            parse_config(config, 3)
    with pytest.raises(ValueError):
        parse_config(good, 2)  # motion is unknown before version 3


def test_tensor_layout_is_enforced(reader):
    """A GOP whose tensors differ in name, order or shape is rejected."""
    shapes = expected_shapes(reader.cfg, reader.rows.count * reader.cols.count)
    gop = decode_file((GOLDEN / "sine.anr").read_bytes())[2][0]
    first, second, *rest = gop.tensors
    transposed = replace(first, shape=first.shape[::-1], symbols=first.symbols.T)
    for tensors in ([second, first, *rest], [replace(first, name="latent"), second, *rest],
                    [transposed, second, *rest]):
        with pytest.raises(ValueError):
            tensor_values(replace(gop, tensors=tensors), shapes)
    tensor_values(gop, shapes)


@pytest.mark.parametrize("n, overlap", [(28, 2), (40, 2), (57, 7), (40, 0), (16, 3), (12, 0)])
def test_blend_weights_add_up_to_one(n, overlap):
    """Weights of overlapping tiles add up to 1 at every output pixel, with and without margins."""
    axis = AxisTiles.cut(n, 16, overlap)
    for size in (n, 2 * n + 1, 7):
        u = pixel_centres(size)
        total = sum(axis.weight(k, u) for k in range(axis.count))
        np.testing.assert_allclose(total, 1, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 5, -7, 2**40 + 3])
@pytest.mark.parametrize("n_freqs", [1, 4, 6, 64])
def test_frequencies_match_torch_rand(seed, n_freqs):
    """The documented draw reproduces `torch.rand` (float64), which the first files were fitted with."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    u = torch.rand(n_freqs, generator=generator, dtype=torch.float64).numpy()
    expected = np.array([((k + u[k]) / n_freqs) * 0.1 for k in range(n_freqs)], dtype=np.float32)
    assert np.array_equal(time_frequencies(seed, n_freqs, 0.1), expected)
