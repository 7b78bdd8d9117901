"""The model layer of the .anr format: configuration entries and the tensors of a GOP.

docs/bitstream.md ("Model layer") defines both; this module is their implementation.
Names, shapes and order are written out here, not taken from dataclass fields or a
module's state_dict, so renaming an attribute cannot change what a file means.
"""

from __future__ import annotations

import torch

from .config import KEYS, ModelConfig
from .network import GOPModel
from .tiling import Tiling

GOP_SIZE_KEY = "gop_size"
MAX_GOP_SIZE = 10_000_000  # the most frames a file holds


def stream_config(cfg: ModelConfig, gop_size: int) -> dict[str, int | float | str]:
    """The configuration entries a file stores, in their defined order and types."""
    values = {key.name: key.kind(getattr(cfg, key.name)) for key in KEYS}
    return {**values, GOP_SIZE_KEY: int(gop_size)}


def parse_config(entries: dict, version: int) -> tuple[ModelConfig, int]:
    """The model configuration and nominal GOP length of a file's entries, for a file of
    that format version.

    Exactly the keys that version defines, each of its type (an integer is accepted for a
    float) and in its range; a key a version predates takes the value such files mean.
    ValueError naming the first problem otherwise.
    """
    keys = [key for key in KEYS if key.since <= version]
    names = [key.name for key in keys] + [GOP_SIZE_KEY]
    unknown = [name for name in entries if name not in names]
    if unknown:
        raise ValueError(f"unknown configuration key {unknown[0]!r}")
    missing = [name for name in names if name not in entries]
    if missing:
        raise ValueError(f"model configuration lacks {missing[0]!r}")
    values = {key.name: key.absent for key in KEYS if key.since > version}
    for key in keys:
        value = entries[key.name]
        key.check(value)
        values[key.name] = float(value) if key.kind is float else value
    gop_size = entries[GOP_SIZE_KEY]
    if isinstance(gop_size, bool) or not isinstance(gop_size, int) or not (
            2 <= gop_size <= MAX_GOP_SIZE):
        raise ValueError(f"{GOP_SIZE_KEY} must be an integer in 2..{MAX_GOP_SIZE}, "
                         f"got {gop_size!r}")
    return ModelConfig(**values), gop_size


def tile_count(cfg: ModelConfig, height: int, width: int) -> int:
    """Tiles of a frame: ceil(height / tile) rows times ceil(width / tile) columns."""
    return Tiling.for_frame(height, width, cfg.tile, cfg.overlap).count


def tensor_layout(cfg: ModelConfig, tiles: int) -> list[tuple[str, tuple[int, ...]]]:
    """Every tensor of a GOP, (name, shape), in the order a GOP chunk stores them."""
    dims = [2] + [cfg.width] * cfg.depth + [3]
    n_time = 2 * cfg.n_freqs + 1
    hidden = cfg.bias_hidden
    return [
        ("latents", (tiles, cfg.latent_dim)),
        *[(f"weights.{i}", (tiles, a, b)) for i, (a, b) in enumerate(zip(dims[:-1], dims[1:],
                                                                          strict=True))],
        *[(f"base_biases.{i}", (tiles, b)) for i, b in enumerate(dims[1:])],
        ("bias_in.weight", (hidden, n_time + cfg.latent_dim)), ("bias_in.bias", (hidden,)),
        ("bias_mid.weight", (hidden, hidden)), ("bias_mid.bias", (hidden,)),
        ("bias_out.weight", (sum(dims[1:]), hidden)), ("bias_out.bias", (sum(dims[1:]),)),
        *([("motion_out.weight", (2, hidden)), ("motion_out.bias", (2,))] if cfg.motion else []),
    ]


def format_parameters(model: GOPModel) -> dict[str, torch.nn.Parameter]:
    """The model's parameters by their names in the format, in the format's order."""
    slots = {f"weights.{i}": w for i, w in enumerate(model.weights)}
    slots.update({f"base_biases.{i}": b for i, b in enumerate(model.base_biases)})
    slots["latents"] = model.latents
    for layer in ("bias_in", "bias_mid", "bias_out", "motion_out"):
        linear = getattr(model, layer)
        if linear is None:
            continue
        slots[f"{layer}.weight"], slots[f"{layer}.bias"] = linear.weight, linear.bias
    return {name: slots[name] for name, _ in tensor_layout(model.cfg, model.tiling.count)}


def model_tensors(model: GOPModel) -> dict[str, torch.Tensor]:
    """The model's tensors as the format names them, in the format's order (detached)."""
    return {name: p.detach() for name, p in format_parameters(model).items()}


def load_tensors(model: GOPModel, tensors: dict[str, torch.Tensor]) -> GOPModel:
    """Copy the format's tensors into the model's parameters (names and shapes checked)."""
    slots = format_parameters(model)
    if set(tensors) != set(slots):
        raise ValueError("the tensors do not match the model")
    with torch.no_grad():
        for name, value in tensors.items():
            slots[name].copy_(value)
    return model
