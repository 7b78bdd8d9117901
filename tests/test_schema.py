"""The model layer of the format as the library implements it: configuration entries,
tensor layout, and the time frequencies derived from the seed."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from actinr_codec.model.config import KEYS, ModelConfig
from actinr_codec.model.frequencies import mt19937_words, time_frequencies
from actinr_codec.model.network import GOPModel
from actinr_codec.model.schema import load_tensors, model_tensors, parse_config, stream_config, tensor_layout
from bitstream import FORMAT_VERSION

NAMES = ["tile", "overlap", "width", "depth", "activation", "omega", "gabor_scale", "n_freqs",
         "max_freq", "bias_hidden", "latent_dim", "seed", "motion", "gop_size"]


def test_stream_config_has_the_documented_keys_in_order_and_types():
    cfg = ModelConfig(omega=10, seed=-3)  # an int given for a float is stored as a float
    entries = stream_config(cfg, 8)
    assert list(entries) == NAMES
    assert isinstance(entries["omega"], float) and entries["omega"] == 10.0
    assert parse_config(entries, FORMAT_VERSION) == (dataclasses.replace(cfg, omega=10.0), 8)


def test_files_before_version_3_have_no_motion_key_and_mean_none():
    entries = stream_config(ModelConfig(), 8)
    del entries["motion"]
    for version in (1, 2):
        assert parse_config(entries, version) == (dataclasses.replace(ModelConfig(), motion=0), 8)
        with pytest.raises(ValueError, match="unknown configuration key 'motion'"):
            parse_config({**entries, "motion": 0}, version)
    with pytest.raises(ValueError, match="lacks 'motion'"):
        parse_config(entries, 3)


@pytest.mark.parametrize(("change", "message"), [
    ({"colour_depth": 10}, "unknown configuration key 'colour_depth'"),
    ({"width": 24.0}, "width must be an integer"),
    ({"depth": True}, "depth must be an integer"),
    ({"depth": 9}, "depth must lie in 1..8"),
    ({"max_freq": 0.75}, "max_freq must lie in"),
    ({"activation": "relu"}, "activation must be one of"),
    ({"gop_size": 1}, "gop_size must be an integer in 2.."),
    ({"overlap": 20}, "overlap must be smaller than half a tile"),
    ({"motion": 2}, "motion must lie in 0..1"),
])
def test_parse_config_rejects_what_the_document_does_not_allow(change, message):
    entries = {**stream_config(ModelConfig(), 8), **change}
    with pytest.raises(ValueError, match=message):
        parse_config(entries, FORMAT_VERSION)


def test_parse_config_needs_every_key():
    entries = stream_config(ModelConfig(), 8)
    del entries["latent_dim"]
    with pytest.raises(ValueError, match="lacks 'latent_dim'"):
        parse_config(entries, FORMAT_VERSION)


def test_the_table_of_keys_is_the_model_configuration():
    assert [k.name for k in KEYS] == [f.name for f in dataclasses.fields(ModelConfig)]


@pytest.mark.parametrize("cfg", [ModelConfig(tile=32), ModelConfig(tile=32, width=8, depth=1, n_freqs=2,
                                                                   bias_hidden=4, latent_dim=3),
                                 ModelConfig(tile=32, motion=1)])
def test_tensor_layout_is_the_models_parameters(cfg):
    model = GOPModel(cfg, 40, 70)  # 2 x 3 tiles of 32
    layout = tensor_layout(cfg, model.tiling.count)
    assert [(n, tuple(t.shape)) for n, t in model_tensors(model).items()] == layout
    assert layout[0] == ("latents", (6, cfg.latent_dim))
    assert layout[1] == ("weights.0", (6, 2, cfg.width))
    last = ("motion_out.bias", (2,)) if cfg.motion else ("bias_out.bias", (cfg.depth * cfg.width + 3,))
    assert layout[-1] == last
    # Every parameter is stored, once.
    assert sum(int(np.prod(shape)) for _, shape in layout) == sum(
        p.numel() for p in model.parameters())


def test_load_tensors_round_trips_and_checks_names():
    cfg = ModelConfig(width=8, depth=2)
    source, target = GOPModel(dataclasses.replace(cfg, seed=1), 32, 32), GOPModel(cfg, 32, 32)
    load_tensors(target, model_tensors(source))
    for (name, a), b in zip(model_tensors(source).items(), model_tensors(target).values()):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="do not match"):
        load_tensors(target, {"latents": torch.zeros(1, 8)})


def test_mt19937_check_value():
    # The C++ standard's check: the 10000th output of a default-seeded std::mt19937.
    assert mt19937_words(5489, 10000)[-1] == 4123659995


@pytest.mark.parametrize("seed", [0, 1, 5, -7, 2**31, 2**40 + 3, -(2**63)])
def test_frequencies_are_the_draw_the_first_files_were_fitted_with(seed):
    for n in (1, 6, 17, 64):
        gen = torch.Generator().manual_seed(seed)
        u = torch.rand(n, generator=gen, dtype=torch.float64)
        want = ((torch.arange(n, dtype=torch.float64) + u) / n * 0.1).to(torch.float32).numpy()
        got = time_frequencies(n, 0.1, seed)
        assert got.dtype == np.float32 and np.array_equal(got.view(np.uint32), want.view(np.uint32))


def test_the_model_uses_the_derived_frequencies():
    cfg = ModelConfig(n_freqs=5, max_freq=0.3, seed=42)
    assert np.array_equal(GOPModel(cfg, 16, 16).freqs.numpy(), time_frequencies(5, 0.3, 42))
