"""From frames to coded GOPs: fit each GOP, quantize it, entropy-code its symbols.

Encoding one GOP: fit in float, pick one quantization step per tensor, fine-tune briefly
with the rounding in the loop (quantization-aware), keep whichever of plain or fine-tuned
rounding reconstructs better, and store the integer symbols. A predicted GOP does the same
around its reference, the decoded tensors of the GOP before it: its fit starts there and
pays for what it moves, and its symbols are the rounded differences. Decoding
(decoder.py) rebuilds the models from symbols, steps and references alone, so a decoder
computes exactly what the encoder measured.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from bitstream.chunk import CodedGOP, code_gop
from bitstream.records import INTRA, PREDICTED, GOPRecord, TensorRecord

from ..fitting.fit import fit_gop, reconstruction_psnr, warm_start_config
from ..media.frames import Frames
from ..model.network import GOPModel
from ..model.schema import load_tensors, model_tensors
from ..quantization.quantize import allocate_steps, dequantize, quantize
from ..quantization.sensitivity import output_sensitivity
from .ratecontrol import RateControl
from .settings import EncodeSettings


@dataclass(frozen=True)
class FitStats:
    """What fitting and quantizing one GOP measured (PSNR in dB over its frames)."""

    psnr_float: float
    psnr_quantized: float  # plain rounding of the float fit
    psnr: float  # what the stream decodes to
    seconds: float
    iters: int
    params: int
    rate_weight: float  # the fit's price per bit (EncodeSettings), which rate control sets


@dataclass(frozen=True)
class EncodedGOP:
    """One finished GOP: what its fit measured, and the GOP as the file will hold it.
    Only the entropy-coded chunk is kept, so that a long encode holds compressed GOPs."""

    stats: FitStats
    coded: CodedGOP

    @property
    def frames(self) -> range:
        return range(self.coded.span.start, self.coded.span.stop)

    @property
    def kind(self) -> int:
        return self.coded.span.kind


@dataclass(frozen=True)
class Reference:
    """What a predicted GOP predicts from: the GOP before's tensors exactly as a decoder
    holds them, its quantization steps and the squared error it decoded to."""

    tensors: dict[str, torch.Tensor]
    steps: dict[str, float]
    mse: float


def rate_weights(steps: dict[str, float], mse: float, weight: float, samples: int
                 ) -> dict[str, float]:
    """The fit's price per unit of a parameter's distance from what it is coded against
    (a predicted GOP's reference, or zero), at ``weight`` bits per step moved.

    At a quantizer's operating point distortion falls by 2 ln 2 x D per extra bit per sample
    (D the mean squared error), and moving a parameter by one quantization step costs
    about a bit; the fit's loss is a mean over samples (3 colours of every pixel of every
    frame), so a bit is worth 2 ln 2 x D / samples of it. A predicted GOP prices with its
    reference's steps and error, standing in for its own, only chosen after its fit.
    """
    per_bit = weight * 2 * math.log(2) * mse / samples
    return {name: per_bit / step for name, step in steps.items()}


def intra_prices(model: GOPModel, psnr: float, clip: torch.Tensor,
                 settings: EncodeSettings) -> dict[str, float]:
    """An intra GOP's price per unit of each parameter's size, taken partway through its
    fit: the steps are allocated as they would be now (from the running PSNR and the
    output's sensitivity), and a parameter is priced against zero at intra_rate_weight
    bits per step, so that those not worth their bits shrink to the zero symbol."""
    mse = _picture_mse(10 ** (-psnr / 10), settings)
    steps = allocate_steps(model_tensors(model), output_sensitivity(model, clip),
                           mse * 10 ** (-settings.noise_db / 10))
    return rate_weights(steps, mse, settings.intra_rate_weight, _samples(clip))


def _picture_mse(mse: float, settings: EncodeSettings) -> float:
    """The error a bit is weighed against: the fit's, or with ``signal_mse`` (denoising)
    the smaller signal error, since the fit's is then mostly the noise, which bits spent on
    the picture do not reduce."""
    return mse if settings.signal_mse is None else min(mse, settings.signal_mse)


def _samples(clip: torch.Tensor) -> int:
    """Samples a fit's loss averages over: 3 colours of every pixel of every frame."""
    return clip[..., 0].numel() * 3


def encode_gop(
    clip: torch.Tensor, settings: EncodeSettings, init: dict[str, torch.Tensor] | None = None,
    device: str | torch.device | None = None,
    on_check: Callable[[int, float, float], None] | None = None,
    weight: torch.Tensor | None = None,
    reference: Reference | None = None,
    threads: int | None = None,
    times: torch.Tensor | None = None,
) -> tuple[FitStats, GOPRecord, Reference]:
    """Fit and quantize one GOP of frames (F, H, W, 3) in [0, 1], warm-started from init.

    reference: code the GOP as residuals against it (predicted), starting the fit there
    and pricing every parameter it moves; else intra.
    weight: optional (F, H, W) loss weights, 0 for unknown pixels, which the model fills;
    the PSNRs reported and compared are then over the known pixels. The rounding is still
    allocated by the output's sensitivity over every pixel, since filled pixels are
    decoded too. threads: the native kernel's pool size on CPU (runtime.kernel_threads).
    times: each frame's local time (F,) for a variable frame rate (frame f at f otherwise).
    Returns what the fit measured, the GOP's symbols (covering frames [0, F): the caller
    places them), and what a decoder will hold of this GOP, the next GOP's reference.
    """
    ref_tensors = None if reference is None else reference.tensors
    if reference is not None:
        init = ref_tensors
    prices = None if reference is None else rate_weights(
        reference.steps, _picture_mse(reference.mse, settings), settings.rate_weight,
        _samples(clip))
    fit_cfg = settings.fit if init is None else warm_start_config(settings.fit)
    priced_intra = reference is None and settings.intra_rate_weight > 0
    later = None
    if priced_intra:
        later = (settings.intra_price_from,
                 lambda model, psnr: intra_prices(model, psnr, clip, settings))
    fitted = fit_gop(clip, settings.model, fit_cfg, init=init, pixel_weight=weight,
                     device=device, on_check=on_check, reference=ref_tensors, rate_weights=prices,
                     price_later=later, threads=threads, times=times)
    state = model_tensors(fitted.model)
    reference_mse = _picture_mse(10 ** (-fitted.psnr / 10), settings)
    noise_mse = reference_mse * 10 ** (-settings.noise_db / 10)
    steps = allocate_steps(state, output_sensitivity(fitted.model, clip), noise_mse)
    rounded = GOPModel(settings.model, clip.shape[1], clip.shape[2]).to(fitted.model.weights[0].device)
    load_tensors(rounded, dequantize(quantize(state, steps, ref_tensors), steps, ref_tensors))
    psnr_quantized = reconstruction_psnr(rounded, clip, weight, threads, times)
    best, best_psnr, seconds, iters = rounded, psnr_quantized, fitted.seconds, fitted.iters
    qat_prices = prices
    if priced_intra:
        # The fine-tuning keeps the price, now on the steps really used: unpriced, it
        # would grow back the parameters the fit let go.
        qat_prices = rate_weights(steps, _picture_mse(10 ** (-psnr_quantized / 10), settings),
                                  settings.intra_rate_weight, _samples(clip))
    if settings.qat_iters > 0:
        qat_cfg = dataclasses.replace(
            settings.fit, iters=settings.qat_iters, seconds=None, target_psnr=None,
            lr=settings.fit.lr * settings.qat_lr_scale,
        )
        tuned = fit_gop(clip, settings.model, qat_cfg, init=state, pixel_weight=weight,
                        device=device, quant_steps=steps, reference=ref_tensors,
                        rate_weights=qat_prices, threads=threads, times=times)
        seconds, iters = seconds + tuned.seconds, iters + tuned.iters
        if tuned.psnr > best_psnr:
            best, best_psnr = tuned.model, tuned.psnr
    symbols = quantize(model_tensors(best), steps, ref_tensors)
    kind = INTRA if reference is None else PREDICTED
    stats = FitStats(psnr_float=fitted.psnr, psnr_quantized=psnr_quantized, psnr=best_psnr,
                     seconds=seconds, iters=iters, params=sum(s.size for s in symbols.values()),
                     rate_weight=settings.rate_weight if reference is not None
                     else settings.intra_rate_weight)
    record = GOPRecord(0, clip.shape[0], [TensorRecord(n, tuple(x.shape), steps[n], x)
                                          for n, x in symbols.items()], kind)
    decoded = {n: t.detach().cpu() for n, t in model_tensors(best).items()}
    return stats, record, Reference(decoded, steps, 10 ** (-best_psnr / 10))


def decoded_reference(gop: EncodedGOP, previous: Reference | None) -> Reference:
    """What a decoder holds of an already encoded GOP (given the one before's), rebuilt
    from its chunk: resuming an encode continues from exactly this."""
    record = gop.coded.record()
    steps = {t.name: t.step for t in record.tensors}
    base = previous.tensors if record.kind == PREDICTED else None
    tensors = dequantize({t.name: t.symbols for t in record.tensors}, steps, base)
    return Reference(tensors, steps, 10 ** (-gop.stats.psnr / 10))


def encode_segment(
    frames: Frames, gops: list[range], settings: EncodeSettings,
    device: str | torch.device | None = None,
    on_gop: Callable[[int, EncodedGOP], None] | None = None,
    on_check: Callable[[int, float, float], None] | None = None,
    mask: Frames | None = None,
    kinds: list[int] | None = None,
    done: dict[int, EncodedGOP] | None = None,
    first: int = 0,
    threads: int | None = None,
) -> list[EncodedGOP]:
    """Encode consecutive GOPs of a video, each warm-starting the next.

    first: the video's number for the first of these GOPs, which a GOP's chunk carries;
    GOPs are otherwise numbered by position in ``gops`` (``done``, ``on_gop``).
    threads: the native kernel's pool size on CPU (runtime.kernel_threads).
    frames: a reader of the video's frames (media.frames), read a GOP at a time.
    mask: optional reader of (N, H, W) bool masks of the same frames, True where unknown.
    kinds: INTRA or PREDICTED for each GOP (default all intra); the first must be intra,
    and a predicted GOP codes residuals against the one before it.
    done: GOPs (by position in ``gops``) encoded before, by an interrupted run: they are
    not fitted again, only decoded to carry the prediction and warm start on; on_gop is
    called for the others.
    """
    kinds = [INTRA] * len(gops) if kinds is None else kinds
    done = done or {}
    if kinds and kinds[0] != INTRA:
        raise ValueError("a segment must start with an intra GOP")
    rate = None
    reports, prev = [], None
    for k, gop in enumerate(gops):
        if settings.target_bpp is not None and rate is None:
            rate = _rate_control(settings, gops, kinds, frames(gop.start, 1).shape)
        if k in done:
            reports.append(done[k])
            if rate is not None:
                rate.observe(k, done[k].stats.rate_weight, len(done[k].coded.chunk) * 8)
            prev = decoded_reference(done[k], prev)
            continue
        clip = torch.from_numpy(np.ascontiguousarray(frames(gop.start, len(gop)))).float() / 255
        weight = None if mask is None else torch.from_numpy(~mask(gop.start, len(gop))).float()
        init = prev.tensors if settings.fit.warm_start and prev is not None else None
        times = None if settings.frame_times is None else torch.tensor(
            [settings.frame_times[i] - settings.frame_times[gop.start] for i in gop])
        price = None if rate is None else rate.price(k)
        tries: list[tuple[float, float]] = []
        fits: list[tuple[EncodedGOP, Reference]] = []
        while True:
            gop_settings = settings if price is None else dataclasses.replace(
                settings, rate_weight=price, intra_rate_weight=price)
            try:
                stats, record, reference = encode_gop(
                    clip, gop_settings, init=init, device=device, on_check=on_check,
                    weight=weight, reference=prev if kinds[k] == PREDICTED else None,
                    threads=threads, times=times)
            except ValueError as exc:
                # Parameters that cannot be coded (a diverged fit) never reach the writer.
                raise RuntimeError(f"GOP of frames {gop.start}-{gop.stop - 1}: {exc}") from None
            record.start, record.stop = gop.start, gop.stop
            fits.append((EncodedGOP(stats, code_gop(first + k, record)), reference))
            if rate is None:
                break
            tries.append((price, len(fits[-1][0].coded.chunk) * 8))
            price = rate.retry(k, tries)
            if price is None:
                keep = rate.best(k, tries)
                rate.observe(k, *tries[keep])
                fits = fits[keep:keep + 1]
                break
        (encoded, prev), = fits
        del clip, weight  # not held while the next GOP's frames are read
        reports.append(encoded)
        if on_gop is not None:
            on_gop(k, encoded)
    return reports


def _rate_control(settings: EncodeSettings, gops: list[range], kinds: list[int],
                  shape: tuple[int, ...]) -> RateControl:
    """The rate controller of these GOPs (frames of ``shape``): their share of the bits."""
    lengths = [len(g) for g in gops]
    budget = settings.target_bpp * shape[1] * shape[2] * sum(lengths)
    return RateControl(lengths, kinds, budget, settings.intra_rate_weight)
