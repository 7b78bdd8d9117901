"""The latent-grid picture model: latent grids at halving resolutions, their upsampling to
full size, a synthesis network with residual 3x3 refinement, and the auto-regressive
context model that prices the latents. A picture GOP of format version 5 is one such
frame (pipeline/pictures.py); bench/latent_gop.py extends it to GOPs with motion."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bitstream.latents import CONTEXT, SCALE_MAX, SCALE_MIN
from bitstream.models import fit_model, ideal_bits, pack_model

MIN_PROBABILITY = 2.0 ** -16


def laplace_cdf(x: torch.Tensor, mu: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    z = (x - mu) / b
    return 0.5 - 0.5 * torch.sign(z) * torch.expm1(-z.abs())


class LatentFrame(nn.Module):
    """One frame as latent grids, a synthesis network and a context model."""

    # The least probability the rate term gives a latent: no latent is priced above
    # -log2(floor) bits, and none below it feels the rate's gradient.
    floor = MIN_PROBABILITY
    # How many of the first grids a file holds elsewhere (a GOP's anchor key): priced and
    # coded by nothing here.
    uncoded = 0
    # How many first steps the fit leaves held_parameters() as they started.
    hold_steps = 0
    # The learning rate of field_parameters(), if not the networks'.
    field_lr: float | None = None

    def __init__(self, height: int, width: int, levels: int, hidden: int, arm_hidden: int,
                 depth: int = 2, refine_layers: int = 1, learned_upsampling: bool = False):
        super().__init__()
        self.size = (height, width)
        self.shape = (height, width, 3)
        # The distortion's weight per frame, None where all count alike: a GOP may weigh
        # the frames others are predicted from above those nothing reads.
        self.register_buffer("frame_weights", None, persistent=False)
        self.latents = nn.ParameterList(
            nn.Parameter(torch.zeros(1, 1, math.ceil(height / 2 ** k), math.ceil(width / 2 ** k)))
            for k in range(levels))
        # Upsampling of each grid to full size as two matrices (rows, columns): products
        # are far cheaper to differentiate than interpolate's own kernel. Bicubic in one
        # step, or 2x steps whose kernels are fitted (and coded) with the networks.
        self.upsampling = (LearnedUpsampling([g.shape[-2:] for g in self.latents])
                           if learned_upsampling else None)
        # Buffers, not plain attributes, so that .to() takes them to the fit's device.
        if self.upsampling is None:
            for k, g in enumerate(self.latents[1:], start=1):
                self.register_buffer(f"rows{k}", _bicubic(g.shape[-2], height), persistent=False)
                self.register_buffer(f"cols{k}", _bicubic(g.shape[-1], width), persistent=False)
        # depth hidden layers of the same width, then RGB.
        widths = [levels] + [hidden] * depth
        self.synthesis = nn.Sequential(
            *[m for a, b in zip(widths, widths[1:]) for m in (nn.Linear(a, b), nn.ReLU())],
            nn.Linear(widths[-1], 3))
        self.refine = Refinement(refine_layers)
        self.arm = nn.Sequential(nn.Linear(CONTEXT, arm_hidden), nn.ReLU(),
                                 nn.Linear(arm_hidden, arm_hidden), nn.ReLU(),
                                 nn.Linear(arm_hidden, 2))

    def networks(self) -> dict[str, nn.Module]:
        nets = {"synthesis": self.synthesis, "refine": self.refine, "arm": self.arm}
        if self.upsampling is not None:
            nets["upsampling"] = self.upsampling
        return nets

    def held_parameters(self) -> list[nn.Parameter]:
        """Parameters the fit holds still for its first hold_steps steps: none here."""
        return []

    def field_parameters(self) -> list[nn.Parameter]:
        """Motion fields, which field_lr may fit at a rate of their own: none here."""
        return []

    def network_bits(self, name: str, symbols: list[torch.Tensor]) -> float:
        """The named network's parameters, quantized (integers at their steps, a tensor
        each), in the coder's bits: one integer model for all of them, since a model per
        weight and bias costs more side information than it saves (carphone frame 10:
        networks 0.276 -> 0.229 bpp at the same PSNR, docs/experiments.md)."""
        return tensor_bits(torch.cat([q.reshape(-1) for q in symbols]))

    def coded_latents(self, mode: str, temperature: float = 0.0
                      ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The latents the synthesis sees and the ones the rate is priced on: with noise
        (``noise``), soft-rounded around noise (``soft``, at a temperature), rounded with
        a straight-through gradient (``ste``), or rounded (``round``)."""
        seen, priced = [], []
        for i, y in enumerate(self.latents):
            if i < self.uncoded or not y.requires_grad:
                # Held elsewhere as coded, or held as coded here (a GOP's frozen keys):
                # integers already, and exact for a decoder.
                seen.append(y)
                priced.append(y)
            elif mode in ("noise", "soft"):
                u = torch.empty_like(y).uniform_(-0.5, 0.5)
                if mode == "noise":
                    seen.append(y + u)
                    priced.append(seen[-1])
                else:
                    priced.append(soft_round(y, temperature) + u)
                    seen.append(soft_round(priced[-1], temperature))
            elif mode == "ste":
                seen.append(y + (torch.round(y) - y).detach())
                priced.append(seen[-1])
            else:
                seen.append(torch.round(y))
                priced.append(seen[-1])
        return seen, priced

    def upsampled(self, latents: list[torch.Tensor]) -> torch.Tensor:
        """One frame's grids at full size, stacked: (H, W, levels). The first grid is at
        full size already: its identity products were two thirds of the upsampling's
        time at 320x240."""
        matrices = (self.upsampling.matrices() if self.upsampling is not None else
                    [(getattr(self, f"rows{k}"), getattr(self, f"cols{k}"))
                     for k in range(1, len(latents))])
        # Stacked level-major and seen through a permutation, so that pixels() can read
        # the levels as rows of a contiguous matrix.
        return torch.stack([latents[0][0, 0]] + [rows @ y[0, 0] @ cols.T for y, (rows, cols)
                                                 in zip(latents[1:], matrices)]).permute(1, 2, 0)

    def pixels(self, stack: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """(H, W, 3) RGB in [0, 1], unclipped, from upsampled latents (H, W, levels); bias,
        if given, is added to the synthesis' first layer."""
        # The layers run on (channels, pixels) matrices: with pixels as the rows, the
        # first layer's weight gradient was a product with an inner dimension of one
        # frame's pixels and 7 columns, eight times slower on CPU.
        h, w, levels = stack.shape
        x = stack.permute(2, 0, 1).reshape(levels, h * w)
        for i, layer in enumerate(self.synthesis):
            if isinstance(layer, nn.Linear):
                x = torch.addmm(layer.bias[:, None], layer.weight, x)
                if i == 0 and bias is not None:
                    x = x + bias[:, None]
            else:
                x = layer(x)
        return self.refine(x.reshape(1, 3, h, w))[0].permute(1, 2, 0)

    def rgb(self, latents: list[torch.Tensor]) -> torch.Tensor:
        """(H, W, 3) RGB in [0, 1], unclipped."""
        return self.pixels(self.upsampled(latents))

    def laws(self, latents: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Every latent coded here, flat, and the context model's (mean, log2 scale) for
        it a row, unclamped; the uncoded grids are left out before the network runs."""
        skip = sum(y.numel() for y in latents[:self.uncoded])
        flat = torch.cat([y.reshape(-1) for y in latents])[skip:]
        return flat, self.arm(self.contexts(latents)[skip:])

    def laplace(self, latents: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """Every latent coded here, flat, with the mean and scale the context model
        gives it."""
        flat, laws = self.laws(latents)
        mu, log2_b = laws.unbind(dim=1)
        # The scale as the fixed-point coder takes it: log2, in 2**-7 .. 2**7.
        return flat, mu, torch.exp2(log2_b.clamp(min=SCALE_MIN / 4, max=SCALE_MAX / 4))

    def contexts(self, latents: list[torch.Tensor]) -> torch.Tensor:
        """Every latent's causal neighbours, (latents, CONTEXT), in bitstream.latents'
        order (the first 12 positions of a 3x5 window ending at the latent): every grid
        in one batch, since the context model is shared by the grids."""
        return torch.cat([F.unfold(F.pad(y, (2, 2, 2, 0)), (3, 5))[0, :CONTEXT].T
                          for y in latents])

    def references(self, grids: list[np.ndarray]) -> list[np.ndarray | None]:
        """The reference grid bitstream.latents gives the context model for each grid:
        none for a single frame."""
        return [None] * len(grids)

    def coded_grids(self, latents: list[torch.Tensor]
                    ) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
        """The rounded latents a file codes here, as integer grids, and each one's
        reference grid."""
        grids = [y[0, 0].numpy().astype(np.int32) for y in latents]
        return grids[self.uncoded:], self.references(grids)[self.uncoded:]

    def side_bits(self) -> torch.Tensor | float:
        """What the fit prices beside the latents, in bits: nothing for a frame."""
        return 0.0

    def bits(self, latents: list[torch.Tensor]) -> torch.Tensor:
        """Ideal code length of the latents under the context model, in bits."""
        return self.latent_bits(latents).sum()

    def latent_bits(self, latents: list[torch.Tensor]) -> torch.Tensor:
        """Each latent's ideal code length under the context model, flat, in bits (none
        for the uncoded grids', kept as zeros so that every latent keeps its place)."""
        flat, mu, b = self.laplace(latents)
        p = laplace_cdf(flat + 0.5, mu, b) - laplace_cdf(flat - 0.5, mu, b)
        bits = -torch.log2(p.clamp(min=self.floor))
        return F.pad(bits, (sum(y.numel() for y in latents) - bits.numel(), 0))


def tensor_bits(symbols: torch.Tensor) -> float:
    """A quantized tensor's cost in the codec's coder: its integer model's ideal code
    length plus the model's parameters."""
    model, counts = fit_model(symbols.numpy().astype(np.int32))
    return ideal_bits(model, counts) + 8 * len(pack_model(model))


class Refinement(nn.Module):
    """3x3 convolutions over the synthesis' RGB, each added to its input, with a ReLU
    after every one but the last (Cool-chic's residual layers): the only place where a
    pixel sees its neighbours. They start at zero, as the identity."""

    def __init__(self, layers: int):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(3, 3, 3, padding=1, padding_mode="replicate")
                                   for _ in range(layers))
        for conv in self.convs:
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, conv in enumerate(self.convs):
            x = x + conv(x)
            if i < len(self.convs) - 1:
                x = F.relu(x)
        return x


# Bicubic interpolation's weights (a = -0.75) at distances 1/4, 3/4, 5/4 and 7/4: the
# taps of a 2x upsampling, where every new sample lies a quarter of a cell off an old one.
BICUBIC_2X = (0.87890625, 0.26171875, -0.10546875, -0.03515625)


class LearnedUpsampling(nn.Module):
    """Grids brought to full size by successive 2x steps, each with a symmetric 8-tap
    kernel of its own (four free taps, starting as bicubic), as Cool-chic learns its
    upsampling: the step from level s + 1 to level s is shared by every coarser grid."""

    def __init__(self, shapes: list[tuple[int, int]]):
        super().__init__()
        self.shapes = [tuple(s) for s in shapes]
        self.taps = nn.Parameter(torch.tensor([BICUBIC_2X] * (len(shapes) - 1)))
        # For each step and axis, the 0/1 matrices that place each tap.
        # (buffers, so that .to() takes them to the fit's device)
        for k, (fine, coarse) in enumerate(zip(self.shapes, self.shapes[1:])):
            for axis, (small, big) in enumerate(zip(coarse, fine)):
                self.register_buffer(f"places{k}_{axis}", _tap_places(small, big),
                                     persistent=False)

    def matrices(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each coarser level's (rows, columns) matrices to full size (the first level's
        are the identity)."""
        steps = [tuple(torch.einsum("t,tij->ij", taps, getattr(self, f"places{k}_{axis}"))
                       for axis in range(2))
                 for k, taps in enumerate(self.taps)]
        out = [steps[0]]
        for rows, cols in steps[1:]:
            out.append((out[-1][0] @ rows, out[-1][1] @ cols))
        return out


def _tap_places(n: int, size: int) -> torch.Tensor:
    """(4, size, n): where each of the four taps of a 2x step from n samples lands, the
    output cut to size and the input's edges repeated."""
    places = torch.zeros(4, size, n)
    for i in range(size):
        m = i // 2
        # Offsets of the taps at distances 1/4, 3/4, 5/4, 7/4 from output i.
        offsets = (0, -1, 1, -2) if i % 2 == 0 else (0, 1, -1, 2)
        for t, d in enumerate(offsets):
            places[t, i, min(max(m + d, 0), n - 1)] += 1
    return places


def _bicubic(n: int, size: int) -> torch.Tensor:
    """The (size, n) matrix of bicubic interpolation from n samples to size (as
    F.interpolate has it): column j is the interpolated unit vector j."""
    if n == size:
        return torch.eye(n)
    eye = torch.eye(n)[None, None]
    return F.interpolate(eye, size=(size, n), mode="bicubic", align_corners=False)[0, 0]


def soft_round(x: torch.Tensor, temperature: float) -> torch.Tensor:
    """A differentiable stand-in for rounding that tends to it as temperature -> 0
    (Agustsson and Theis, 2020)."""
    centre = torch.floor(x) + 0.5
    return centre + 0.5 * torch.tanh((x - centre) / temperature) / math.tanh(0.5 / temperature)
