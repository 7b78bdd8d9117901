"""The GOP model the GOP probe (latent_gop.py) fits: one latent pyramid per key frame
(and per frame between, with a residual) over networks shared by the GOP's frames, the
time-conditioned bias network, motion fields between keys and frames, prediction on
decoded pictures (+px) and the pixel head that turns residual pyramids into pixels; and
the cut of a GOP fitted with lookahead to its coded frames. What each variant is and what
it measured: latent_gop.py's docstring and docs/experiments.md."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from latent_motion import field_bits, residuals  # noqa: E402

from actinr_codec.model.latents import CONTEXT, LatentFrame  # noqa: E402
from bitstream.latents import REFERENCE  # noqa: E402

# Sine and cosine of the frame time at these multiples of pi: the bias network's input.
TIME_FREQUENCIES = (1, 2, 4, 8)
# A frame between key frames warps their latents by a displacement field held on a grid
# of one vector per FLOW_CELL x FLOW_CELL pixels (unless +cellN), bilinearly interpolated.
# 64 (+cell64) took a third off the fields' bits on carphone's keys4 GOPs: at lambda
# 3e-3 every GOP gained 8-13 points against x264 after the same anchor and the whole clip
# went from +18.5 % to +9.4 % against x264; at 1e-3 the first GOP was even, its
# corrections grown (docs/experiments.md, "seventeenth probe").
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
# BT.601 luma of RGB, for how busy a prediction is (+pctx).
LUMA = torch.tensor([0.299, 0.587, 0.114])


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
                 crossing: bool = False, key_weight: float = 1.0, between_weight: float = 1.0,
                 bicubic: bool = False,
                 flow_cell: int = FLOW_CELL, key_cell: int | None = None,
                 fine_cell: int | None = None,
                 hierarchical: bool = False, block_motion: bool = False,
                 key_block_motion: bool = False,
                 spatial_head: bool = False, dense_motion: bool = False,
                 motion_predictor: str = MOTION_PREDICTOR, conditional: bool = False,
                 prediction_context: bool = False, field_step: float | None = None,
                 field_lr: float | None = None, coded: int | None = None, **architecture):
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
        # With between_weight 0, the frames between count for nothing: the keys are
        # fitted as a chain of P frames alone would be, before (freeze_keys) the frames
        # between are fitted on them, as a classic encoder codes its P frames first. At
        # lambda 1e-3 that won 10-16 points on a 9-frame GOP and lost 9-20 on the chains'
        # 15-frame one, whose joint fit buys a dear first key for the frames between
        # (docs/experiments.md, "seventeenth probe").
        if key_weight != 1.0 or between_weight != 1.0:
            self.frame_weights = torch.full((frames,), between_weight)
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
        # With field_step, the pictures see every field rounded to that step
        # (straight-through), and the rate prices it there: the residuals are fitted to
        # the motion a decoder will have, so that the networks' step search can code the
        # fields as coarsely as the fit held them, where rounding a field fitted free
        # moves every pixel it carries. On 2**-8 (+fq8, a 2.9th of a pixel on carphone,
        # whose fields the step search put at 2**-9) carphone's first GOP at lambda 3e-3
        # spent 18 % less on its fields and lost 0.37 dB, +22.1 % against x264 after the
        # same anchor where +cell64 alone was at +14.8 % (docs/experiments.md,
        # "eighteenth probe").
        self.field_step = field_step
        # With field_lr (pixels of the width; a step of Adam moves a vector by about that
        # much), the fields get a learning rate of their own, kept here in grid_sample's
        # units, instead of the networks' 1e-2: 1.6 pixels a step at 320 wide. On tree's
        # foliage that rate threw the fields about (a tenth of the vectors past 10
        # pixels) and the motion predicted 3-4 dB worse than copying the frame before
        # (docs/experiments.md, "nineteenth probe").
        self.field_lr = None if field_lr is None else field_lr * 2 / width
        # With motion_coded, a file codes each field's values less their predictions
        # from values coded before them (latent_motion.py), and the fit prices those
        # under motion_predictor (+mcs: the spatial one, for a P frame alone; see
        # conditional below for the GOP).
        self.motion_coded, self.motion_predictor = motion_coded, motion_predictor
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
        # With conditional, the head also reads the prediction it corrects (the moved
        # picture, 3 more inputs): a correction drawn knowing the picture under it, as
        # conditional coding (DCVC) draws a frame from its prediction instead of adding a
        # residual blind to it. On one P frame it was within the seeds' spread (BD-rate
        # +3.3 % against x264's P frame, the baseline's two seeds +5.4 and +15.2 %); with
        # +mcs on carphone's first keys4 GOP at lambda 1e-3 it lost 22 points
        # (docs/experiments.md, "seventeenth probe").
        self.pixel_head, self.dense_motion = None, dense_motion and pixel
        self.conditional = conditional and pixel
        if self.conditional and self.dense_motion:
            raise ValueError("+cond reads the prediction +dm's motion would move")
        if pixel:
            outputs = 3 + (4 if self.dense_motion else 0)
            last = (ChannelsLastConv(PIXEL_HEAD, outputs) if spatial_head
                    else nn.Linear(PIXEL_HEAD, outputs, bias=False))
            inputs = levels + (3 if self.conditional else 0)
            self.pixel_head = nn.Sequential(nn.Linear(inputs, PIXEL_HEAD, bias=False), nn.ReLU(),
                                            last)
            nn.init.zeros_(self.pixel_head[2].weight)
        self.residual_reference = residual_reference and self.residual is not None
        # With prediction_context (and pixel, temporal), the context model reads, beside
        # a residual's latents, how busy its prediction is there (detail()): what
        # motion misses lies on the prediction's edges and texture, so the model can
        # widen its laws there and narrow them on flat areas. The decoder holds the
        # prediction before it decodes the residual, but decodes the same only if its
        # warps are integer arithmetic, which a file would specify. busy keeps each
        # frame's prediction's busy_map from the last rendering (no gradient). On one P
        # frame it paid at lambda 3e-4 (+6-8 % against x264's P frame where the other fits were at
        # +21-24 %) and lost at lower rates (docs/experiments.md, "seventeenth probe").
        self.prediction_context = prediction_context and pixel and temporal
        self.busy: dict[int, torch.Tensor] = {}
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
        motion_coded, what is priced is what motion_predictor misses of each value."""
        if not self.flow_rate:
            return 0.0
        fields = [self.flow[0]] if self.flow is not None else []
        if self.fine_flow is not None:
            fields.append(self.fine_flow)
        if self.pixel and self.key_flow is not None:
            fields.append(self.key_flow)
        fields = [self.seen(v) for v in fields]
        if self.motion_coded:
            fields = [residuals(v, self.motion_predictor) for v in fields]
        step = self.field_step or FLOW_STEP
        return sum((2 * torch.log2(1 + v.abs() / step) + 1).sum() for v in fields)

    def seen(self, field: torch.Tensor) -> torch.Tensor:
        """A field as the pictures see it: on field_step (straight-through), if set."""
        if self.field_step is None:
            return field
        return field + (torch.round(field / self.field_step) * self.field_step - field).detach()

    def network_bits(self, name: str, symbols: list[torch.Tensor]) -> float:
        """With motion_coded, the fields as latent_motion.py codes them."""
        if self.motion_coded and name in ("flow", "key_flow", "fine_flow"):
            return field_bits(symbols[0])[0]
        return super().network_bits(name, symbols)

    def field_parameters(self) -> list[nn.Parameter]:
        """The motion fields this GOP fits (field_lr's parameters)."""
        nets = self.networks()
        return [p for name in ("flow", "key_flow", "fine_flow") if name in nets
                for p in nets[name].parameters()]

    def held_parameters(self) -> list[nn.Parameter]:
        """The pixel head's first layer (--hold-head): started at random and fitted at
        once, it stops reading the full-size level in many fits (weights 0.00-0.15
        there, 0.5-1.3 on the others), the noise on that level's many latents costing
        more distortion early on than the latents yet draw. Held for 600 of 3000 steps
        it keeps the level, and that did not pay on carphone: keys7 at lambda 1e-3 lost
        7 points against its own dead-head fit, keys4 at 3e-3 moved -1.9 %, inside the
        seeds' spread (docs/experiments.md, "sixteenth probe")."""
        return [self.pixel_head[0].weight] if self.pixel_head is not None else []

    def freeze_keys(self) -> None:
        """Hold the keys' pictures as they are: their latents, their fields and the
        pixel head that draws them (the context model still fits, pricing them)."""
        frozen = [*self.latents[:len(self.keys) * self.levels], *self.pixel_head.parameters()]
        if self.key_flow is not None:
            frozen.append(self.key_flow)
        for p in frozen:
            p.requires_grad_(False)
        # The keys' latents as coded, which the fit then sees and prices as they are.
        for y in self.latents[:len(self.keys) * self.levels]:
            y.round_()

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
        """A (1, c, h, w) grid displaced by a key's coarse field (2, cells) in grid_sample's
        units, as seen(), plus (dense_motion) a displacement per pixel, (h, w, 2) in pixels."""
        identity = getattr(self, f"key_identity{level}")
        dense = self._spread(self.seen(field)[None], grid.shape[-2:], self.key_block_motion
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
        # (2 references, 2, cells), or (1, ...)
        field = self.seen(self.flow[0][self.between.index(f)])
        if self.crossing:
            # Content at x here sits at x + a D in the frame before and x + (a - 1) D in
            # the frame after, D being where the one before holds what the one after shows.
            field = torch.cat([a * field, (a - 1) * field])
        if self.linear_motion:
            # The key after's field K says where in the key before its content was: at
            # f's place a, that content is a K back towards the key before and (1 - a) K
            # on towards the key after. f's own fields are what departs from that.
            moved = self.seen(self.key_flow[self.keys.index(after) - 1])
            field = field + torch.stack([a * moved, (a - 1) * moved])
        dense = self._spread(field, self.size, self.block_motion).permute(0, 2, 3, 1)
        if self.fine_flow is not None:
            fine_field = self.seen(self.fine_flow[self.between.index(f)])
            dense = dense + self._spread(fine_field, self.size,
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
                stack = self.upsampled(self.owner_latents(latents, k))
                if self.conditional:
                    moved = self._moved(before.permute(2, 0, 1)[None], self.key_flow[k - 1],
                                        0)[0].permute(1, 2, 0)
                    picture = moved + self.pixel_head(torch.cat([stack, moved], dim=-1))
                else:
                    own = self.pixel_head(stack)
                    fine = own[..., 3:5] if self.dense_motion else None
                    moved = self._moved(before.permute(2, 0, 1)[None], self.key_flow[k - 1], 0,
                                        fine)[0].permute(1, 2, 0)
                    picture = moved + own[..., :3]
                if self.prediction_context:
                    self.busy[self.keys[k]] = busy_map(moved.detach())
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
            if self.residual == "pixel" and f in self.between and not self.conditional:
                head = self.pixel_head if self.pixel else self.residual_head
                drawn = head(self.upsampled(self.correction(latents, f)))
            fine = drawn[..., 3:] if self.dense_motion and drawn is not None else None
            if self.pixel:
                out[f] = self.warped_stack(latents, f, keys, cache, out, fine)
                if self.prediction_context and f in self.between:
                    self.busy[f] = busy_map(out[f].detach())
                if self.conditional and self.residual == "pixel" and f in self.between:
                    drawn = self.pixel_head(torch.cat([
                        self.upsampled(self.correction(latents, f)), out[f]], dim=-1))
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
                if self.prediction_context and source == -1:
                    reference = self.detail(owner, g.shape).numpy().astype(np.int32)
                if self._aligned(owner):
                    with torch.no_grad():
                        moved = self._moved(torch.from_numpy(reference).float()[None, None],
                                            self.key_flow[owner - 1], k)
                    reference = torch.round(moved)[0, 0].numpy().astype(np.int32)
                out.append(reference)
        return out

    @torch.no_grad()
    def detail(self, owner: int, shape: tuple[int, int]) -> torch.Tensor:
        """How busy the prediction of owner (a residual's) is over a grid of shape:
        its luma's absolute differences to the right and below (8-bit units) averaged
        over each latent's area, as integers round(log2(1 + mean))."""
        f = (self.keys[owner] if owner < len(self.keys)
             else self.between[owner - len(self.keys)])
        pooled = F.adaptive_avg_pool2d(self.busy[f][None, None], tuple(shape))[0, 0]
        return torch.round(torch.log2(1 + pooled))

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
                          else self.detail(owner, y.shape[-2:])[None, None].to(y)
                          if self.prediction_context and source == -1
                          else torch.zeros_like(y) if source < 0
                          else latents[source * self.levels + k])
                if self._aligned(owner):
                    moved = self._moved(before, self.key_flow[owner - 1], k)
                    before = moved + (torch.round(moved) - moved).detach()
                window = F.unfold(F.pad(before, (1, 1, 1, 1), mode="replicate"), 3)[0].T
                previous.append(torch.cat([window, y.new_ones(y.numel(), 1)], dim=1))
        return torch.cat([windows, torch.cat(previous)], dim=1)


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


def busy_map(picture: torch.Tensor) -> torch.Tensor:
    """How busy a picture (H, W, 3) is at each pixel: its luma's absolute differences to
    the right and below, in 8-bit units (+pctx's context, once per rendering)."""
    luma = (picture.clamp(0, 1) * 255) @ LUMA.to(picture)
    return (F.pad((luma[:, 1:] - luma[:, :-1]).abs(), (0, 1))
            + F.pad((luma[1:] - luma[:-1]).abs(), (0, 0, 0, 1)))


def decoded(picture: torch.Tensor) -> torch.Tensor:
    """A picture as a decoder holds it for prediction: clamped and rounded to 8 bits,
    the rounding straight through in a fit."""
    # Rounded half up, as render() writes the 8-bit frames an anchored GOP starts on.
    picture = picture.clamp(0, 1)
    return picture + (torch.floor(picture * 255 + 0.5) / 255 - picture).detach()
