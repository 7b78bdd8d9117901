"""The ActINR model of one GOP: tiled frame networks with shared weights, biases from time.

Every tile has its own small coordinate MLP; all tiles are evaluated together as batched
matrix products. The weights are shared by every frame of the GOP. Each layer's bias is
per frame: a small bias network maps Fourier features of time (fixed frequencies derived
from the stored seed, frequencies.py) and a learned per-tile latent to a bias offset for
every layer, added to a per-tile base bias. Because the time features are smooth, biases
can be queried at any real t.

With ``motion`` the bias network also gives each tile a displacement d(t) of its
coordinates. The first layer is linear in them, so moving the coordinates by d is adding
d times its weights to its bias: a translation that costs one small product per frame and
leaves the tile networks as they are.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .activations import activate, init_weight, input_scale
from .config import ModelConfig
from .frequencies import time_frequencies
from .tiling import Tiling

# The displacement head's outputs count tenths of a tile's half-width, so that its
# weights live on the scale of the bias network's others; 0.02 steadied a small fit as
# well, but gives the head a fifth of the reach per step (docs/design.md).
MOTION_SCALE = 0.1


class GOPModel(nn.Module):
    """ActINR network for the frames of one GOP, over a frame of ``height`` x ``width`` pixels."""

    def __init__(self, cfg: ModelConfig, height: int, width: int):
        super().__init__()
        self.cfg = cfg
        self.height, self.width = height, width
        self.tiling = Tiling.for_frame(height, width, cfg.tile, cfg.overlap)
        tiles = self.tiling.count
        dims = [2] + [cfg.width] * cfg.depth + [3]
        self.dims = dims
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(cfg.seed)
        self.weights = nn.ParameterList()
        self.base_biases = nn.ParameterList()
        last = len(dims) - 2
        for i, (fan_in, fan_out) in enumerate(zip(dims[:-1], dims[1:])):
            w = torch.empty(tiles, fan_in, fan_out)
            init_weight(w, fan_in, first=i == 0, cfg=cfg)
            if i == last:
                b = torch.full((tiles, fan_out), 0.5)  # every frame starts mid-grey
            else:
                # Random phases: hidden pre-activations are scaled by omega in the activation.
                b = torch.empty(tiles, fan_out).uniform_(-math.pi, math.pi) / cfg.omega
            self.weights.append(nn.Parameter(w))
            self.base_biases.append(nn.Parameter(b))
        self.latents = nn.Parameter(torch.randn(tiles, cfg.latent_dim) * 0.1)
        n_bias = sum(dims[1:])
        time_in = 2 * cfg.n_freqs + 1
        self.bias_in = nn.Linear(time_in + cfg.latent_dim, cfg.bias_hidden)
        self.bias_mid = nn.Linear(cfg.bias_hidden, cfg.bias_hidden)
        self.bias_out = nn.Linear(cfg.bias_hidden, n_bias)
        # Zero offsets and no displacement: every frame starts as the base biases say.
        self.motion_out = nn.Linear(cfg.bias_hidden, 2) if cfg.motion else None
        with torch.no_grad():
            for layer in (self.bias_out, self.motion_out):
                if layer is not None:
                    layer.weight.zero_()
                    layer.bias.zero_()
        torch.random.set_rng_state(gen_state)
        freqs = torch.from_numpy(time_frequencies(cfg.n_freqs, cfg.max_freq, cfg.seed))
        self.register_buffer("freqs", freqs, persistent=False)
        base_scale, offset_scale = self._bias_scales()
        self.register_buffer("base_scale", base_scale, persistent=False)
        self.register_buffer("offset_scale", offset_scale, persistent=False)

    def time_features(self, t: torch.Tensor) -> torch.Tensor:
        """(F,) local frame times (0 = first frame of the GOP) -> (F, 2 * n_freqs + 1)."""
        phase = 2 * math.pi * t[:, None] * self.freqs[None, :]
        # A linear ramp lets biases drift steadily without spending high frequencies.
        ramp = (t[:, None] * self.cfg.max_freq / self.cfg.n_freqs)
        return torch.cat([torch.sin(phase), torch.cos(phase), ramp], dim=1)

    def frame_biases(self, t: torch.Tensor, tiles: slice | None = None) -> torch.Tensor:
        """Every layer's biases side by side, (tiles, F, sum of layer widths), for local
        times t of shape (F,); evaluate_tiles splits them by layer.

        Hidden layers' biases come multiplied by the activation's input scale, as the
        weights from scaled_weights do.
        """
        tiles = slice(None) if tiles is None else tiles
        lat = self.latents[tiles]
        feats = self.time_features(t)
        w = self.bias_in.weight
        n_time = feats.shape[1]
        # The first layer's time and latent parts apart: (tiles + frames) rows of products
        # instead of tiles x frames.
        pre = (feats @ w[:, :n_time].T)[None] + (lat @ w[:, n_time:].T + self.bias_in.bias)[:, None]
        h = torch.nn.functional.silu(pre)
        h = torch.nn.functional.silu(self.bias_mid(h))
        base = torch.cat(list(self.base_biases), dim=1)[tiles]
        table = base[:, None, :] * self.base_scale + self.bias_out(h) * self.offset_scale
        if self.motion_out is None:
            return table
        # (y, x) displacements (tiles, F, 2) through the scaled first-layer weights.
        shift = torch.bmm(self.motion_out(h) * MOTION_SCALE,
                          self.weights[0][tiles] * input_scale(self.cfg))
        first = self.cfg.width
        return torch.cat([table[..., :first] + shift, table[..., first:]], dim=2)

    def _bias_scales(self) -> tuple[torch.Tensor, torch.Tensor]:
        # Hidden pre-activations are multiplied by the input scale inside the activation,
        # so their offsets are stored on a 1/omega scale; the output's are in colour units.
        scale = input_scale(self.cfg)
        hidden = sum(self.dims[1:-1])
        base = torch.cat([torch.full((hidden,), scale), torch.ones(self.dims[-1])])
        offset = torch.cat([torch.full((hidden,), scale / self.cfg.omega), torch.ones(self.dims[-1])])
        return base, offset

    def scaled_weights(self, tiles: slice | None = None) -> list[torch.Tensor]:
        """Each layer's (tiles, in, out) weights, hidden ones times the activation's input scale.

        Scaling the small weights instead of every pre-activation saves a pass over the
        activations in both directions.
        """
        tiles = slice(None) if tiles is None else tiles
        scale = input_scale(self.cfg)
        last = len(self.weights) - 1
        return [w[tiles] if i == last else w[tiles] * scale for i, w in enumerate(self.weights)]

    def forward(self, coords: torch.Tensor, t: torch.Tensor, tiles: slice | None = None) -> torch.Tensor:
        """Evaluate tiles (all, or a slice of them) at tile-local coordinates.

        coords: (tiles, P, 2) local (y, x) in [-1, 1], the same points for every frame.
        t: (F,) local frame times. Returns (tiles, 3, F, P) RGB in about [0, 1].
        """
        return evaluate_tiles(coords, self.scaled_weights(tiles), self.frame_biases(t, tiles),
                              self.cfg)


def layer_widths(cfg: ModelConfig) -> list[int]:
    """Output widths of a model's layers, as its bias table holds them side by side."""
    return [cfg.width] * cfg.depth + [3]


