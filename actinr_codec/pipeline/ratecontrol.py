"""Average-bitrate rate control: the price of a bit, GOP by GOP, so a file lands on a size.

x264's ``--bitrate`` adjusts its quantizer from the bits spent so far; here the fit's
price per bit (EncodeSettings.rate_weight) is the knob. A GOP of n frames fitted at price
w costs about ``c * n * w**-ALPHA`` bits, with one c for intra GOPs and one for predicted
ones, each taken from the last GOP of its kind (a prior ratio stands in for the predicted
one until one is seen). Before each GOP the controller picks the one price that, spent on
every GOP left, would use exactly the bits left: one price everywhere is also what spends
bits best, since a bit then buys the same distortion in every GOP. A GOP of a kind not
seen yet has nothing but priors behind its price, the last GOP has no later GOP to absorb
its miss, and a big miss may be more than the GOPs after it can absorb (ABSORB), so such
a GOP is fitted again (at most RETRIES times, the last GOP LAST_RETRIES) when it misses
its share by more than RETRY_TOLERANCE, at the price the measured points give
(interpolated between two that bracket the share, else extrapolated along their slope),
and the fit nearest its share is kept; later GOPs absorb what drift is left. The width
is where the price starts from (quality_for), widened past quality 0 (width_for).

``target_bits`` reads what an encode asks for (--bitrate, --target-size) and
``rate_controlled`` gives the settings that start from it, the header paid first.

The controller's state after a GOP depends only on the GOPs kept (their kind, frames,
bits and price), so an encode resumed from its journal makes the same choices.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from fractions import Fraction

from bitstream.header import encode_header, pack_config
from bitstream.records import INTRA, PREDICTED, VideoInfo, reference_of

from ..model.schema import stream_config
from .options import EncodeOptions
from .presets import settings_for
from .settings import EncodeSettings

# Bits fall as the price's ALPHA-th power: on carphone and city a doubling of the price at
# one width saved about 1.3x the bits (docs/design.md, "Quality scale").
ALPHA = 0.4
# A predicted GOP's bits per frame against an intra GOP's at the same price, until one is
# measured. Rate-controlled encodes at fast to x264 crf 23's rate, the GOPs' bytes brought
# to one price along ALPHA: carphone 0.58, tree 0.75 (both at the lowest price), city
# 1.02; a third, from carphone and city at quality 4, left city's first GOP 25 % over its
# share and its last one 50 % over with nothing after it to absorb it.
PREDICTED_RATIO = 0.75
RETRY_TOLERANCE = 0.08
# A GOP of a kind already measured is fitted again only when the GOPs after it would have
# to change their spending by more than this share to absorb its miss (the last GOP always).
ABSORB = 0.25
RETRIES = 2
# The last GOP has nothing after it to absorb a miss: it may be fitted again more often.
# (City, 48 frames at fast, x264 crf 23's rate: the last GOP, predicted, was 50 % over its
# share after two retries, whose prices had not yet bracketed it.)
LAST_RETRIES = 4
# Prices outside this range change little: above, almost every parameter is dropped;
# below, the fit is unpriced in all but name.
MIN_WEIGHT, MAX_WEIGHT = 0.25, 4096.0
# Bits per pixel whole clips reached at some quality levels (carphone and city, 48 frames,
# medium; the README's table), between which the levels are log-spaced: where rate
# control starts, and so the network width it uses for the whole file.
TYPICAL_BPP = {0: 0.577, 4: 0.189, 8: 0.0765, 10: 0.0305}
# Rate control starts at the level typical of HEADROOM times the target: a price can rise
# as far as it needs, but below a width's efficient range the bits saturate (megamind,
# 96 frames, width 8: 0.046 bpp at every price under 6, against a target of 0.060), so a
# network one or two levels wider than the rate suggests is what can reach it.
HEADROOM = 1.5
# The local slope measured between two fits of one GOP is trusted within these bounds.
MIN_ALPHA, MAX_ALPHA = 0.1, 1.5
# Past quality 0, rate control widens the network in steps of WIDTH_STEP, up to MAX_WIDTH.
WIDTH_STEP, MAX_WIDTH = 8, 64
# A file further than this from its target gets a line saying why.
REACH_TOLERANCE = 0.1


@dataclass
class RateControl:
    """Prices for consecutive GOPs (frames and kinds, in order) sharing ``budget`` bits,
    starting from ``weight``, the quality level's price."""

    frames: list[int]
    kinds: list[int]
    budget: float
    weight: float
    spent: float = 0.0
    _cost: dict[int, float] = field(default_factory=dict)  # kind -> c

    def price(self, k: int) -> float:
        """The price for GOP k, given the GOPs before it were observed."""
        if INTRA not in self._cost and PREDICTED not in self._cost:
            return self.weight
        need = sum(self._c(kind) * n for n, kind in zip(self.frames[k:], self.kinds[k:]))
        left = self.budget - self.spent
        if left <= 0:
            return MAX_WEIGHT
        return _clamp((need / left) ** (1 / ALPHA))

    def share(self, k: int, weight: float, bits: float) -> float:
        """GOP k's share of the bits left, for a GOP that cost ``bits`` at ``weight``:
        what the one price would leave it, with its kind's cost taken from it."""
        costs = dict(self._cost)
        costs[self.kinds[k]] = max(bits, 1.0) / (self.frames[k] * weight ** -ALPHA)
        need = [self._c(kind, costs) * n for n, kind in zip(self.frames[k:], self.kinds[k:])]
        return max(self.budget - self.spent, 1.0) * need[0] / sum(need)

    def retry(self, k: int, tries: list[tuple[float, float]]) -> float | None:
        """A new price for GOP k after fits at (weight, bits) ``tries``, or None to keep
        the best of them (``best``): the last fit is within tolerance of its share, or its
        kind had been measured before and the GOPs after it can absorb its miss (a change
        of at most ABSORB of their share), the retries are spent, or the price cannot move
        further."""
        weight, bits = tries[-1]
        last = k == len(self.frames) - 1
        target = self.share(k, weight, bits)
        miss = abs(bits - target)
        later = max(self.budget - self.spent - target, 0.0)
        if miss <= RETRY_TOLERANCE * target or len(tries) > (LAST_RETRIES if last else RETRIES):
            return None
        if self.kinds[k] in self._cost and miss <= ABSORB * later:
            return None
        above = [t for t in tries if t[1] > self.share(k, *t)]
        below = [t for t in tries if t[1] <= self.share(k, *t)]
        if above and below:
            # Bits fall as the price rises: the dearest fit that spent too much and the
            # cheapest that spent too little bracket the price, interpolated in log-log.
            pair = max(above), min(below)
            alpha = _slope(*pair[0], *pair[1])
            base = pair[self.best(k, list(pair))]
        else:
            base = tries[-1]
            alpha = _slope(*tries[-2], *tries[-1]) if len(tries) > 1 else ALPHA
        w, b = base
        new = _clamp(w * (b / self.share(k, w, b)) ** (1 / alpha))
        return None if any(new == t[0] for t in tries) else new

    def best(self, k: int, tries: list[tuple[float, float]]) -> int:
        """Which of GOP k's fits at (weight, bits) ``tries`` to keep: the nearest its
        share, in ratio."""
        return min(range(len(tries)),
                   key=lambda i: abs(math.log(max(tries[i][1], 1.0) / self.share(k, *tries[i]))))

    def observe(self, k: int, weight: float, bits: float) -> None:
        """GOP k was kept at ``weight`` and cost ``bits``."""
        self.spent += bits
        self._cost[self.kinds[k]] = max(bits, 1.0) / (self.frames[k] * weight ** -ALPHA)

    def _c(self, kind: int, costs: dict[int, float] | None = None) -> float:
        costs = self._cost if costs is None else costs
        if kind in costs:
            return costs[kind]
        if kind == PREDICTED:
            return costs[INTRA] * PREDICTED_RATIO
        return costs[PREDICTED] / PREDICTED_RATIO


