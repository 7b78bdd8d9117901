"""Probe: latent grids for a group of pictures, with networks shared by its frames.

The single-frame probe (`latent_intra.py`) pays for its networks in every frame and codes
every frame's latents as if it were alone. ActINR's way is a model per GOP: the synthesis
and the context model are fitted to all the GOP's frames and coded once, each frame keeps
its own latent pyramid, and a small time-conditioned bias network gives each frame its
own biases in the synthesis (ActINR's bias modulation). The context model may also read
the previous frame's latents around the same place (a 3x3 window of the same grid, and a
flag saying whether there is a previous frame), the way C3 conditions on the frame
before. And only every N-th frame may keep latents, the frames between interpolating them
in time (a 3D grid coarse in t, which is also what lets a decoder ask for any time), or
sample the keys' latents displaced by a coarse motion field of their own (+warp), to
which they may add a latent pyramid of their own, a correction mostly zero, before the
synthesis (+res) or after it as pixels (+pres, as Cool-chic's video codes a residual
after motion); a later key may hold only a residual over the key before moved by a field
of its own (+kres). Or prediction may happen on decoded pictures, as a classic codec's
does (+px): a later key is the key before as decoded, moved by its field, plus pixels
from a residual pyramid (a P frame), and a frame between keys blends the keys' pictures
moved by its fields, plus its own correction (a B frame). A GOP may also take an earlier
fit's networks as coded (--networks), and its first key may read an earlier GOP's last
key as context (--key-reference) or be that key itself (--anchor: the GOP starts on the
frame the earlier one ended on), as parts of a scene coded as one chain. This probe
measures what each of these buys over the same frames coded one at a time, and x264
medium at its default keyint on the same frames, all scored as whole clips are (mean
PSNR-YUV420 over the frames, bits over all of them).

    python bench/latent_gop.py --clip carphone --frames 8 --out /tmp/gop

Nothing here is part of the codec or its format yet; see docs/experiments.md.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from latent_intra import CLIPS, add_fit_arguments, cropped, fit_frames, render, save_model, scored_point  # noqa: E402
from latent_model import CONTEXT, LatentFrame  # noqa: E402
from latent_motion import field_bits, residuals  # noqa: E402
from motion_search import block_search  # noqa: E402

from actinr_codec.media.videoio import read_video  # noqa: E402
from bitstream.latents import REFERENCE  # noqa: E402
from evaluation.baselines import code, codec_settings  # noqa: E402
from evaluation.bdrate import bd_delta  # noqa: E402
from evaluation.quality import BT601, psnr_yuv420, yuv420_planes  # noqa: E402

# Sine and cosine of the frame time at these multiples of pi: the bias network's input.
TIME_FREQUENCIES = (1, 2, 4, 8)
# A frame between key frames warps their latents by a displacement field held on a grid
# of one vector per FLOW_CELL x FLOW_CELL pixels (unless +cellN), bilinearly interpolated.
FLOW_CELL = 32
# The step at which the fit prices motion fields (+fr): the one the networks' step search
# chose for them, a sixth of a pixel on carphone (docs/experiments.md, eighth probe).
FLOW_STEP = 2.0 ** -9
# reference_owner's word for "the previous GOP's last key".
PREVIOUS_GOP = -2
# The prediction a fit with +mc prices its fields' residuals under (a file takes whichever
# codes them best): the frame before's field, the only one that paid on carphone's fields
# fitted without it (docs/experiments.md, "eleventh probe").
MOTION_PREDICTOR = "temporal"
# The hidden width of the head that turns residual pyramids into pixels (+px).
PIXEL_HEAD = 16
# Block search (+me): how far it looks, in pixels, and what it charges a block's mean
# squared error (8-bit luma) per pixel of displacement, so that flat blocks stay still.
SEARCH_RADIUS = 16
SEARCH_PENALTY = 0.5


class ChannelsLastConv(nn.Conv2d):
    """A 3x3 convolution without bias over a picture held (H, W, channels), edges
    replicated."""

    def __init__(self, channels: int, out: int):
        super().__init__(channels, out, 3, padding=1, padding_mode="replicate", bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(2, 0, 1)[None])[0].permute(1, 2, 0)


class LatentGOP(LatentFrame):
    """A GOP as one latent pyramid per frame over shared networks."""

    def __init__(self, frames: int, height: int, width: int, levels: int, hidden: int,
                 arm_hidden: int, temporal: bool, biases: bool, key_every: int = 1,
                 warp: bool = False, residual: str | None = None,
                 residual_reference: bool = False, key_warp: bool = False,
                 flow_rate: bool = False, key_context: bool = False, anchored: bool = False,
                 pixel: bool = False, linear_motion: bool = False, motion_coded: bool = False,
                 crossing: bool = False, key_weight: float = 1.0, bicubic: bool = False,
                 flow_cell: int = FLOW_CELL, key_cell: int | None = None,
                 fine_cell: int | None = None,
                 hierarchical: bool = False, block_motion: bool = False,
                 key_block_motion: bool = False,
                 spatial_head: bool = False, dense_motion: bool = False,
                 coded: int | None = None, **architecture):
        super().__init__(height, width, levels, hidden, arm_hidden, **architecture)
        self.frames, self.levels, self.temporal = frames, levels, temporal
        self.shape = (frames, height, width, 3)
        # Frames with latents of their own (every key_every-th and the last); the frames
        # between take the latents linearly interpolated in time, as a 3D grid coarse in t,
        # or (warp) each key's latents displaced by a coarse field of the frame's own,
        # then blended in time: motion carried instead of cross-faded.
        # With coded (lookahead), frames from coded on are fitted but not coded: keys go
        # on from the last coded frame as the next GOP will place them, so that the GOP's
        # last key is fitted as the reference it will be (truncated() then keeps the
        # coded frames alone).
        coded = coded or frames
        self.keys = sorted({*range(0, coded, key_every), coded - 1,
                            *range(coded - 1, frames, key_every), frames - 1})
        self.between = [f for f in range(frames) if f not in self.keys]
        # The two frames each frame between is predicted from (pair_of), and an order in
        # which they come before it: the keys around it; or (hierarchical, with pixel)
        # the middle frame of each key interval from its keys, the middle of each half
        # from the half's ends and so on, as x264's B-pyramid orders frames, so that
        # prediction spans 1 to 7 frames instead of up to 13.
        self.pair_of, self.order = {}, list(range(frames))
        if hierarchical:
            if not pixel or linear_motion:
                raise ValueError("hierarchical prediction needs pixel, without linear_motion")
            self.order = list(self.keys)
            for before, after in zip(self.keys, self.keys[1:]):
                self._split(before, after)
        else:
            for f in self.between:
                self.pair_of[f] = (max(k for k in self.keys if k < f),
                                   min(k for k in self.keys if k > f))
        # With key_weight, the keys' errors count that many times a frame between's: the
        # frames between and the next GOP are predicted from them, as x264's macroblock
        # tree spends more on what later frames reference.
        if key_weight != 1.0:
            self.frame_weights = torch.ones(frames)
            self.frame_weights[self.keys] = key_weight
        self.flow, self.fine_flow, self.crossing = None, None, crossing
        # How a warp reads between pixels: bilinearly, or (bicubic) with Keys' cubic
        # kernel (a = -0.75), which blurs a moved picture less, as x264's 6-tap half-pel
        # filter does against a bilinear one.
        self.sampling = "bicubic" if bicubic else "bilinear"
        # How a field's vectors spread over the pixels: bilinearly between cell centres,
        # a smooth motion, or (block_motion) each cell's vector over its whole block, as a
        # classic codec's motion is. Carphone's head moves against a still car: a smooth
        # field blurs the edge between them, and a 16 x 16 block search predicts frame 7
        # from frame 0 at 31.8 dB where its vectors spread smoothly give 30.3. Fitted, it
        # lost (+13.7 % at lambda 1e-3, with +me): the frames between, blending two
        # block-moved pictures, needed half again the corrections (docs/experiments.md,
        # "fourteenth probe").
        self.block_motion = block_motion
        # With key_block_motion, the keys' fields alone move blocks: a P key is one
        # picture moved, where +blk's blends of two block-moved pictures lost. It lost too
        # (+20.8 % on 16-pixel cells, +33.4 % on 8, with +kme): the fit's smooth fields
        # already predict the keys as well as a block search (docs/experiments.md,
        # "fifteenth probe").
        self.key_block_motion = key_block_motion or block_motion
        if warp and self.between:
            cells = (math.ceil(height / flow_cell), math.ceil(width / flow_cell))
            # Per frame between keys, from the key before and the one after: (dx, dy) in
            # grid_sample's units (2 / width, 2 / height a pixel), starting still. With
            # crossing, one field a frame instead: the motion across the two keys' interval
            # of what the frame shows, each key's share of it set by the frame's place in
            # time (content moving at a steady speed through the frame), so that a frame
            # codes half the values, and a steady motion the same field in every frame,
            # which +mc's temporal prediction codes nearly free.
            self.flow = nn.ParameterList([nn.Parameter(torch.zeros(
                len(self.between), 1 if crossing else 2, 2, *cells))])
            # With fine_cell, a second grid of vectors on finer cells is added to that
            # one, its values priced as the coarse ones are: meant to split a cell only
            # where finer motion pays, as x264 chooses its partitions (one fine grid for
            # every frame, +cellN, doubled the fields' cost at lower rates). It lost
            # (+23.5 % at lambda 1e-3): priced per value, a fine vector held steady over
            # a key interval looks free to the fit, and the mostly-zero grids cost more
            # once coded than the coarse fields and the keys' together
            # (docs/experiments.md, "fourteenth probe").
            if fine_cell:
                if crossing or linear_motion:
                    raise ValueError("+fine adds to a frame's own two fields: not with "
                                     "+cross or +lin")
                fine = (math.ceil(height / fine_cell), math.ceil(width / fine_cell))
                self.fine_flow = nn.Parameter(torch.zeros(len(self.between), 2, 2, *fine))
            ys = (torch.arange(height) + 0.5) / height * 2 - 1
            xs = (torch.arange(width) + 0.5) / width * 2 - 1
            self.register_buffer("identity", torch.stack(torch.meshgrid(xs, ys, indexing="xy"),
                                                         dim=-1)[None], persistent=False)
            # A pixel's width and height in grid_sample's units.
            self.register_buffer("pixel_size", torch.tensor([2 / width, 2 / height]),
                                 persistent=False)
        # With a residual, every frame between keys also keeps a pyramid of its own: what
        # the warp cannot carry (new content, occlusions), at a price near zero where the
        # context model learns that most of it stays zero (as Cool-chic's residual latents
        # do). It is added to the warped latents before the synthesis ("latent"), or
        # turned into pixels by a linear map of its own and added to the synthesis' output
        # ("pixel"), where a zero correction cannot interact with the nonlinear synthesis.
        # With key_warp, a key after the first holds only a residual: its latents are the
        # key before's (as that one's own residual made them) displaced by a coarse field
        # of the key's own, plus the residual, as a predicted frame of a classic codec
        # adds a residual to a motion-compensated one. The field is in grid_sample's
        # units, so one field moves every level of the pyramid alike. With key_context,
        # the field moves the key before only where the context model reads it, rounded
        # to integers as a decoder would warp it: the key is coded whole, its reference
        # aligned with it (as a classic codec's motion-compensated prediction, but as
        # context, since +kres measured a warped prediction of latents to be poor).
        # With pixel, prediction happens on decoded pictures instead, as a classic codec's
        # does: a later key is the key before as decoded (8-bit), moved by a field of its
        # own, plus pixels from a residual pyramid of its own (a P frame); a frame between
        # keys blends the two keys' pictures, each moved by its field, plus its own
        # correction (a B frame). The synthesis then draws only the GOP's first key, and
        # one small head (pixel_head) turns every residual pyramid into pixels.
        self.pixel = pixel
        self.key_warp, self.key_context = key_warp, key_context
        self.key_flow = None
        if (key_warp or key_context or pixel) and len(self.keys) > 1:
            # A key's field may be finer than the frames between's (key_cell): one field
            # per key interval, so finer motion there costs little, and the key's
            # prediction from 7-14 frames back is where coarse motion loses most.
            key_cell = key_cell or flow_cell
            if linear_motion and key_cell != flow_cell:
                raise ValueError("+lin adds the key's field to the frames between's: "
                                 "their cells must match")
            cells = (math.ceil(height / key_cell), math.ceil(width / key_cell))
            self.key_flow = nn.Parameter(torch.zeros(len(self.keys) - 1, 2, *cells))
            for k, y in enumerate(self.latents):
                gh, gw = y.shape[-2:]
                ys = (torch.arange(gh) + 0.5) / gh * 2 - 1
                xs = (torch.arange(gw) + 0.5) / gw * 2 - 1
                self.register_buffer(f"key_identity{k}", torch.stack(
                    torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None], persistent=False)
        # With linear_motion (and a key's field, as pixel gives), a frame between keys
        # starts from the motion its place in time implies, its fields holding only the
        # departures: ActINR's way of deriving a frame's change from its time. It saved
        # nothing on carphone 15-28 (+px): the fields there are not the key's motion
        # scaled (docs/experiments.md, "tenth probe").
        self.linear_motion = linear_motion and self.flow is not None and self.key_flow is not None
        self.flow_rate = flow_rate and (self.flow is not None or self.key_flow is not None)
        # With motion_coded, a file codes each field's values less their predictions
        # from values coded before them (latent_motion.py), and the fit prices those.
        self.motion_coded = motion_coded
        self.first_reference = None
        self.residual = residual if self.flow is not None else None
        self.residual_head = (nn.Linear(levels, 3, bias=False)
                              if self.residual == "pixel" and not pixel else None)
        # Without biases, so that a residual pyramid of zeros adds nothing; its last layer
        # starts at zero, so the GOP starts as its predictions alone. With spatial_head,
        # that last layer reads a 3x3 window: a correction is texture, which one pixel's
        # latents draw poorly (Cool-chic's synthesis ends in 3x3 convolutions for this).
        # With dense_motion, the head also draws each frame a displacement per pixel (in
        # pixels, two for a frame between keys, one for a later key) added to its coarse
        # fields: motion finer than a cell where the latents pay for it, as Cool-chic's
        # video decoder draws its motion from latents.
        self.pixel_head, self.dense_motion = None, dense_motion and pixel
        if pixel:
            outputs = 3 + (4 if self.dense_motion else 0)
            last = (ChannelsLastConv(PIXEL_HEAD, outputs) if spatial_head
                    else nn.Linear(PIXEL_HEAD, outputs, bias=False))
            self.pixel_head = nn.Sequential(nn.Linear(levels, PIXEL_HEAD, bias=False), nn.ReLU(),
                                            last)
            nn.init.zeros_(self.pixel_head[2].weight)
        self.residual_reference = residual_reference and self.residual is not None
        owners = len(self.keys) + (len(self.between) if self.residual else 0)
        self.latents = nn.ParameterList(
            nn.Parameter(torch.zeros_like(y)) for _ in range(owners) for y in self.latents)
        # With anchored, the first key is the previous GOP's last key as coded (set_anchor):
        # the GOP starts on a frame a decoder holds already, frozen and coded nowhere here,
        # as a classic codec's GOPs share their anchor frames.
        if anchored:
            for y in self.latents[:levels]:
                y.requires_grad_(False)
            self.uncoded = levels
            if pixel:
                # The previous GOP's last frame as decoded: pixel prediction's anchor
                # is a picture (set_anchor_picture), its latents unused.
                self.register_buffer("anchor_picture", torch.zeros(height, width, 3))
        if temporal:
            self.arm[0] = nn.Linear(CONTEXT + REFERENCE, arm_hidden)
        # The bias network gives the synthesis' first layer a bias per frame; it starts
        # at zero, so a GOP begins as frames sharing one synthesis.
        self.bias_net = nn.Linear(2 * len(TIME_FREQUENCIES), hidden) if biases else None
        if biases:
            nn.init.zeros_(self.bias_net.weight)
            nn.init.zeros_(self.bias_net.bias)

    def _split(self, before: int, after: int) -> None:
        """Order the frames strictly between two coded ones, the middle first."""
        if after - before < 2:
            return
        middle = (before + after) // 2
        self.pair_of[middle] = (before, after)
        self.order.append(middle)
        self._split(before, middle)
        self._split(middle, after)

    def set_first_reference(self, grids: list[torch.Tensor]) -> None:
        """Give the first key a reference as later keys have one: the previous GOP's last
        key as coded, (1, 1, h, w) a level, so that a scene's GOPs chain their keys."""
        self.first_reference = nn.ParameterList(
            nn.Parameter(g.to(self.latents[0]), requires_grad=False) for g in grids)

    def set_anchor(self, grids: list[torch.Tensor]) -> None:
        """Give an anchored GOP its first key: the previous GOP's last key as coded,
        (1, 1, h, w) a level."""
        for y, g in zip(self.latents[:self.levels], grids):
            y.data.copy_(g)

    def set_anchor_picture(self, rgb: np.ndarray) -> None:
        """Give a GOP anchored with pixel its first key: the previous GOP's last frame
        as decoded, (H, W, 3) uint8."""
        self.anchor_picture.copy_(torch.from_numpy(rgb).float() / 255)

    def side_bits(self) -> torch.Tensor | float:
        """With flow_rate, the motion fields priced in the fit as an Exp-Golomb code of
        their values at FLOW_STEP would cost (2 log2(1 + |v| / step) + 1 bits, smoothed):
        unpriced, a field takes whatever motion lowers the distortion at all, and cost
        5.8 bits a value once coded. The keys' fields are priced when they move pictures
        (pixel); as +kctx's context alignment they were not, and stay so. With
        motion_coded, what is priced is what MOTION_PREDICTOR misses of each value."""
        if not self.flow_rate:
            return 0.0
        fields = [self.flow[0]] if self.flow is not None else []
        if self.fine_flow is not None:
            fields.append(self.fine_flow)
        if self.pixel and self.key_flow is not None:
            fields.append(self.key_flow)
        if self.motion_coded:
            fields = [residuals(v, MOTION_PREDICTOR) for v in fields]
        return sum((2 * torch.log2(1 + v.abs() / FLOW_STEP) + 1).sum() for v in fields)

    def network_bits(self, name: str, symbols: list[torch.Tensor]) -> float:
        """With motion_coded, the fields as latent_motion.py codes them."""
        if self.motion_coded and name in ("flow", "key_flow", "fine_flow"):
            return field_bits(symbols[0])[0]
        return super().network_bits(name, symbols)

    def held_parameters(self) -> list[nn.Parameter]:
        """The pixel head's first layer (--hold-head): started at random and fitted at
        once, it stops reading the full-size level in many fits (weights 0.00-0.15
        there, 0.5-1.3 on the others), the noise on that level's many latents costing
        more distortion early on than the latents yet draw."""
        return [self.pixel_head[0].weight] if self.pixel_head is not None else []

    def networks(self) -> dict[str, nn.Module]:
        nets = super().networks()
        if self.bias_net is not None:
            nets["bias_net"] = self.bias_net
        if self.flow is not None:
            nets["flow"] = self.flow
        if self.residual_head is not None:
            nets["residual_head"] = self.residual_head
        if self.pixel_head is not None:
            nets["pixel_head"] = self.pixel_head
        if self.key_flow is not None:
            nets["key_flow"] = nn.ParameterList([self.key_flow])
        if self.fine_flow is not None:
            nets["fine_flow"] = nn.ParameterList([self.fine_flow])
        if self.pixel and self.uncoded:
            # An anchored GOP predicting pictures draws none: its first key is a picture
            # a decoder holds, the rest predictions and residuals.
            for name in ("synthesis", "refine", "upsampling", "bias_net"):
                nets.pop(name, None)
        return nets

    def owner_latents(self, latents: list[torch.Tensor], k: int) -> list[torch.Tensor]:
        """The k-th pyramid: the keys' first, then the corrections of the frames between."""
        return latents[k * self.levels:(k + 1) * self.levels]

    def key_latents(self, latents: list[torch.Tensor], k: int,
                    cache: dict[int, list[torch.Tensor]] | None = None) -> list[torch.Tensor]:
        """The k-th key's pyramid as the synthesis sees it: its own latents, or with
        key_warp (after the first key) the key before's displaced by k's field plus its
        own as a residual; ``cache`` keeps the keys' pyramids over one rendering."""
        cache = {} if cache is None else cache
        if k not in cache:
            own = self.owner_latents(latents, k)
            if not self.key_warp or k == 0:
                cache[k] = own
            else:
                before = self.key_latents(latents, k - 1, cache)
                cache[k] = [self._moved(y, self.key_flow[k - 1], level) + r
                            for level, (y, r) in enumerate(zip(before, own))]
        return cache[k]

    def _moved(self, grid: torch.Tensor, field: torch.Tensor, level: int,
                fine: torch.Tensor | None = None) -> torch.Tensor:
        """A (1, c, h, w) grid displaced by a coarse field (2, cells) in grid_sample's units,
        plus (dense_motion) a displacement per pixel, (h, w, 2) in pixels."""
        identity = getattr(self, f"key_identity{level}")
        dense = self._spread(field[None], grid.shape[-2:], self.key_block_motion
                             )[0].permute(1, 2, 0)
        if fine is not None:
            dense = dense + fine * self.pixel_size
        return F.grid_sample(grid, identity + dense[None], mode=self.sampling,
                             padding_mode="border", align_corners=False)

    def frame_latents(self, latents: list[torch.Tensor], f: int) -> list[torch.Tensor]:
        if f in self.keys:
            return self.key_latents(latents, self.keys.index(f))
        before, after = self.pair_of[f]
        a = (f - before) / (after - before)
        return [(1 - a) * y0 + a * y1
                for y0, y1 in zip(self.key_latents(latents, self.keys.index(before)),
                                  self.key_latents(latents, self.keys.index(after)))]

    def warped_stack(self, latents: list[torch.Tensor], f: int,
                     keys: dict[int, torch.Tensor], cache: dict[int, object],
                     done: dict[int, torch.Tensor], fine: torch.Tensor | None = None
                     ) -> torch.Tensor:
        """Frame f's upsampled latents (H, W, levels), or with pixel its picture
        (H, W, 3) before its correction: a key's own, or the two frames f is predicted
        from (pair_of) each displaced by f's field and blended by f's place between
        them; ``keys`` caches the keys' upsampled latents (decoded pictures) over one
        rendering, ``cache`` their grids, ``done`` the frames between rendered so far;
        ``fine`` (H, W, 4), pixels, moves each reference further, pixel by pixel."""
        if f in self.keys:
            return self._reference(latents, f, keys, cache, done)
        before, after = self.pair_of[f]
        a = (f - before) / (after - before)
        field = self.flow[0][self.between.index(f)]  # (2 references, 2, cells), or (1, ...)
        if self.crossing:
            # Content at x here sits at x + a D in the frame before and x + (a - 1) D in
            # the frame after, D being where the one before holds what the one after shows.
            field = torch.cat([a * field, (a - 1) * field])
        if self.linear_motion:
            # The key after's field K says where in the key before its content was: at
            # f's place a, that content is a K back towards the key before and (1 - a) K
            # on towards the key after. f's own fields are what departs from that.
            moved = self.key_flow[self.keys.index(after) - 1]
            field = field + torch.stack([a * moved, (a - 1) * moved])
        dense = self._spread(field, self.size, self.block_motion).permute(0, 2, 3, 1)
        if self.fine_flow is not None:
            dense = dense + self._spread(self.fine_flow[self.between.index(f)], self.size,
                                         self.block_motion).permute(0, 2, 3, 1)
        if fine is not None:
            dense = dense + fine.reshape(*self.size, 2, 2).permute(2, 0, 1, 3) * self.pixel_size
        warped = [F.grid_sample(self._reference(latents, x, keys, cache, done)
                                .permute(2, 0, 1)[None], self.identity + dense[i][None],
                                mode=self.sampling, padding_mode="border", align_corners=False)
                  [0].permute(1, 2, 0) for i, x in enumerate((before, after))]
        blended = (1 - a) * warped[0] + a * warped[1]
        if self.residual != "latent":
            return blended
        return blended + self.upsampled(self.correction(latents, f))

    @staticmethod
    def _spread(field: torch.Tensor, size: tuple[int, int], block: bool) -> torch.Tensor:
        """Fields (n, 2, cells) upsampled to (n, 2, *size): bilinearly, or (block) each
        cell's vector over its block."""
        if block:
            return F.interpolate(field, size=size, mode="nearest")
        return F.interpolate(field, size=size, mode="bilinear", align_corners=False)

    def _reference(self, latents: list[torch.Tensor], x: int, keys: dict[int, torch.Tensor],
                   cache: dict[int, object], done: dict[int, torch.Tensor]) -> torch.Tensor:
        """What frame x lends the frames predicted from it: a key's upsampled latents
        or decoded picture, or (hierarchical) a frame between's decoded picture."""
        if x not in self.keys:
            return decoded(done[x])
        k = self.keys.index(x)
        if k not in keys:
            keys[k] = (self.key_picture(latents, k, keys) if self.pixel else
                       self.upsampled(self.key_latents(latents, k, cache)))
        return keys[k]

    def key_picture(self, latents: list[torch.Tensor], k: int,
                    pictures: dict[int, torch.Tensor]) -> torch.Tensor:
        """With pixel, the k-th key's picture (H, W, 3) as a decoder holds it (clamped
        and rounded to 8 bits, straight through in the fit): the first drawn by the
        synthesis (or the anchor), a later one the key before moved by k's field, plus
        k's residual; ``pictures`` caches them over one rendering."""
        if k not in pictures:
            if k == 0:
                picture = (self.anchor_picture if self.uncoded else
                           self.pixels(self.upsampled(self.owner_latents(latents, 0)),
                                       self.frame_bias(self.keys[0])))
            else:
                before = self.key_picture(latents, k - 1, pictures)
                own = self.pixel_head(self.upsampled(self.owner_latents(latents, k)))
                fine = own[..., 3:5] if self.dense_motion else None
                moved = self._moved(before.permute(2, 0, 1)[None], self.key_flow[k - 1], 0, fine)
                picture = moved[0].permute(1, 2, 0) + own[..., :3]
            pictures[k] = decoded(picture)
        return pictures[k]

    def frame_bias(self, f: int) -> torch.Tensor | None:
        """Frame f's bias for the synthesis' first layer, from its time."""
        if self.bias_net is None:
            return None
        weight = self.bias_net.weight
        angles = torch.tensor(TIME_FREQUENCIES, dtype=weight.dtype, device=weight.device
                              ) * (math.pi * f / max(1, self.frames - 1))
        return self.bias_net(torch.cat([angles.sin(), angles.cos()]))

    def correction(self, latents: list[torch.Tensor], f: int) -> list[torch.Tensor]:
        """The residual pyramid of f, a frame between keys."""
        return self.owner_latents(latents, len(self.keys) + self.between.index(f))

    def rgb(self, latents: list[torch.Tensor]) -> torch.Tensor:
        """(frames, H, W, 3) RGB in [0, 1], unclipped (with pixel, keys as decoded)."""
        out, keys, cache = {}, {}, {}
        for f in self.order:
            # A frame between's correction, drawn by its head: pixels, and with
            # dense_motion its fine motion after them.
            drawn = None
            if self.residual == "pixel" and f in self.between:
                head = self.pixel_head if self.pixel else self.residual_head
                drawn = head(self.upsampled(self.correction(latents, f)))
            fine = drawn[..., 3:] if self.dense_motion and drawn is not None else None
            if self.pixel:
                out[f] = self.warped_stack(latents, f, keys, cache, out, fine)
            else:
                stack = (self.warped_stack(latents, f, keys, cache, out) if self.flow is not None
                         else self.upsampled(self.frame_latents(latents, f)))
                out[f] = self.pixels(stack, self.frame_bias(f))
            if drawn is not None:
                out[f] = out[f] + drawn[..., :3]
        return torch.stack([out[f] for f in range(self.frames)])

    def reference_owner(self, owner: int) -> int | None:
        """Whose grids the context model reads beside owner's (keys first, then the
        frames between with latents of their own): the key before a key; with
        +resref, the previous frame's own latents for a frame between keys, a grid of
        zeros (-1) for the first of them, which still says "a reference exists", so that
        the context model can tell these sparse corrections from a key's latents; for the
        first key, the previous GOP's last key (PREVIOUS_GOP) once set_first_reference
        has given it. With pixel, a later key's latents are a residual, read with a grid
        of zeros as the corrections are."""
        if owner < len(self.keys):
            if owner == 0:
                return PREVIOUS_GOP if self.first_reference is not None else None
            return -1 if self.pixel else owner - 1
        if not self.residual_reference:
            return None
        return owner - 1 if owner > len(self.keys) else -1

    def references(self, grids: list[np.ndarray]) -> list[np.ndarray | None]:
        """Each grid's reference grid, when the context model reads one."""
        if not self.temporal:
            return super().references(grids)
        out = []
        for owner in range(len(grids) // self.levels):
            source = self.reference_owner(owner)
            for k in range(self.levels):
                g = grids[owner * self.levels + k]
                reference = (None if source is None
                             else self.first_reference[k][0, 0].numpy().astype(np.int32)
                             if source == PREVIOUS_GOP
                             else np.zeros_like(g) if source < 0
                             else grids[source * self.levels + k])
                if self._aligned(owner):
                    with torch.no_grad():
                        moved = self._moved(torch.from_numpy(reference).float()[None, None],
                                            self.key_flow[owner - 1], k)
                    reference = torch.round(moved)[0, 0].numpy().astype(np.int32)
                out.append(reference)
        return out

    def _aligned(self, owner: int) -> bool:
        """Whether owner's reference is moved by a field before the context model reads
        it: a key after the first, with key_context."""
        return self.key_context and self.key_flow is not None and 0 < owner < len(self.keys)

    def contexts(self, latents: list[torch.Tensor]) -> torch.Tensor:
        windows = super().contexts(latents)
        if not self.temporal:
            return windows
        previous = []
        for owner in range(len(latents) // self.levels):
            source = self.reference_owner(owner)
            for k, y in enumerate(self.owner_latents(latents, owner)):
                if source is None:
                    previous.append(y.new_zeros(y.numel(), REFERENCE))
                    continue
                before = (self.first_reference[k] if source == PREVIOUS_GOP
                          else torch.zeros_like(y) if source < 0
                          else latents[source * self.levels + k])
                if self._aligned(owner):
                    moved = self._moved(before, self.key_flow[owner - 1], k)
                    before = moved + (torch.round(moved) - moved).detach()
                window = F.unfold(F.pad(before, (1, 1, 1, 1), mode="replicate"), 3)[0].T
                previous.append(torch.cat([window, y.new_ones(y.numel(), 1)], dim=1))
        return torch.cat([windows, torch.cat(previous)], dim=1)


@torch.no_grad()
def search_fields(model: LatentGOP, frames: np.ndarray, keys_only: bool = False) -> None:
    """Start every field where block search (motion_search.py) puts each cell in the
    picture it warps: a key's in the key before, a frame between's in each of its two
    references. An anchored GOP searches its anchor as decoded; the other references
    are the source frames, which an encoder has before it has coded them. With
    keys_only, the keys' fields alone start there."""
    if model.crossing or model.linear_motion:
        raise ValueError("+me starts a frame's own two fields: not with +cross or +lin")
    # The search compares luma, where most of the detail is.
    luma = BT601[0].numpy().astype(np.float32)
    pictures = list(frames.astype(np.float32) @ luma)
    if model.uncoded and model.pixel:
        pictures[0] = (model.anchor_picture * 255).round().numpy() @ luma
    h, w = model.size
    # Pixels to grid_sample's units.
    scale = np.array([2 / w, 2 / h], dtype=np.float32)[:, None, None]

    def search(source: int, target: int, cells: tuple[int, int]) -> torch.Tensor:
        return torch.from_numpy(scale * block_search(pictures[source], pictures[target], cells,
                                                     SEARCH_RADIUS, SEARCH_PENALTY))

    if model.key_flow is not None:
        for k in range(1, len(model.keys)):
            model.key_flow[k - 1] = search(model.keys[k - 1], model.keys[k],
                                           tuple(model.key_flow.shape[-2:]))
    if model.flow is not None and not keys_only:
        field = model.flow[0]
        for i, f in enumerate(model.between):
            for r, x in enumerate(model.pair_of[f]):
                field[i, r] = search(x, f, tuple(field.shape[-2:]))


@torch.no_grad()
def truncated(model: LatentGOP, build: dict, coded: int) -> LatentGOP:
    """A GOP fitted with lookahead (build's frames beyond coded), cut to its first coded
    frames as a file holds them: the same keys, fields and corrections for those frames
    (none of which depends on a later frame), the same networks."""
    short = LatentGOP(**dict(build, frames=coded, coded=None))
    if short.keys != model.keys[:len(short.keys)] or short.between != model.between[
            :len(short.between)]:
        raise ValueError("the coded frames' keys must be the lookahead fit's")
    short.floor = model.floor
    if model.first_reference is not None:
        short.set_first_reference(list(model.first_reference))
    long_state, levels = model.state_dict(), model.levels
    # The corrections follow the keys, so a frame between's owner moves by the keys dropped.
    owner_of = {o: o for o in range(len(short.keys))}
    owner_of.update({len(short.keys) + j: len(model.keys) + j for j in range(len(short.between))})
    state = {}
    for name, value in short.state_dict().items():
        if name.startswith("latents."):
            i = int(name.split(".")[1])
            source = long_state[f"latents.{owner_of[i // levels] * levels + i % levels}"]
        else:
            # Fields run over frames between (or key intervals) in order: keep the first.
            source = long_state[name][:value.shape[0]] if value.dim() else long_state[name]
        if source.shape != value.shape:
            raise ValueError(f"{name}: {tuple(source.shape)} cannot become {tuple(value.shape)}")
        state[name] = source
    short.load_state_dict(state)
    return short


def decoded(picture: torch.Tensor) -> torch.Tensor:
    """A picture as a decoder holds it for prediction: clamped and rounded to 8 bits,
    the rounding straight through in a fit."""
    # Rounded half up, as render() writes the 8-bit frames an anchored GOP starts on.
    picture = picture.clamp(0, 1)
    return picture + (torch.floor(picture * 255 + 0.5) / 255 - picture).detach()


@torch.no_grad()
def reuse_networks(model: LatentGOP, path: Path, names: tuple[str, ...]) -> None:
    """Take the named networks, as coded, from a fit saved with --save (of a GOP of the
    same shape before this one): a scene's later GOPs then fit only their latents and
    motion, and pay nothing for networks a decoder already holds. Names the model does
    not use (an anchored +px GOP draws no picture) are passed over."""
    saved = torch.load(path, weights_only=True)["state"]
    nets = model.networks()
    for name in (n for n in names if n in nets):
        prefix = _prefix(model, nets[name])
        for key, value in nets[name].state_dict().items():
            value.copy_(saved[prefix + key])


def _prefix(model: LatentGOP, net: nn.Module) -> str:
    """Where net's state sits in the model's state dict."""
    return next(f"{name}." for name, module in model.named_modules() if module is net)


def load_fit(path: Path) -> LatentFrame:
    """A model saved with --save (a GOP's or a single frame's), as it was coded."""
    saved = torch.load(path, weights_only=True)
    build = saved["build"]
    model = LatentGOP(**build) if "frames" in build else LatentFrame(**build)
    state = saved["state"]
    chained = sorted((k for k in state if k.startswith("first_reference.")),
                     key=lambda k: int(k.rsplit(".", 1)[1]))
    if chained:
        model.set_first_reference([state[k] for k in chained])
    model.load_state_dict(state)
    return model


def last_frame(path: Path) -> np.ndarray:
    """The last frame a GOP fit saved with --save decodes to, (H, W, 3) uint8."""
    model = load_fit(path)
    latents, _ = model.coded_latents("round")
    return render(model, latents)[-1]


def last_key(path: Path) -> list[torch.Tensor]:
    """The last key's latents, rounded as coded, of a GOP fit saved with --save."""
    model = load_fit(path)
    return [torch.round(y.detach())
            for y in model.owner_latents(list(model.latents), len(model.keys) - 1)]


@torch.no_grad()
def owner_bpp(model: LatentGOP, pixels: int) -> dict[str, list[float]]:
    """Each key's and each correction's latents at their ideal code length, in bits per
    pixel of one frame: where a GOP's latent bits go."""
    latents, _ = model.coded_latents("round")
    per_latent = model.latent_bits(latents)
    sizes = [y.numel() for y in latents]
    per_grid = [float(b.sum()) for b in per_latent.split(sizes)]
    owners = [sum(per_grid[k:k + model.levels]) / pixels
              for k in range(0, len(per_grid), model.levels)]
    return {"keys": [round(b, 4) for b in owners[:len(model.keys)]],
            "corrections": [round(b, 4) for b in owners[len(model.keys):]]}


def gop_point(frames: np.ndarray, crf: int, codec: str = "x264") -> dict:
    """A baseline (x264 or x265 medium, default keyint, yuv420p) on frames (N, H, W, 3)."""
    n, h, w, _ = frames.shape
    size, _, _, _, planes = code(frames, codec_settings(codec, crf), Fraction(25))
    return {"codec": codec, "crf": crf, "bpp": size * 8 / (n * h * w),
            "psnr_yuv420": float(np.mean([psnr_yuv420(yuv420_planes(f), p)
                                          for f, p in zip(frames, planes)]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default="carphone")
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--variants", nargs="+", default=["shared", "temporal", "temporal+biases"],
                    help="shared: networks shared, latents coded alone; temporal: the context "
                         "model reads the previous frame; +biases: per-frame biases; +keysN: "
                         "latents on every N-th frame, interpolated between; +warp: the "
                         "frames between warp the keys' latents by a coarse field each; "
                         "+res: and add latents of their own (with +warp), +pres: the same "
                         "added as pixels; +resref, +presref: whose context reads the "
                         "previous frame's (with temporal); +kres: a key after the first "
                         "is the key before's latents moved by a field of its own plus a "
                         "residual; +kctx: a key after the first is coded whole, the key "
                         "before moved by a field of its own as its context; +px (with "
                         "+warp and +pres): prediction on decoded pictures, a later key "
                         "the key before moved plus a residual, the frames between the "
                         "keys' pictures moved and blended plus their corrections; +lin "
                         "(with +px or +kctx): the frames between start from the motion "
                         "the key's field implies at their time, their fields holding "
                         "what departs from it; +fr: the fit prices the motion fields; "
                         "+mc: fields coded as residuals of a prediction from values "
                         "coded before them, the fit pricing those (with +fr); +cross "
                         "(with +warp): one field a frame between keys, the motion across "
                         "their interval, shared out by the frame's place in time; +kwW: the "
                         "keys' errors weigh W times a frame between's in the fit; +bic: warps "
                         "read between pixels with a cubic kernel, not bilinearly; +cellN: "
                         "a motion vector per N x N pixels (default 32); +kcellN: the same for "
                         "the keys' fields alone; +fineN: a second grid of vectors per N x N "
                         "pixels added to the frames between's fields, priced as they are; "
                         "+hier (with +px): a "
                         "frame between is predicted from the nearest frames coded before "
                         "it, the middle ones first; +ph3 (with +px): the pixel head's last "
                         "layer reads a 3x3 window; +blk: each field's vector moves its whole "
                         "block (cell), not a bilinear blend of the vectors around; +me: "
                         "the fields start where block search puts each cell, not at zero; "
                         "+kblk, +kme: the same for the keys' fields alone; "
                         "+dm (with +px): the pixel head also draws "
                         "a displacement per pixel, added to the coarse fields")
    ap.add_argument("--lambdas", type=float, nargs="+", default=[3e-3, 1e-3, 3e-4])
    ap.add_argument("--crfs", type=int, nargs="+", default=[22, 27, 32, 37])
    add_fit_arguments(ap)
    ap.add_argument("--networks", type=Path,
                    help="a fit saved with --save whose networks (--reuse) this GOP takes as "
                         "they were coded, instead of fitting and coding its own")
    ap.add_argument("--reuse", nargs="+", dest="reused",
                    default=["synthesis", "refine", "arm", "residual_head", "bias_net"],
                    help="the networks taken from --networks")
    ap.add_argument("--start-networks", type=Path,
                    help="a fit saved with --save whose context network and pixel head "
                         "this GOP starts from, fitting and coding them as its own: a "
                         "random start can leave the pixel head reading no full-size level")
    ap.add_argument("--key-reference", type=Path,
                    help="a fit saved with --save (of the GOP before this one) whose last key "
                         "is the context of this GOP's first key (with temporal)")
    ap.add_argument("--anchor", type=Path,
                    help="a fit saved with --save (of the GOP before this one, ending on "
                         "--start) whose last key, as coded, is this GOP's first key: the "
                         "GOP's first frame is then that GOP's, and only the others are "
                         "scored and priced (x264 too codes only them)")
    ap.add_argument("--hold-head", type=int, default=0, metavar="STEPS",
                    help="hold the pixel head's first layer as it started for the fit's "
                         "first STEPS steps, so that the latents learn to draw through "
                         "every level before the head may drop one")
    ap.add_argument("--seed", type=int, default=0,
                    help="the networks' initial values and the fit's noise: fits differing "
                         "only here say how far apart two fits of one variant land")
    ap.add_argument("--lookahead", type=int, default=0,
                    help="frames after the GOP fitted with it but not coded, keys placed on "
                         "them as the next GOP will: the last key is fitted as the next "
                         "GOP's reference it will be")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.reused = tuple(args.reused) if args.networks else ()
    args.out.mkdir(parents=True, exist_ok=True)
    seen = cropped(read_video(CLIPS / f"{args.clip}.mkv", start=args.start,
                              count=args.frames + args.lookahead)[0], args.crop)
    frames = seen[:args.frames]
    n, h, w, _ = frames.shape
    scored = frames[1:] if args.anchor else frames
    anchor = [gop_point(scored, crf) for crf in args.crfs]
    results = {"args": {k: str(v) for k, v in vars(args).items()}, "x264": anchor,
               "variants": {}}
    for variant in args.variants:
        points = []
        for lam in args.lambdas:
            torch.manual_seed(args.seed)
            keys = re.search(r"keys(\d+)", variant)
            weight = re.search(r"\+kw([\d.]+)", variant)
            cell = re.search(r"\+cell(\d+)", variant)
            key_cell = re.search(r"\+kcell(\d+)", variant)
            fine_cell = re.search(r"\+fine(\d+)", variant)
            residual = re.search(r"\+(p?)res(ref)?", variant)
            build = dict(frames=len(seen), coded=n, height=h, width=w, levels=args.levels,
                         hidden=args.hidden, arm_hidden=args.arm_hidden, temporal="temporal" in variant,
                         biases="biases" in variant, key_every=int(keys[1]) if keys else 1,
                         warp="warp" in variant,
                         residual=residual and ("pixel" if residual[1] else "latent"),
                         residual_reference=bool(residual and residual[2]),
                         key_warp="kres" in variant, flow_rate="+fr" in variant,
                         key_context="kctx" in variant, anchored=bool(args.anchor),
                         pixel="+px" in variant, linear_motion="+lin" in variant,
                         motion_coded="+mc" in variant, crossing="+cross" in variant,
                         key_weight=float(weight[1]) if weight else 1.0, bicubic="+bic" in variant,
                         flow_cell=int(cell[1]) if cell else FLOW_CELL,
                         key_cell=int(key_cell[1]) if key_cell else None,
                         fine_cell=int(fine_cell[1]) if fine_cell else None,
                         hierarchical="+hier" in variant, spatial_head="+ph3" in variant,
                         block_motion="+blk" in variant,
                         key_block_motion="+kblk" in variant,
                         dense_motion="+dm" in variant,
                         depth=args.depth, refine_layers=args.refine_layers,
                         learned_upsampling=args.learned_upsampling)
            model = LatentGOP(**build)
            model.hold_steps = args.hold_head
            if args.lookahead and not model.pixel:
                # The frame bias reads a frame's time over the GOP's length, so cutting a
                # GOP that draws its frames would move them all; with +px only the first
                # key is drawn, at time 0.
                raise SystemExit("--lookahead needs +px")
            if args.networks:
                reuse_networks(model, args.networks, args.reused)
            if args.start_networks:
                reuse_networks(model, args.start_networks, ("arm", "pixel_head"))
            if args.key_reference:
                model.set_first_reference(last_key(args.key_reference))
            if args.anchor and model.pixel:
                model.set_anchor_picture(last_frame(args.anchor))
            elif args.anchor:
                model.set_anchor(last_key(args.anchor))
            if "+me" in variant or "+kme" in variant:
                search_fields(model, seen, keys_only="+kme" in variant)
            kept_step, fit_s = fit_frames(seen, model, lam, args)
            if args.lookahead:
                model = truncated(model, build, n)
                build = dict(build, frames=n, coded=None)
            points.append(scored_point(frames, model, lam, args, kept_step, fit_s))
            if args.anchor:
                # The anchor frame is the earlier GOP's, scored there: this GOP's point
                # is its new frames', its bits over them.
                p = points[-1]
                p["bpp_all_frames"], p["psnr_yuv420_all_frames"] = p["bpp"], p["psnr_yuv420"]
                p["bpp"] *= n / (n - 1)
                p["psnr_yuv420"] = float(np.mean(p["frame_psnr_yuv420"][1:]))
            if args.save:
                save_model(args.out / f"{variant}_{lam:g}.pt", model, build)
            p = points[-1]
            p["owner_bpp"] = owner_bpp(model, h * w)
            print(f"{args.clip} {variant} lambda {lam:g}: {p['bpp']:.3f} bpp "
                  f"({p['network_bpp']:.3f} networks) {p['psnr_yuv420']:.2f} dB YUV420, "
                  f"{p['fit_s']} s", file=sys.stderr, flush=True)
        bd = bd_delta([p["bpp"] for p in anchor], [p["psnr_yuv420"] for p in anchor],
                      [p["bpp"] for p in points], [p["psnr_yuv420"] for p in points])
        results["variants"][variant] = {"points": points, "bd_yuv420": bd}
        print(f"{args.clip} {variant}: BD-rate against x264 {bd['bd_rate']} % (PSNR-YUV420)",
              file=sys.stderr, flush=True)
        (args.out / "latent_gop.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