def evaluate_tiles(coords: torch.Tensor, weights: list[torch.Tensor], biases: torch.Tensor,
                   cfg: ModelConfig) -> torch.Tensor:
    """The tile networks' output (tiles, 3, F, P) from scaled weights and the per-frame
    bias table of GOPModel.frame_biases.

    Without autograd the activations are computed in place, which halves the memory a
    render touches.
    """
    n_tiles, n_points = coords.shape[0], coords.shape[1]
    n_frames = biases.shape[1]
    biases = biases.split(layer_widths(cfg), dim=2)
    inplace = not torch.is_grad_enabled()
    last = len(weights) - 1
    h = coords
    for i, (w, b) in enumerate(zip(weights, biases)):
        if i == last:
            # Colours first: 3 rows by all points runs about 4x faster than all points by 3
            # columns, forward and for both gradients.
            out = torch.bmm(w.transpose(1, 2), h.transpose(1, 2))
            return out.view(n_tiles, -1, n_frames, n_points).add_(b.transpose(1, 2)[..., None])
        if i == 0:
            # Same points for every frame: one product, broadcast over frames.
            pre = torch.bmm(h, w)[:, None] + b[:, :, None, :]
        else:
            # A fresh product, so adding in place is safe under autograd too.
            pre = torch.bmm(h, w).view(n_tiles, n_frames, n_points, -1).add_(b[:, :, None, :])
        h = activate(pre, cfg, inplace).view(n_tiles, n_frames * n_points, -1)
    raise AssertionError("unreachable")