def reach_note(target: float, reached: float, prices: list[float], width: int) -> str | None:
    """A line for an encode of ``reached`` bits that missed its ``target`` by more than
    REACH_TOLERANCE, at these GOP prices with a network of ``width``: why; None if it
    landed."""
    error = reached / target - 1
    if abs(error) <= REACH_TOLERANCE:
        return None
    if error < 0 and prices[-1] <= MIN_WEIGHT:
        return (f"the target is above what this clip takes: at the lowest price per bit "
                f"a width-{width} network spent {-error:.1%} less")
    if error > 0 and prices[-1] >= MAX_WEIGHT:
        return (f"the target is below what this clip needs: at the highest price per bit "
                f"a width-{width} network spent {error:.1%} more")
    return f"rate control missed the target by {error:+.1%}"


def width_for(bpp: float, width: int) -> int:
    """The network width for ``bpp``, starting from quality 0's ``width`` when the target
    lies past that level's typical rate (with HEADROOM): a network's parameters, and so
    about its bits at one price, grow as its width squared, so a wider one is what can
    spend them (tree at 0.68 bpp: width 40 spent 0.50 at the lowest price). Below, the
    width as it is."""
    need = bpp * HEADROOM / TYPICAL_BPP[0]
    if need <= 1:
        return width
    return min(MAX_WIDTH, WIDTH_STEP * math.ceil(width * math.sqrt(need) / WIDTH_STEP))


def quality_for(bpp: float) -> int:
    """The quality level to reach ``bpp`` from: the one whose typical rate lies nearest
    HEADROOM times it (in ratio)."""
    bpp *= HEADROOM
    levels = sorted(TYPICAL_BPP)
    typical = {}
    for a, b in zip(levels, levels[1:]):
        for q in range(a, b + 1):
            share = (q - a) / (b - a)
            typical[q] = TYPICAL_BPP[a] ** (1 - share) * TYPICAL_BPP[b] ** share
    return min(typical, key=lambda q: abs(math.log(typical[q] / bpp)))


def _slope(w0: float, b0: float, w1: float, b1: float) -> float:
    """The local exponent of bits against price between two fits, within the trusted
    bounds (ALPHA where the two give none)."""
    if w0 == w1 or b0 <= 0 or b1 <= 0 or b0 == b1:
        return ALPHA
    return min(max(-math.log(b1 / b0) / math.log(w1 / w0), MIN_ALPHA), MAX_ALPHA)


def _clamp(weight: float) -> float:
    return min(max(weight, MIN_WEIGHT), MAX_WEIGHT)


def target_bits(options: EncodeOptions, frames: int, rate: Fraction) -> float | None:
    """The file's size in bits that --bitrate or --target-size asks for, if either."""
    if options.bitrate is not None and options.target_size is not None:
        raise ValueError("bitrate and target_size are exclusive")
    if options.bitrate is not None:
        if not options.bitrate > 0:
            raise ValueError(f"bitrate must be positive, got {options.bitrate}")
        return float(options.bitrate * frames / rate)
    if options.target_size is not None:
        if options.target_size < 1:
            raise ValueError(f"target size must be positive, got {options.target_size}")
        return options.target_size * 8.0
    return None


def rate_controlled(options: EncodeOptions, src, gops, rate: Fraction,
                     target: float) -> EncodeSettings:
    """Settings for an encode to ``target`` bits: the quality level whose usual rate is
    nearest (past quality 0's, a wider network), and rate control over what the chunks
    may spend once the header is paid."""
    pixels = src.width * src.height
    bpp = target / (pixels * src.count)
    settings = settings_for(pixels, dataclasses.replace(options, quality=quality_for(bpp)))
    settings = dataclasses.replace(settings, model=dataclasses.replace(
        settings.model, width=width_for(bpp, settings.model.width)))
    info = VideoInfo(width=src.width, height=src.height, frames=src.count,
                     fps_num=rate.numerator, fps_den=rate.denominator, colour=src.colour)
    header = encode_header(info, pack_config(stream_config(settings.model, settings.gop_size)),
                           [(g.start, g.stop) for g in gops.gops],
                           [(kind, reference_of(k, kind)) for k, kind in enumerate(gops.kinds)],
                           [0] * len(gops.gops))
    chunks = target - len(header) * 8
    if chunks <= 0:
        raise ValueError(f"a target of {target / 8:.0f} bytes does not even hold the file's "
                         f"{len(header)}-byte header")
    return dataclasses.replace(settings,
                               target_bpp=chunks / (pixels * sum(len(g) for g in gops.gops)))
